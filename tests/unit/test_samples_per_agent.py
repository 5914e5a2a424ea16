"""Proposals per agent (`samples_per_agent`): each agent of the council proposes that many times in the propose
stage, each extra sample with a seed of its own and an author id of its own (`agent-dev-001.s2`). Every sample is
checked and ranked; only the agent's own proposal is revised; peers never review their own samples; an agent that
drops out takes its samples with it, a sample that fails is only a candidate fewer. Where a DEV task asks for more
than one, the first agent's own proposal is the greedy answer to the task asked plainly."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.adapters.grpc.client import DeliberationSpec
from orchestrator.adapters.grpc.mapping import deliberate_command
from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.application.ports import AgentCall, Completion
from orchestrator.compose import Options, compose
from orchestrator.domain import prompts
from orchestrator.domain.errors import InvalidArgumentError, LLMCallError, TaskIdConflictError
from orchestrator.domain.model import AgentSpec, CallErrorKind, DeliberationStatus, Role, Stage, TaskSpec, agent_of
from orchestrator.testing.fakes import FakeGateway, fake_ports

DEFAULTS = CouncilDefaults(model="fake-llm", temperature=0.7, max_tokens=512)
TASK = "Write a Python function that merges two sorted lists into one sorted list"


@dataclass
class SeenGateway:
    """The fake gateway, keeping each propose call: (agent, temperature, seed, system, user). `failing_seeds`:
    propose calls with these seeds fail (one sample of an agent, not the agent)."""

    inner: FakeGateway = field(default_factory=FakeGateway)
    proposals: list[tuple[str, float, int, str, str]] = field(default_factory=list)
    failing_seeds: set[int] = field(default_factory=set)

    async def complete(self, agent: AgentSpec, call: AgentCall) -> Completion:
        if call.stage is Stage.PROPOSE:
            self.proposals.append((agent.agent_id, agent.temperature, agent.seed, call.prompt.system, call.prompt.user))
            if agent.seed in self.failing_seeds:
                raise LLMCallError(agent.agent_id, CallErrorKind.HTTP, "injected failure of one sample", status=500)
        return await self.inner.complete(agent, call)


async def deliberate(  # type: ignore[no-untyped-def]
    role: str, agents: int, samples: int | None, *, rounds: int = 0, gateway: SeenGateway | None = None, params=None
):
    gateway = gateway or SeenGateway()
    app = compose(fake_ports(gateway), Options(DEFAULTS, default_timeout_s=30.0)).orchestrator  # type: ignore[arg-type]
    await app.create_council(CreateCouncil(role=role, num_agents=agents, custom_params=params or {}))
    result = await app.deliberate(Deliberate(TASK, role, rounds=rounds, samples=samples))
    return result, gateway


async def test_each_agent_proposes_its_samples_and_every_sample_is_ranked() -> None:
    result, gateway = await deliberate("DEV", 3, 2)
    assert result.status is DeliberationStatus.COMPLETED
    seen = sorted((a, t, s) for a, t, s, _, _ in gateway.proposals)
    assert seen == [
        ("agent-dev-001", 0.0, 1000),  # the greedy plain answer
        ("agent-dev-001", 0.55, 1100),
        ("agent-dev-002", 0.7, 1001),
        ("agent-dev-002", 0.7, 1101),
        ("agent-dev-003", 0.85, 1002),
        ("agent-dev-003", 0.85, 1102),
    ]
    ranked = sorted(r.proposal.author_id for r in result.results)
    assert ranked == sorted(
        ["agent-dev-001", "agent-dev-001.s2", "agent-dev-002", "agent-dev-002.s2", "agent-dev-003", "agent-dev-003.s2"]
    )
    assert {agent_of(a) for a in ranked} == {"agent-dev-001", "agent-dev-002", "agent-dev-003"}
    plain = [(system, user) for a, t, _, system, user in gateway.proposals if t == 0.0]
    assert len(plain) == 1 and plain[0][0] == prompts.PLAIN_SYSTEM and not plain[0][1].startswith("Stage:")
    sampled = [user for _, t, _, _, user in gateway.proposals if t != 0.0]
    assert all(user.startswith(f"Stage: {Stage.PROPOSE}") and TASK in user for user in sampled)


@pytest.mark.parametrize(("role", "samples"), [("DEV", None), ("DEV", 1), ("QA", 2)])
async def test_one_sample_or_another_role_proposes_as_configured(role: str, samples: int | None) -> None:
    result, gateway = await deliberate(role, 3, samples)
    assert len(gateway.proposals) == 3 * (samples or 1)
    assert all(system != prompts.PLAIN_SYSTEM for _, _, _, system, _ in gateway.proposals)
    assert len(result.results) == 3 * (samples or 1)


async def test_the_councils_samples_per_agent_is_the_default_and_the_request_wins() -> None:
    _, gateway = await deliberate("DEV", 2, None, params={"samples_per_agent": "3"})
    assert len(gateway.proposals) == 6
    _, gateway = await deliberate("DEV", 2, 1, params={"samples_per_agent": "3"})
    assert len(gateway.proposals) == 2


@pytest.mark.parametrize("samples", [0, 5, -1])
async def test_out_of_range_samples_are_invalid(samples: int) -> None:
    with pytest.raises(InvalidArgumentError, match="samples_per_agent"):
        await deliberate("DEV", 3, samples)


@pytest.mark.parametrize("value", ["0", "9", "two"])
async def test_a_council_with_bad_samples_per_agent_is_refused(value: str) -> None:
    with pytest.raises(InvalidArgumentError, match="samples_per_agent"):
        await deliberate("DEV", 3, None, params={"samples_per_agent": value})


async def test_only_the_agents_own_proposal_is_revised_and_peers_never_review_their_own_samples() -> None:
    result, gateway = await deliberate("ARCHITECT", 3, 2, rounds=1)
    assert result.status is DeliberationStatus.COMPLETED
    calls = gateway.inner.calls
    revises = [a for a, stage, _ in calls if stage == "revise"]
    assert sorted(revises) == ["agent-architect-001", "agent-architect-002", "agent-architect-003"]
    scored = {r.proposal.author_id: {s.scorer_id for s in r.peer_scores} for r in result.results}
    for author, scorers in scored.items():
        assert agent_of(author) not in scorers
    assert any(scorers for scorers in scored.values())  # the peers were asked (no execution evidence here)
    critiqued = {c.target_id for c in result.progress.critiques}
    assert critiqued and all(t == agent_of(t) for t in critiqued)  # nobody would read a critique of a sample
    revised = {r.proposal.author_id: len(r.proposal.revisions) for r in result.results}
    assert all(revised[a] == 0 for a in revised if a != agent_of(a))


async def test_a_failing_sample_is_a_candidate_fewer_and_a_failing_agent_takes_its_samples() -> None:
    gateway = SeenGateway(failing_seeds={1101})  # agent-dev-002's second sample
    result, _ = await deliberate("DEV", 3, 2, gateway=gateway)
    assert result.status is DeliberationStatus.COMPLETED
    assert "agent-dev-002.s2" not in {r.proposal.author_id for r in result.results}
    assert "agent-dev-002" in {r.proposal.author_id for r in result.results}
    assert result.progress.failures == ()

    gateway = SeenGateway(inner=FakeGateway(failing={"agent-dev-003"}))
    result, _ = await deliberate("DEV", 3, 2, gateway=gateway)
    authors = {r.proposal.author_id for r in result.results}
    assert result.status is DeliberationStatus.COMPLETED  # 2 of 3 agents: the quorum counts agents, not samples
    assert not {"agent-dev-003", "agent-dev-003.s2"} & authors and len(authors) == 4
    assert [f.agent_id for f in result.progress.failures] == ["agent-dev-003"]


def test_the_grpc_field_is_unset_by_default_and_mapped_when_set() -> None:
    assert deliberate_command(pb.DeliberateRequest(task_description="t", role="DEV")).samples is None
    assert deliberate_command(pb.DeliberateRequest(task_description="t", role="DEV", samples_per_agent=2)).samples == 2
    # The client (and so the CLI's --samples) sends the field only when asked.
    assert not DeliberationSpec("t").request().HasField("samples_per_agent")
    assert DeliberationSpec("t", samples=3).request().samples_per_agent == 3


def test_the_plain_prompt_keeps_the_tasks_context_its_answer_format_and_stop() -> None:
    task = TaskSpec("t", "Implement `f`", Role.DEV, 0, 3, requirements=("pure",), acceptance_tests="f()")
    plain, council = prompts.propose_plain(task), prompts.propose(task)
    assert plain.stop == council.stop == prompts.CODE_STOP
    assert "Requirements:\n- pure" in plain.user and "Acceptance tests" in plain.user
    assert plain.user.endswith(prompts.CODE_FORMAT) and prompts.PERSONAS[Role.DEV] not in plain.system


def test_an_author_id_names_its_agent() -> None:
    assert agent_of("agent-dev-001") == "agent-dev-001"
    assert agent_of("agent-dev-001.s2") == "agent-dev-001"
    assert agent_of("agent.sx") == "agent.sx" and agent_of(".s2") == ".s2"


async def test_a_task_id_repeated_with_other_samples_is_a_conflict_and_with_the_same_an_idempotent_retry() -> None:
    app = compose(fake_ports(FakeGateway()), Options(DEFAULTS, default_timeout_s=30.0)).orchestrator
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    first = await app.deliberate(Deliberate(TASK, "DEV", task_id="t-1", rounds=0, samples=2))
    again = await app.deliberate(Deliberate(TASK, "DEV", task_id="t-1", rounds=0, samples=2))
    assert again.task_id == first.task_id and len(again.results) == 4
    assert (await app.deliberate(Deliberate(TASK, "DEV", task_id="t-1", rounds=0))).task_id == "t-1"  # unset: any
    with pytest.raises(TaskIdConflictError, match="samples_per_agent 1"):
        await app.deliberate(Deliberate(TASK, "DEV", task_id="t-1", rounds=0, samples=1))
