"""Plan events: both accepted shapes, and a clear reason for everything else."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from orchestrator.adapters.nats.jetstream import Outcome
from orchestrator.adapters.nats.plan_events import MAX_EVENT_BYTES, InvalidPlanEvent, parse_plan_event
from orchestrator.adapters.nats.planning import plan_approved_handler
from orchestrator.application.commands import Limits
from orchestrator.application.dispatch import PlanDispatcher
from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.model import Role
from orchestrator.domain.plans import ApprovedPlan, deliberation_id, derive_subtasks
from orchestrator.domain.validation import check_task_id

PAYLOAD: dict[str, Any] = {
    "story_id": "story-1",
    "plan_id": "plan-1",
    "approved_by": "po",
    "roles": ["DEV", "QA"],
    "timestamp": "2026-11-25T10:00:00Z",
    "plan": {"title": "Login", "description": "Let users log in", "acceptance_criteria": ["lockout after 5 tries"]},
}


def envelope(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_type": "planning.plan.approved",
        "payload": payload,
        "idempotency_key": "k-1",
        "correlation_id": "c-1",
        "timestamp": "2026-11-25T10:00:00Z",
        "producer": "planning",
    }


def encode(value: object) -> bytes:
    return json.dumps(value).encode()


def test_the_envelope_and_the_bare_payload_mean_the_same_plan() -> None:
    wrapped = parse_plan_event(encode(envelope(PAYLOAD)))
    bare = parse_plan_event(encode(PAYLOAD))
    assert wrapped.plan_id == bare.plan_id == "plan-1"
    assert wrapped.roles == (Role.DEV, Role.QA)
    assert wrapped.idempotency_key == "k-1" and bare.idempotency_key == ""
    assert wrapped.acceptance_criteria == ("lockout after 5 tries",)


def test_roles_are_matched_case_insensitively_as_over_grpc() -> None:
    plan = parse_plan_event(
        encode({**PAYLOAD, "roles": ["dev", " Qa "], "subtasks": [{"subtask_id": "a", "role": "devops"}]})
    )
    assert plan.roles == (Role.DEV, Role.QA)
    assert plan.subtasks[0].role is Role.DEVOPS


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (encode({**PAYLOAD, "story_id": 7}), "payload.story_id"),
        (encode({**PAYLOAD, "roles": ["DEV", "JANITOR"]}), "payload.roles.1"),
        (encode({k: v for k, v in PAYLOAD.items() if k != "plan_id"}), "payload.plan_id"),
        (encode({**PAYLOAD, "plan_id": "has spaces"}), "payload.plan_id"),
        (encode({**PAYLOAD, "roles": []}), "needs subtasks or at least one role"),
        (encode({**envelope(PAYLOAD), "event_type": "planning.plan.rejected"}), "is not 'planning.plan.approved'"),
        (encode({**envelope(PAYLOAD), "idempotency_key": None}), "envelope.idempotency_key"),
        (encode({**PAYLOAD, "subtasks": [{"subtask_id": "a", "role": "DEV", "priority": "high"}]}), "priority"),
        (encode({**PAYLOAD, "subtasks": [{"subtask_id": "a", "role": "DEV", "depends_on": ["a"]}]}), "cycle"),
        (encode({**PAYLOAD, "subtasks": [{"subtask_id": "a", "role": "DEV", "depends_on": ["zz"]}]}), "unknown"),
        (b" " * (MAX_EVENT_BYTES + 1), "exceeds the limit"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (encode({**PAYLOAD, "approved_by": "   "}), "payload.approved_by"),
        (
            encode({**PAYLOAD, "subtasks": [{"subtask_id": "a", "role": "DEV", "acceptance_tests": 7}]}),
            "payload.subtasks.0.acceptance_tests",
        ),
    ],
)
def test_invalid_events_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidPlanEvent) as info:
        parse_plan_event(body)
    assert reason in str(info.value)


TESTS = "from solution import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def test_a_subtask_carries_its_acceptance_tests_verbatim_and_others_have_none() -> None:
    subtasks = [
        {"subtask_id": "a", "role": "DEV", "acceptance_tests": TESTS},
        {"subtask_id": "b", "role": "QA"},
    ]
    plan = parse_plan_event(encode(envelope({**PAYLOAD, "subtasks": subtasks})))
    assert plan.subtasks[0].acceptance_tests == TESTS
    assert plan.subtasks[1].acceptance_tests == ""


async def test_acceptance_tests_over_the_grpc_limit_dead_letter_the_event() -> None:
    limit = Limits().max_acceptance_tests_chars
    at_limit = {"subtask_id": "a", "role": "DEV", "acceptance_tests": "#" * limit}
    assert parse_plan_event(encode({**PAYLOAD, "subtasks": [at_limit]})).subtasks[0].acceptance_tests == "#" * limit
    over = encode({**PAYLOAD, "subtasks": [{**at_limit, "acceptance_tests": "#" * (limit + 1)}]})
    with pytest.raises(InvalidPlanEvent) as info:
        parse_plan_event(over)
    assert "payload.subtasks.0.acceptance_tests" in str(info.value)
    # refused before anything is dispatched: the consumer dead-letters it at once
    handled = await plan_approved_handler(cast(PlanDispatcher, None))(over)
    assert handled.outcome == Outcome.DEAD and "acceptance_tests" in handled.reason


def test_without_subtasks_one_per_role_is_derived_from_the_plan_text() -> None:
    plan = parse_plan_event(encode(PAYLOAD))
    subtasks = derive_subtasks(plan)
    assert [s.role for s in subtasks] == [Role.DEV, Role.QA]
    assert all("Let users log in" in s.description for s in subtasks)
    assert all(s.requirements == ("lockout after 5 tries",) for s in subtasks)


def test_deliberation_ids_are_stable_and_distinct() -> None:
    assert deliberation_id("p", "a") == deliberation_id("p", "a")
    assert len({deliberation_id("p", "a"), deliberation_id("p", "b"), deliberation_id("q", "a")}) == 3
    assert deliberation_id("p", "a").startswith("plan-")


def test_a_plan_without_roles_or_subtasks_cannot_be_derived() -> None:
    with pytest.raises(InvalidArgumentError):
        derive_subtasks(ApprovedPlan("p", "s", "po", (), "t"))


ID_CANDIDATES = [
    "a",
    "plan-1",
    "story_42",
    "ns:plan/7.b",
    "x" * 128,
    "a\n",
    "\na",
    " a",
    "a ",
    "a\r\n",
    "",
    "x" * 129,
    "_a",
    "-a",
    "é",
    "a b",
    "a\x00",
    "\u0661",
]


def _accepted_over_grpc(value: str) -> bool:
    try:
        check_task_id(value)
    except InvalidArgumentError:
        return False
    return True


def _accepted_over_nats(field: str, value: str) -> bool:
    subtask = {"subtask_id": "s", "role": "DEV"}
    payload: dict[str, Any] = {**PAYLOAD, "subtasks": [subtask]}
    if field == "subtask_id":
        payload["subtasks"] = [{**subtask, "subtask_id": value}]
    elif field == "depends_on":
        payload["subtasks"] = [{"subtask_id": value, "role": "DEV"}, {**subtask, "depends_on": [value]}]
    else:
        payload[field] = value
    body = envelope(payload) if field != "idempotency_key" else {**envelope(payload), "idempotency_key": value}
    try:
        parse_plan_event(encode(body))
    except InvalidPlanEvent:
        return False
    return True


@pytest.mark.parametrize("field", ["story_id", "plan_id", "subtask_id", "depends_on", "idempotency_key"])
def test_nats_ids_are_accepted_and_refused_exactly_as_grpc_task_ids(field: str) -> None:
    for value in ID_CANDIDATES:
        assert _accepted_over_nats(field, value) == _accepted_over_grpc(value), (field, value)
    assert _accepted_over_grpc("story_42") and not _accepted_over_grpc("a\n")  # both kinds are in the list


async def test_a_subtask_id_with_a_newline_dead_letters_the_event_and_dispatches_nothing() -> None:
    body = encode(envelope({**PAYLOAD, "subtasks": [{"subtask_id": "a\n", "role": "DEV"}]}))
    # Refused before the dispatcher is touched (None would fail if it were): dead-lettered with its body.
    handled = await plan_approved_handler(cast(PlanDispatcher, None))(body)
    assert handled.outcome == Outcome.DEAD
    assert "payload.subtasks.0.subtask_id" in handled.reason and "letters, digits" in handled.reason
