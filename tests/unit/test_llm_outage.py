"""An LLM endpoint that is down for everyone pauses a run instead of failing it, and a run that must end early
keeps the proposals that had finished. Driven through the application with the in-memory port fakes."""

from __future__ import annotations

import asyncio

from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.application.protocol.engine import Listener
from orchestrator.application.protocol.pause import EndpointPause
from orchestrator.application.service import Orchestrator
from orchestrator.compose import Options, compose
from orchestrator.domain.events import RunEvent, StageStarted
from orchestrator.domain.model import DeliberationStatus, Stage
from orchestrator.testing.fakes import FakeGateway, FakeRuntime, fake_ports

DEFAULTS = CouncilDefaults(model="fake-llm", temperature=0.7, max_tokens=512)
TASK = "Write a Python function that parses ISO-8601 dates and returns a datetime"
AGENTS = {"agent-dev-001", "agent-dev-002", "agent-dev-003"}


def make_app(gateway: FakeGateway, events: list[str] | None = None, *listeners: Listener) -> Orchestrator:
    if events is not None:
        listeners = (*listeners, lambda event: events.append(event.name))
    ports = fake_ports(gateway, runtime=FakeRuntime(gateway=gateway))
    return compose(ports, Options(DEFAULTS, listeners=listeners)).orchestrator


def critique_started(event: RunEvent) -> bool:
    return isinstance(event, StageStarted) and event.snapshot.stage == Stage.CRITIQUE.value


def outage_after_propose(gateway: FakeGateway, duration_s: float | None) -> Listener:
    """The endpoint goes down for everyone as the critique stage starts, after propose and its verification (for
    `duration_s`, or for good)."""

    def observe(event: RunEvent) -> None:
        if critique_started(event):
            gateway.endpoint_down = True
            if duration_s is not None:
                asyncio.get_running_loop().call_later(duration_s, setattr, gateway, "endpoint_down", False)

    return observe


async def test_a_short_outage_pauses_the_run_and_it_completes_with_every_agent() -> None:
    gateway = FakeGateway(latency_s=0.02)
    events: list[str] = []
    app = make_app(gateway, events, outage_after_propose(gateway, duration_s=1.2))
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    result = await app.deliberate(Deliberate(TASK, "DEV", rounds=1, timeout_s=30))
    assert result.status is DeliberationStatus.COMPLETED, result.error_message
    assert {r.proposal.author_id for r in result.results} == AGENTS
    assert result.failed_agent_ids == () and result.error_message == ""
    critiques = [c for c in result.progress.calls if c.stage is Stage.CRITIQUE]
    assert len(critiques) > 3 and sum(c.ok for c in critiques) == 3  # tried again after the failed attempts
    assert "llm_unavailable" in events and "llm_back" in events


async def test_a_deadline_during_an_outage_ends_in_timeout_with_the_finished_proposals_ranked() -> None:
    gateway = FakeGateway(latency_s=0.02)
    app = make_app(gateway, None, outage_after_propose(gateway, duration_s=None))
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    result = await app.deliberate(Deliberate(TASK, "DEV", rounds=1, timeout_s=2))
    assert result.status is DeliberationStatus.TIMEOUT
    assert {r.proposal.author_id for r in result.results} == AGENTS
    assert [r.rank for r in result.results] == [1, 2, 3]
    assert result.winner_id == result.results[0].proposal.author_id
    assert "unreachable" in result.error_message
    assert {(f.agent_id, f.stage) for f in result.progress.failures} == {(a, Stage.CRITIQUE) for a in AGENTS}


async def test_an_endpoint_down_from_the_start_fails_at_the_deadline_as_unreachable() -> None:
    gateway = FakeGateway(endpoint_down=True)
    app = make_app(gateway)
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    result = await app.deliberate(Deliberate(TASK, "DEV", rounds=1, timeout_s=1))
    assert result.status is DeliberationStatus.FAILED and result.results == ()
    assert "unreachable" in result.error_message
    assert result.failed_agent_ids == ("agent-dev-001", "agent-dev-002")
    assert all(f.error.startswith("unavailable") for f in result.progress.failures)


async def test_one_agents_own_failure_still_drops_only_that_agent_during_a_pause() -> None:
    gateway = FakeGateway(latency_s=0.02, failing={"agent-dev-003"})
    app = make_app(gateway, None, outage_after_propose(gateway, duration_s=0.8))
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    result = await app.deliberate(Deliberate(TASK, "DEV", rounds=1, timeout_s=30))
    assert result.status is DeliberationStatus.COMPLETED
    assert {r.proposal.author_id for r in result.results} == {"agent-dev-001", "agent-dev-002"}
    assert result.failed_agent_ids == ("agent-dev-003",)


async def test_deleting_the_council_during_a_run_keeps_and_ranks_the_finished_proposals() -> None:
    gateway = FakeGateway(latency_s=0.2)
    critiquing = asyncio.Event()
    app = make_app(gateway, None, lambda event: critique_started(event) and critiquing.set())
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    record, _ = await app.submit(Deliberate(TASK, "DEV", task_id="deleted-mid-run", rounds=1))
    await critiquing.wait()
    await app.delete_council("DEV")  # while the critique calls are in flight
    result = await app.supervisor.wait(record.task_id)
    assert result.status is DeliberationStatus.FAILED
    assert "quorum" in result.error_message and "agent_unavailable" in result.error_message
    assert {r.proposal.author_id for r in result.results} == AGENTS
    assert result.winner_id == result.results[0].proposal.author_id
    stored = await app.supervisor.records.get(record.task_id)
    assert stored is not None and len(stored.results) == 3


def test_the_pause_backs_off_in_shared_waves_doubling_up_to_a_cap() -> None:
    pause = EndpointPause(first_s=1.0, max_s=8.0)
    first, opened = pause.wait_for(100.0)
    assert opened and 0.5 <= first <= 1.0 and pause.active
    joined, opened = pause.wait_for(100.2)  # another call failing before the wave starts joins it
    assert not opened and abs(joined - (first - 0.2)) < 1e-9
    now, delays = 100.0 + first, []
    for _ in range(6):
        delay, opened = pause.wait_for(now)
        assert opened
        delays.append(delay)
        now += delay
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(8.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert pause.end(now) == now - 100.0 and not pause.active
    assert pause.wait_for(now)[0] <= 1.0  # a later outage starts from the first delay again
