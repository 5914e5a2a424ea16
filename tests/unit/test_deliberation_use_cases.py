"""The deliberation protocol and its use cases, driven through the application with in-memory port fakes."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.application.service import Orchestrator
from orchestrator.compose import Options, compose
from orchestrator.domain.deliberation import stage_plan
from orchestrator.domain.errors import AlreadyExistsError, CouncilMissingError, InvalidArgumentError, NotFoundError
from orchestrator.domain.model import DeliberationStatus, Stage
from orchestrator.testing.fakes import FakeGateway, InMemoryCouncilStore, InMemoryDeliberationStore, fake_ports

DEFAULTS = CouncilDefaults(model="fake-llm", temperature=0.7, max_tokens=512)
TASK = "Write a Python function that parses ISO-8601 dates and returns a datetime"


def make_app(
    gateway: FakeGateway | None = None,
    timeout_s: float = 30.0,
    *,
    councils: InMemoryCouncilStore | None = None,
    store: InMemoryDeliberationStore | None = None,
) -> Orchestrator:
    ports = fake_ports(gateway, councils=councils, records=store)
    return compose(ports, Options(DEFAULTS, default_timeout_s=timeout_s)).orchestrator


async def test_council_gets_distinct_agents_and_a_duplicate_is_already_exists() -> None:
    app = make_app()
    council = await app.create_council(CreateCouncil(role="dev", num_agents=0))
    assert [a.agent_id for a in council.agents] == ["agent-dev-001", "agent-dev-002", "agent-dev-003"]
    assert len({a.temperature for a in council.agents}) == 3
    assert len({a.seed for a in council.agents}) == 3
    with pytest.raises(AlreadyExistsError):
        await app.create_council(CreateCouncil(role="DEV"))


@pytest.mark.parametrize(
    "cmd",
    [
        CreateCouncil(role="JANITOR"),
        CreateCouncil(role="DEV", num_agents=11),
        CreateCouncil(role="DEV", agent_type="MOCK"),
        CreateCouncil(role="DEV", rounds=6),
        CreateCouncil(role="DEV", custom_params={"temperature": "hot"}),
    ],
)
async def test_invalid_council_requests_are_rejected_with_the_field_named(cmd: CreateCouncil) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        await make_app().create_council(cmd)
    assert info.value.field


async def test_custom_params_set_model_temperature_and_rounds() -> None:
    app = make_app()
    council = await app.create_council(
        CreateCouncil(role="QA", num_agents=1, custom_params={"model": "m2", "temperature": "0.2", "rounds": "2"})
    )
    assert (council.model, council.agents[0].temperature, council.rounds) == ("m2", 0.2, 2)


async def test_deleting_an_unknown_council_is_not_found_and_a_known_one_stops_its_agents() -> None:
    app = make_app()
    with pytest.raises(NotFoundError):
        await app.delete_council("DATA")
    await app.create_council(CreateCouncil(role="DATA", num_agents=2))
    _, removed = await app.delete_council("DATA")
    assert removed == 2
    assert await app.list_councils() == []


async def test_three_agents_two_rounds_rank_every_proposal_with_two_revisions() -> None:
    gateway = FakeGateway(broken_python={"agent-dev-002"})
    app = make_app(gateway)
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    result = await app.deliberate(
        Deliberate(TASK, "DEV", rounds=2, requirements=("parse ISO-8601 dates", "return a datetime"))
    )
    assert result.status is DeliberationStatus.COMPLETED
    assert [r.rank for r in result.results] == [1, 2, 3]
    assert result.winner_id == result.results[0].proposal.author_id
    assert all(len(r.proposal.revisions) == 2 for r in result.results)
    assert len({r.score for r in result.results}) == 3
    broken = next(r for r in result.results if r.proposal.author_id == "agent-dev-002")
    assert not broken.checks.lint.passed and broken.checks.lint.error_count >= 1
    assert broken.rank == 3
    assert all(r.peer_scores and r.peer_score >= 0 for r in result.results)
    # critiques are of peers only, two per round for each author
    for r in result.results:
        assert all(c.critic_id != r.proposal.author_id for c in r.critiques)
        assert len(r.critiques) == 4


async def test_every_stage_is_one_concurrent_fan_out() -> None:
    gateway = FakeGateway(latency_s=0.05)
    app = make_app(gateway)
    await app.create_council(CreateCouncil(role="DEV", num_agents=5))
    await app.deliberate(Deliberate(TASK, "DEV", rounds=2))
    assert gateway.max_in_flight == 5
    llm_stages = [stage for stage, _ in stage_plan(2) if stage is not Stage.VERIFY]  # verify runs code, no LLM
    assert len(gateway.calls) == 5 * len(llm_stages)


async def test_calls_are_accounted_per_agent_and_stage() -> None:
    app = make_app()
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    result = await app.deliberate(Deliberate(TASK, "DEV", rounds=1))
    stages = {(c.agent_id, c.stage) for c in result.progress.calls}
    assert stages == {(a, s) for a in ("agent-dev-001", "agent-dev-002") for s in Stage if s is not Stage.VERIFY}
    assert all(c.usage.total_tokens > 0 and c.model and c.seed >= 1000 for c in result.progress.calls)
    assert result.usage.total_tokens == sum(c.usage.total_tokens for c in result.progress.calls)


async def test_one_failing_agent_is_reported_and_never_ranked() -> None:
    app = make_app(FakeGateway(failing={"agent-dev-003"}))
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    result = await app.deliberate(Deliberate(TASK, "DEV", rounds=1))
    assert result.status is DeliberationStatus.COMPLETED
    assert {r.proposal.author_id for r in result.results} == {"agent-dev-001", "agent-dev-002"}
    assert result.failed_agent_ids == ("agent-dev-003",)
    assert all("injected failure" not in r.proposal.content for r in result.results)


async def test_a_failing_majority_fails_the_deliberation_with_a_clear_message() -> None:
    app = make_app(FakeGateway(failing={"agent-dev-001", "agent-dev-002"}))
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    result = await app.deliberate(Deliberate(TASK, "DEV", rounds=1))
    assert result.status is DeliberationStatus.FAILED
    assert [r.proposal.author_id for r in result.results] == ["agent-dev-003"]  # the finished work is kept
    assert "quorum is 2" in result.error_message and "agent-dev-001" in result.error_message


async def test_the_deadline_ends_in_timeout_keeping_finished_proposals() -> None:
    gateway = FakeGateway(hang={"agent-dev-002"})
    app = make_app(gateway)
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    result = await app.deliberate(Deliberate(TASK, "DEV", rounds=1, timeout_s=1))
    assert result.status is DeliberationStatus.TIMEOUT
    assert "deadline" in result.error_message
    assert {r.proposal.author_id for r in result.results} == {"agent-dev-001", "agent-dev-003"}
    assert result.winner_id


async def test_same_task_id_returns_the_same_deliberation() -> None:
    gateway = FakeGateway()
    app = make_app(gateway)
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    first = await app.deliberate(Deliberate(TASK, "DEV", task_id="task-1"))
    calls = len(gateway.calls)
    second = await app.deliberate(Deliberate(TASK, "DEV", task_id="task-1"))
    assert second == first
    assert len(gateway.calls) == calls


async def test_a_cancelled_caller_cancels_the_deliberation_it_started() -> None:
    app = make_app(FakeGateway(latency_s=5))
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    waiter = asyncio.create_task(app.deliberate(Deliberate(TASK, "DEV", task_id="cancel-me")))
    await asyncio.sleep(0.1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    record = await app.get_result("cancel-me")
    assert record.status is DeliberationStatus.CANCELLED


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        (Deliberate("", "DEV"), "task_description"),
        (Deliberate("x" * 40_000, "DEV"), "task_description"),
        (Deliberate(TASK, "DEV", rounds=6), "rounds"),
        (Deliberate(TASK, "DEV", num_agents=11), "num_agents"),
        (Deliberate(TASK, "DEV", num_agents=4), "num_agents"),
        (Deliberate(TASK, "NOPE"), "role"),
        (Deliberate(TASK, "DEV", task_id="bad id with spaces"), "task_id"),
    ],
)
async def test_out_of_range_deliberation_requests_are_invalid(cmd: Deliberate, field: str) -> None:
    app = make_app()
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    with pytest.raises(InvalidArgumentError) as info:
        await app.deliberate(cmd)
    assert info.value.field == field


async def test_deliberating_without_a_council_is_a_failed_precondition() -> None:
    with pytest.raises(CouncilMissingError):
        await make_app().deliberate(Deliberate(TASK, "ARCHITECT"))


async def test_an_interrupted_run_resumes_from_its_last_checkpoint() -> None:
    gateway = FakeGateway()
    app = make_app(gateway)
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    done = await app.deliberate(Deliberate(TASK, "DEV", task_id="resume-1", rounds=1))
    store = app.supervisor.records
    assert isinstance(store, InMemoryDeliberationStore)
    after_propose = store.history["resume-1"][0]
    assert after_propose.progress.stages_done == 1
    # a crash after the propose checkpoint: the record is still IN_PROGRESS at that point
    store.records["resume-1"] = replace(after_propose, status=DeliberationStatus.IN_PROGRESS)
    gateway.calls.clear()
    councils = app.council_store
    assert isinstance(councils, InMemoryCouncilStore)
    restarted = make_app(gateway, councils=councils, store=store)
    _, resumed = await restarted.restore()
    assert resumed == ["resume-1"]
    final = await restarted.supervisor.wait("resume-1")
    assert final.status is DeliberationStatus.COMPLETED
    assert {s for _, s, _ in gateway.calls} == {"critique", "revise", "score"}  # propose was not repeated
    assert [r.proposal.author_id for r in final.results] == [r.proposal.author_id for r in done.results]
