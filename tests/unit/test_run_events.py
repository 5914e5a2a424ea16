"""Typed run events and error kinds: what the engine emits, and what the records carry to the gRPC adapter."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

from orchestrator.adapters.store.codec import deliberation_from_json, deliberation_to_json
from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.compose import compose
from orchestrator.domain.errors import CallErrorKind, LLMCallError
from orchestrator.domain.events import (
    AgentDropped,
    CallFinished,
    RunEvent,
    RunFinished,
    RunStarted,
    StageFinished,
    StageStarted,
)
from orchestrator.domain.model import AgentFailure, DeliberationStatus, Stage
from orchestrator.testing.fakes import FakeGateway, fake_options, fake_ports

TASK = "Write a Python function that reverses the words of a sentence"


def test_call_errors_carry_a_typed_kind_and_the_status_as_data() -> None:
    assert LLMCallError("a", CallErrorKind.UNAVAILABLE, "refused").endpoint_down
    http = LLMCallError("a", CallErrorKind.HTTP, "busy", status=503)
    assert http.kind is CallErrorKind.HTTP and http.status == 503 and http.code == "http_503"
    assert str(http) == "a: http_503: busy" and not http.endpoint_down
    assert LLMCallError("a", CallErrorKind.TIMEOUT, "slow").kind.endpoint_unreachable
    assert not LLMCallError("a", CallErrorKind.AGENT_UNAVAILABLE, "actor died").kind.endpoint_unreachable
    assert pickle.loads(pickle.dumps(http)).status == 503  # as Ray carries it across processes


async def test_a_run_emits_typed_events_in_order_and_one_call_event_per_recorded_call() -> None:
    events: list[RunEvent] = []
    gateway = FakeGateway(failing={"agent-dev-003"}, failure_kind=CallErrorKind.HTTP, failure_status=500)
    app = compose(fake_ports(gateway), fake_options(listeners=[events.append])).orchestrator
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    done = await app.deliberate(Deliberate(TASK, "DEV", task_id="ev-1", rounds=1))

    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert events[-1].snapshot == done
    calls = [e.call for e in events if isinstance(e, CallFinished)]
    assert calls == list(done.progress.calls)
    (dropped,) = [e for e in events if isinstance(e, AgentDropped)]
    assert dropped.agent_id == "agent-dev-003" and dropped.failure.kind is CallErrorKind.HTTP
    stages = [(type(e), e.snapshot.stage) for e in events if isinstance(e, StageStarted | StageFinished)]
    assert stages[:2] == [(StageStarted, Stage.PROPOSE.value), (StageFinished, Stage.PROPOSE.value)]
    assert done.status is DeliberationStatus.COMPLETED and not done.failed_as_unreachable


async def test_a_run_no_agent_could_reach_fails_as_unreachable_and_the_kind_survives_the_store() -> None:
    gateway = FakeGateway(failing={"agent-dev-001", "agent-dev-002"}, failure_kind=CallErrorKind.TIMEOUT)
    app = compose(fake_ports(gateway), fake_options()).orchestrator
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    done = await app.deliberate(Deliberate(TASK, "DEV", task_id="ev-2", rounds=1))
    assert done.status is DeliberationStatus.FAILED and done.failed_as_unreachable
    assert deliberation_from_json(deliberation_to_json(done)) == done

    # A record written before failures had a kind reads back as OTHER: never taken for an outage.
    body = json.loads(deliberation_to_json(done))
    for failure in body["progress"]["failures"]:
        del failure["kind"]
    older = deliberation_from_json(json.dumps(body))
    assert {f.kind for f in older.progress.failures} == {CallErrorKind.OTHER}
    assert not older.failed_as_unreachable
    assert replace(done.progress.failures[0], kind=CallErrorKind.OTHER) == older.progress.failures[0]
    assert isinstance(older.progress.failures[0], AgentFailure)
