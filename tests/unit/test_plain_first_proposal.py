"""The propose stage of a DEV council: the first agent's proposal is the greedy answer to the task asked plainly
(temperature 0, no persona or stage framing); every other agent samples with the council's prompt at its own
temperature. Other roles, and a council of one, propose as configured."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.application.ports import AgentCall, Completion
from orchestrator.compose import Options, compose
from orchestrator.domain import prompts
from orchestrator.domain.model import AgentSpec, Role, Stage, TaskSpec
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
