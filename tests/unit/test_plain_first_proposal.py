"""The propose stage of a DEV council: the first agent's proposal is the greedy answer to the task asked plainly
(temperature 0, no persona or stage framing); every other agent samples with the council's prompt at its own
temperature. Other roles, and a council of one, propose as configured."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.application.ports import AgentCall, Completion
from orchestrator.compose import Options, compose
from orchestrator.domain import prompts
from orchestrator.domain.evidence import CheckUnit, ProposalEvidence, Specification, UnitOutcome, UnitSource
from orchestrator.domain.model import (
    AgentSpec,
    CheckSuite,
    DryRunResult,
    LintResult,
    PeerScore,
    PolicyResult,
    Proposal,
    Role,
    Stage,
    TaskSpec,
)
from orchestrator.domain.ranking import evidence_decides, rank_by_evidence
from orchestrator.testing.fake_content import parse_prompt
from orchestrator.testing.fakes import FakeGateway, fake_ports

DEFAULTS = CouncilDefaults(model="fake-llm", temperature=0.7, max_tokens=512)
TASK = "Write a Python function that merges two sorted lists into one sorted list"


@dataclass
class SeenGateway:
    """The fake gateway, keeping what each propose call was sent: (agent, temperature, system, user)."""

    inner: FakeGateway = field(default_factory=FakeGateway)
    proposals: list[tuple[str, float, str, str]] = field(default_factory=list)

    async def complete(self, agent: AgentSpec, call: AgentCall) -> Completion:
        if call.stage is Stage.PROPOSE:
            self.proposals.append((agent.agent_id, agent.temperature, call.prompt.system, call.prompt.user))
        return await self.inner.complete(agent, call)


async def proposals_of(role: str, agents: int) -> list[tuple[str, float, str, str]]:
    gateway = SeenGateway()
    app = compose(fake_ports(gateway), Options(DEFAULTS, default_timeout_s=30.0)).orchestrator  # type: ignore[arg-type]
    await app.create_council(CreateCouncil(role=role, num_agents=agents))
    await app.deliberate(Deliberate(TASK, role, rounds=0))
    return sorted(gateway.proposals)


async def test_a_dev_councils_first_proposal_is_the_greedy_plain_answer() -> None:
    seen = await proposals_of("DEV", 3)
    assert [(a, t) for a, t, _, _ in seen] == [("agent-dev-001", 0.0), ("agent-dev-002", 0.7), ("agent-dev-003", 0.85)]
    first, *others = seen
    assert first[2] == prompts.PLAIN_SYSTEM
    assert not first[3].startswith("Stage:") and TASK in first[3] and "```python" in first[3]
    for _, _, system, user in others:
        assert system != prompts.PLAIN_SYSTEM and user.startswith(f"Stage: {Stage.PROPOSE}") and TASK in user


@pytest.mark.parametrize(("role", "agents"), [("QA", 3), ("DEVOPS", 2), ("DEV", 1)])
async def test_other_roles_and_a_council_of_one_propose_as_configured(role: str, agents: int) -> None:
    seen = await proposals_of(role, agents)
    assert len(seen) == agents
    for _, _, system, user in seen:
        assert system != prompts.PLAIN_SYSTEM and user.startswith(f"Stage: {Stage.PROPOSE}")
    assert seen[0][1] == pytest.approx(0.7 - 0.15 * (agents - 1) / 2)


def test_the_plain_prompt_keeps_the_tasks_context_its_answer_format_and_stop() -> None:
    task = TaskSpec(
        task_id="t",
        description="Implement `f`",
        role=Role.DEV,
        rounds=0,
        num_agents=3,
        requirements=("pure",),
        acceptance_tests="f()",
    )
    plain, council = prompts.propose_plain(task), prompts.propose(task)
    assert plain.stop == council.stop == prompts.CODE_STOP
    assert "Requirements:\n- pure" in plain.user and "Acceptance tests" in plain.user
    assert plain.user.endswith(prompts.CODE_FORMAT) and prompts.PERSONAS[Role.DEV] not in plain.system


@pytest.mark.parametrize("role", [Role.DEV, Role.QA, Role.DEVOPS])
def test_the_fake_llm_reads_the_plain_prompt_as_the_same_proposal_request(role: Role) -> None:
    task = TaskSpec(task_id="t", description="Write `f`", role=role, rounds=0, num_agents=3, requirements=("fast",))
    plain = parse_prompt(prompts.propose_plain(task).user)
    assert plain == parse_prompt(prompts.propose(task).user) and plain.stage == Stage.PROPOSE


def _suite(score: float) -> CheckSuite:
    return replace(CheckSuite(PolicyResult(True), LintResult(True), DryRunResult(True)), score=score)


def _evidence(author: str, group: tuple[str, ...], spec_pass: bool = True) -> ProposalEvidence:
    return ProposalEvidence(author, 0, (UnitOutcome("example-1", spec_pass),), behaviour_group=group, defines_task=True)


SPEC = Specification((CheckUnit("example-1", UnitSource.EXAMPLE, "assert f(1) == 1"),))


def test_among_proposals_the_evidence_cannot_tell_apart_the_greedy_answer_goes_first() -> None:
    proposals = [Proposal(a, Role.DEV, f"```python\n# {a}\n```", 0) for a in ("a", "b", "c")]
    checks = {"a": _suite(0.97), "b": _suite(1.0), "c": _suite(1.0)}
    apart = {a: _evidence(a, (a,)) for a in "abc"}
    scores = [PeerScore("b", "c", 9.0, ""), PeerScore("c", "b", 9.0, "")]
    plain = rank_by_evidence(proposals, checks, scores, evidence=apart, spec=SPEC)
    assert plain[0].proposal.author_id != "a"  # behind on static checks and unscored
    ranked = rank_by_evidence(proposals, checks, scores, evidence=apart, spec=SPEC, greedy="a")
    assert ranked[0].proposal.author_id == "a"
    assert "the greedy answer" in ranked[0].rank_reason and "on being the greedy answer" in ranked[0].rank_reason
    # Three behaviours tie on the evidence: with the greedy answer among them the peers are not asked.
    assert not evidence_decides(proposals, checks, apart, SPEC)
    assert evidence_decides(proposals, checks, apart, SPEC, "a")


def test_the_greedy_answer_never_outranks_stronger_evidence() -> None:
    proposals = [Proposal(a, Role.DEV, "x", 0) for a in ("a", "b", "c")]
    checks = {a: _suite(1.0) for a in "abc"}
    evidence = {"a": _evidence("a", ("a",)), "b": _evidence("b", ("b", "c")), "c": _evidence("c", ("b", "c"))}
    assert (
        rank_by_evidence(proposals, checks, (), evidence=evidence, spec=SPEC, greedy="a")[0].proposal.author_id == "b"
    )
    failing = {**evidence, "a": _evidence("a", ("a",), spec_pass=False), "b": _evidence("b", ("b",))}
    ranked = rank_by_evidence(proposals[:2], checks, (), evidence=failing, spec=SPEC, greedy="a")
    assert ranked[0].proposal.author_id == "b"


async def test_the_greedy_author_is_the_first_dev_agent_while_its_proposal_is_unrevised() -> None:
    gateway = SeenGateway()
    app = compose(fake_ports(gateway), Options(DEFAULTS, default_timeout_s=30.0)).orchestrator  # type: ignore[arg-type]
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    done = await app.deliberate(Deliberate(TASK, "DEV", rounds=0))
    assert done.greedy_agent_id == "agent-dev-001" and done.greedy_author == "agent-dev-001"
    first = done.progress.proposals["agent-dev-001"]
    revised = done.with_progress(
        proposals={**done.progress.proposals, "agent-dev-001": replace(first, revisions=("new",))}
    )
    assert revised.greedy_agent_id == "agent-dev-001" and revised.greedy_author == ""
    one = replace(done, agents=done.agents[:1])
    assert one.greedy_agent_id == "" and one.greedy_author == ""
