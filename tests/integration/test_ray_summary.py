"""The Ray summary in GetStatus reports the real state of the very actors this service calls (issue 13)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import ray

from orchestrator.adapters.llm.openai_chat import LLMEndpoint
from orchestrator.adapters.ray.agents import AgentActor, RayAgents, RayConfig
from orchestrator.domain.model import AgentSpec, Council, Role

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENDPOINT = LLMEndpoint("http://127.0.0.1:9", timeout_s=1, max_retries=0)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="tests")
    yield
    if started:
        ray.shutdown()


def council(namespace_tag: str) -> Council:
    agents = tuple(
        AgentSpec(f"agent-dev-{i:03d}", Role.DEV, "fake-llm", temperature=0.7, seed=i, max_tokens=64) for i in (1, 2)
    )
    return Council(f"council-dev-{namespace_tag}", Role.DEV, agents, rounds=1, model="fake-llm")


@pytest.fixture
async def agents(local_ray: None) -> AsyncIterator[RayAgents]:
    runtime = RayAgents(RayConfig(namespace=f"summary-{uuid.uuid4().hex[:6]}", max_restarts=0), ENDPOINT)
    await runtime.start_council(council("a"))
    yield runtime
    await runtime.stop_council(council("a"))


async def eventually(check: object, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def test_a_killed_actor_is_dead_in_the_summary_though_an_actor_of_its_name_lives_elsewhere(
    agents: RayAgents,
) -> None:
    summary = await agents.summary()
    assert (summary.actors_alive, summary.actors_dead) == (2, 0)
    ray.kill(ray.get_actor("agent-dev-001", namespace=agents._config.namespace), no_restart=True)
    # Another deployment on the same cluster (its own namespace) runs an agent of the same name.
    other_namespace = f"other-{uuid.uuid4().hex[:6]}"
    other = (
        ray.remote(AgentActor)
        .options(name="agent-dev-001", namespace=other_namespace, lifetime="detached", num_cpus=0)
        .remote(council("b").agents[0], ENDPOINT)
    )
    try:
        assert await other.ping.remote() == "agent-dev-001"

        async def reported_dead() -> bool:
            s = await agents.summary()
            return (s.actors_alive, s.actors_dead) == (1, 1)

        await eventually(reported_dead)
    finally:
        ray.kill(other, no_restart=True)
