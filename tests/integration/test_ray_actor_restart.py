"""An agent's worker process dies with a call in flight: the actor restarts and the call is answered (issue 16).

The one-node form of losing a worker node (tests/e2e/test_ray_cluster_failover.py has the multi-node one): the
actor's process is SIGKILLed, as the kernel's OOM killer would; Ray restarts the actor (`max_restarts`) and sends
the call again (`max_task_retries`), and the status reports the restart."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import ray

from orchestrator.adapters.llm.openai_chat import LLMEndpoint
from orchestrator.adapters.ray.agents import RayAgents, RayConfig
from orchestrator.application.ports import AgentCall
from orchestrator.domain import prompts
from orchestrator.domain.model import AgentSpec, Council, Role, Stage, TaskSpec
from orchestrator.testing.fake_llm import FakeLLMServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="tests")
    yield
    if started:
        ray.shutdown()


def until(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def test_a_call_in_flight_when_its_actor_dies_is_answered_by_the_restarted_actor(
    local_ray: None, fake_llm: FakeLLMServer
) -> None:
    from ray._private.state import state as gcs_state

    fake_llm.set_latency(2.0)
    agent = AgentSpec("agent-dev-001", Role.DEV, "fake-llm", temperature=0.7, seed=1, max_tokens=64)
    council = Council("council-dev", Role.DEV, (agent,), rounds=1, model="fake-llm")
    runtime = RayAgents(
        RayConfig(namespace=f"restart-{uuid.uuid4().hex[:6]}"), LLMEndpoint(fake_llm.base_url, timeout_s=10)
    )
    await runtime.start_council(council)
    try:
        task = TaskSpec("t", "Write a Python function that adds two numbers", Role.DEV, 0, 1)
        call = asyncio.create_task(runtime.complete(agent, AgentCall("t", Stage.PROPOSE, 0, prompts.propose(task))))
        assert await asyncio.to_thread(until, lambda: fake_llm.in_flight() >= 1)
        actor_id = runtime._actors[agent.agent_id]._actor_id.hex()
        os.kill(gcs_state.actor_table(actor_id)["Pid"], signal.SIGKILL)

        completion = await asyncio.wait_for(call, 60)
        assert completion.content
        assert fake_llm.count(agent_id=agent.agent_id) == 2  # the lost call, and the one sent again
        summary = await runtime.summary()
        assert (summary.actors_alive, summary.actor_restarts) == (1, 1)
        (node,) = summary.node_list
        assert node.alive and node.agents_alive == 1 and node.calls_in_flight == 0
    finally:
        await runtime.stop_council(council)
