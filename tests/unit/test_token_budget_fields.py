"""Token budgets at the edges: the gRPC fields both ways, the stored record (old rows included), a NATS subtask's
budget, the DELIBERATION_TOKEN_BUDGET setting, and how the CLI, `watch`, `monitor` and the report show it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.adapters.grpc.mapping import (
    council_info,
    create_council_command,
    deliberate_command,
    deliberate_response,
    result_response,
    stop_code_name,
    summary_pb,
    update_pb,
)
from orchestrator.adapters.nats.plan_events import InvalidPlanEvent, parse_plan_event
from orchestrator.adapters.store.codec import (
    council_from_json,
    council_to_json,
    deliberation_from_json,
    deliberation_to_json,
)
from orchestrator.adapters.store.sqlite import SqliteStore
from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate, Limits
from orchestrator.application.councils import build_council
from orchestrator.application.runs.updates import Update
from orchestrator.compose import Options, compose
from orchestrator.config.councils_file import CouncilEntry
from orchestrator.config.settings import load_settings
from orchestrator.domain.budget import StopCode
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import ConfigError
from orchestrator.entrypoints.cli_render import render_result
from orchestrator.entrypoints.monitor import deliberations_table, update_lines
from orchestrator.entrypoints.report import _subtask
from orchestrator.testing.fakes import FakeGateway, fake_ports

TASK = "Write a function that adds two numbers"
DEFAULTS = CouncilDefaults("fake-llm", 0.7, 512)
NOW_MS = 1_700_000_000_000


async def budgeted_run(budget: int | None) -> Deliberation:
    app = compose(fake_ports(FakeGateway()), Options(DEFAULTS)).orchestrator
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    return await app.deliberate(Deliberate(TASK, "DEV", rounds=1, token_budget=budget))


def test_a_requests_budget_keeps_its_presence_unset_zero_and_a_number_differ() -> None:
    def task_budget(constraints: pb.TaskConstraints | None) -> int | None:
        request = pb.DeliberateRequest(task_description=TASK, role="DEV", constraints=constraints)
        return deliberate_command(request).token_budget

    assert task_budget(None) is None
    assert task_budget(pb.TaskConstraints(token_budget=0)) == 0
    assert task_budget(pb.TaskConstraints(token_budget=2500)) == 2500
    assert task_budget(pb.TaskConstraints(token_budget=-1)) == -1  # passed on: the use case refuses it
    council = create_council_command(pb.CreateCouncilRequest(role="DEV", config=pb.CouncilConfig(token_budget=0)))
    assert council.token_budget == 0
    assert create_council_command(pb.CreateCouncilRequest(role="DEV")).token_budget is None


async def test_every_result_message_carries_budget_spend_and_stop_code() -> None:
    d = await budgeted_run(1)  # reached once the proposals are in
    assert d.progress.stop_code is StopCode.TOKEN_BUDGET and d.usage.total_tokens > 1
    for message in (
        deliberate_response(d, NOW_MS),
        result_response(d, NOW_MS),
        update_pb(Update(d, "finished"), NOW_MS),
    ):
        assert message.token_budget == 1
        assert message.tokens_spent == d.usage.total_tokens
        assert message.stop_code == pb.STOP_REASON_TOKEN_BUDGET
        assert "token budget reached" in message.stop_reason
    summary = summary_pb(d, NOW_MS)
    assert (summary.token_budget, summary.stop_code) == (1, pb.STOP_REASON_TOKEN_BUDGET)
    assert stop_code_name(summary.stop_code) == "token_budget" and stop_code_name(0) == ""
    unlimited = await budgeted_run(0)
    response = deliberate_response(unlimited, NOW_MS)
    assert response.token_budget == 0 and response.stop_code == pb.STOP_REASON_ROUNDS_DONE
    assert response.tokens_spent == unlimited.usage.total_tokens


async def test_a_councils_budget_is_listed_with_its_presence() -> None:
    app = compose(fake_ports(FakeGateway()), Options(DEFAULTS)).orchestrator
    budgeted = await app.create_council(CreateCouncil(role="DEV", token_budget=9000))
    plain = await app.create_council(CreateCouncil(role="QA"))
    assert council_info(budgeted, False).token_budget == 9000
    assert not council_info(plain, False).HasField("token_budget")
    assert CouncilEntry(role="DATA", token_budget=0).command().token_budget == 0


async def test_the_sqlite_store_keeps_budget_and_stop_code_and_loads_rows_written_before_them(tmp_path: Path) -> None:
    d = await budgeted_run(1)
    store = await SqliteStore.open(f"sqlite:///{tmp_path}/orch.db")
    try:
        assert await store.records.create(d)
        loaded = await store.records.get(d.task_id)
        assert loaded is not None and loaded.task.token_budget == 1
        assert loaded.progress.stop_code is StopCode.TOKEN_BUDGET and loaded.budget == d.budget
    finally:
        await store.close()
    old: dict[str, Any] = json.loads(deliberation_to_json(d))
    del old["task"]["token_budget"], old["progress"]["stop_code"]
    before = deliberation_from_json(json.dumps(old))
    assert before.task.token_budget is None and before.progress.stop_code is None
    assert deliberate_response(before, NOW_MS).stop_code == pb.STOP_REASON_UNSPECIFIED
    stored = build_council(CreateCouncil(role="DEV", token_budget=0), DEFAULTS, Limits(), 0)
    assert council_from_json(council_to_json(stored)).token_budget == 0
    council: dict[str, Any] = json.loads(council_to_json(stored))
    del council["token_budget"]
    assert council_from_json(json.dumps(council)).token_budget is None


def test_a_nats_subtask_may_carry_a_budget_and_a_bad_one_dead_letters_the_event() -> None:
    def event(**subtask: object) -> bytes:
        payload = {
            "story_id": "s-1",
            "plan_id": "p-1",
            "approved_by": "po",
            "timestamp": "2026-11-25T10:00:00Z",
            "subtasks": [{"subtask_id": "a", "role": "DEV", "title": "t", **subtask}],
        }
        return json.dumps(payload).encode()

    assert parse_plan_event(event(token_budget=4000)).subtasks[0].token_budget == 4000
    assert parse_plan_event(event(token_budget=0)).subtasks[0].token_budget == 0
    assert parse_plan_event(event()).subtasks[0].token_budget is None
    for bad in (-1, "4000", 1.5, True):
        with pytest.raises(InvalidPlanEvent, match="token_budget"):
            parse_plan_event(event(token_budget=bad))


def test_the_service_default_setting_refuses_a_negative_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIBERATION_TOKEN_BUDGET", "-100")
    with pytest.raises(ConfigError, match=r"DELIBERATION_TOKEN_BUDGET: .*0 \(unlimited\) or a positive number"):
        load_settings()
    monkeypatch.setenv("DELIBERATION_TOKEN_BUDGET", "20000")
    assert load_settings().deliberation_token_budget == 20000
    monkeypatch.delenv("DELIBERATION_TOKEN_BUDGET")
    assert load_settings().deliberation_token_budget == 0


def text_of(renderable: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(renderable)
    return out.getvalue()


def test_monitor_shows_spent_over_budget_and_the_spend_alone_without_one() -> None:
    listing = pb.ListDeliberationsResponse(
        deliberations=[
            pb.DeliberationSummary(task_id="d-budget", usage=pb.TokenUsage(total_tokens=1234), token_budget=2000),
            pb.DeliberationSummary(task_id="d-free", usage=pb.TokenUsage(total_tokens=777)),
        ]
    )
    rows = [line for line in text_of(deliberations_table(listing)).splitlines() if "d-" in line]
    tokens = {cells[0]: cells[6] for cells in ([c.strip() for c in row.strip("│").split("│")] for row in rows)}
    assert tokens == {"d-budget": "1234/2000", "d-free": "777"}


def test_watch_the_cli_and_the_report_say_the_budget_stopped_the_run() -> None:
    final = pb.GetDeliberationResultResponse(
        task_id="d-1",
        status=pb.DELIBERATION_STATUS_COMPLETED,
        rounds=2,
        stop_reason="token budget: 900 of 1000 tokens spent, and the next stage (about 750 tokens) would pass it",
        token_budget=1000,
        tokens_spent=900,
        stop_code=pb.STOP_REASON_TOKEN_BUDGET,
        results=[pb.DeliberationResult(proposal=pb.Proposal(author_id="agent-dev-001"), rank=1)],
        winner_id="agent-dev-001",
    )
    expected = "tokens spent: 900 of a 1000-token budget (the budget stopped the run)"
    update = pb.DeliberationUpdate(
        status="COMPLETED",
        results=final.results,
        winner_id="agent-dev-001",
        token_budget=1000,
        tokens_spent=900,
        stop_code=pb.STOP_REASON_TOKEN_BUDGET,
    )
    assert f"  {expected}" in update_lines(update, "12:00:00")
    out = io.StringIO()
    render_result(Console(file=out, width=200, color_system=None), final)
    assert expected in out.getvalue()
    subtask = pb.PlanSubtaskInfo(subtask_id="s-1", role="DEV", title="t")
    assert any(expected in line for line in _subtask(subtask, final))
