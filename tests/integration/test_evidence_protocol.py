"""Evidence drives the deliberation: proposals' code runs in the real bubblewrap sandbox against the task's examples
and every agent's tests; failing authors see their failures in the revise prompt; the ranking follows the evidence
even when the peers score the other way; the rounds stop once the evidence decides."""

from __future__ import annotations

import pytest

from orchestrator.adapters.checks.execution import ExecutionVerifier
from orchestrator.adapters.sandbox import BwrapSandbox
from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.compose import Options, compose
from orchestrator.domain.model import DeliberationStatus
from orchestrator.testing.evidence_task import PEERS_PREFER_WRONG, SCRIPTED, TASK
from orchestrator.testing.fakes import (
    FakeGateway,
    fake_ports,
)

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
async def sandbox() -> BwrapSandbox:
    sandbox = BwrapSandbox()
    availability = await sandbox.probe()
    if not availability.available:
        pytest.fail(f"bubblewrap must work here: {availability.reason}")
    return sandbox


def gateway() -> FakeGateway:
    # The peers like the wrong proposals best: 10 for them, 2 for the correct one.
    return FakeGateway(scripted=dict(SCRIPTED), score_markers=dict(PEERS_PREFER_WRONG))


async def deliberate(fake: FakeGateway, sandbox: BwrapSandbox, *, early_stop: bool, rounds: int = 1):  # type: ignore[no-untyped-def]
    ports = fake_ports(fake, verifier=ExecutionVerifier(sandbox))
    options = Options(CouncilDefaults("fake-llm", 0.7, 512), default_timeout_s=120, early_stop=early_stop)
    app = compose(ports, options).orchestrator
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    return await app.deliberate(Deliberate(TASK, "DEV", rounds=rounds))


async def test_the_correct_solution_wins_although_its_peers_score_it_lowest(sandbox: BwrapSandbox) -> None:
    fake = gateway()
    result = await deliberate(fake, sandbox, early_stop=False)
    assert result.status is DeliberationStatus.COMPLETED
    winner = result.results[0]
    assert winner.proposal.author_id == "agent-dev-002"
    assert winner.peer_score < min(r.peer_score for r in result.results[1:])
    assert "passes 3/3 specification tests" in winner.rank_reason
    assert "ahead of" in winner.rank_reason and "specification tests" in winner.rank_reason
    assert winner.evidence is not None and winner.evidence.outcomes
    losers = {r.proposal.author_id: r.evidence for r in result.results[1:]}
    assert all(e is not None and not all(o.passed for o in e.outcomes) for e in losers.values())


async def test_a_failing_author_sees_its_failing_test_and_output_in_the_revise_prompt(sandbox: BwrapSandbox) -> None:
    fake = gateway()
    result = await deliberate(fake, sandbox, early_stop=False)
    revise = {agent: text for agent, stage, _, text in fake.prompts if stage == "revise"}
    # clamp(12, 0, 10) gives 9 with the exclusive bound: the example, and what came instead.
    assert "clamp(12, 0, 10)" in revise["agent-dev-001"] and "expected 10, got 9" in revise["agent-dev-001"]
    assert "clamp(-3, 0, 10)" in revise["agent-dev-003"] and "expected 0, got -3" in revise["agent-dev-003"]
    # A proposal failing the task's own examples gets a new attempt: told what failed, not shown the failed code.
    assert "return max(low, min(x, high - 1))" not in revise["agent-dev-001"]
    assert "Your current proposal" not in revise["agent-dev-001"]
    # The correct proposal fails nothing, so it is kept as it is: no revise call for it.
    assert "agent-dev-002" not in revise
    # The critique prompt shows each peer's findings next to its proposal.
    critique = next(text for agent, stage, _, text in fake.prompts if stage == "critique" and agent == "agent-dev-002")
    assert "expected 10, got 9" in critique
    assert result.progress.rounds_run == 1
    assert result.progress.stop_reason == "all 1 rounds ran"
    assert {e.round for e in result.progress.evidence_log} == {0, 1}


async def test_the_rounds_stop_once_a_proposal_passes_every_specification_test(sandbox: BwrapSandbox) -> None:
    fake = gateway()
    result = await deliberate(fake, sandbox, early_stop=True, rounds=3)
    stages = {stage for _, stage, _ in fake.calls}
    assert stages == {"propose", "score"}
    assert result.progress.rounds_run == 0
    assert result.progress.stop_reason == "evidence decided: agent-dev-002 passes all 3 specification tests"
    assert result.results[0].proposal.author_id == "agent-dev-002"


async def test_without_a_sandbox_execution_is_reported_skipped_and_peers_decide(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.adapters.sandbox import BwrapConfig

    missing = BwrapSandbox(BwrapConfig(bwrap=str(tmp_path / "no-bwrap")))
    await missing.probe()
    fake = gateway()
    result = await deliberate(fake, missing, early_stop=True)
    assert result.status is DeliberationStatus.COMPLETED
    assert all(r.evidence is not None and r.evidence.skipped for r in result.results)
    assert "not executed" in result.results[0].rank_reason
    assert result.results[0].proposal.author_id != "agent-dev-002"  # the peers' favourite wins without evidence
