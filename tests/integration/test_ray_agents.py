"""Agents as real Ray actors (local Ray, one per test session) calling the fake LLM over HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import ray

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.grpc.server import create_server
from orchestrator.adapters.llm.openai_chat import LLMEndpoint
from orchestrator.adapters.ray.agents import AGENT_RESOURCE, RayAgents, RayConfig
from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.application.ports import AgentCall
from orchestrator.application.service import Orchestrator
from orchestrator.compose import compose
from orchestrator.domain import prompts
from orchestrator.domain.errors import DependencyUnavailableError, LLMCallError
from orchestrator.domain.model import DeliberationStatus, Role, Stage, TaskSpec
from orchestrator.testing.fake_llm import FakeLLMServer, FaultSpec
from orchestrator.testing.fakes import InMemoryCouncilStore, fake_options, fake_ports

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASK = "Write a Python function that validates e-mail addresses"


@pytest.fixture(scope="session")
def local_ray() -> object:
    """Started without the agent resource: RayAgents without an address then places agents anywhere."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="tests")
    yield ray
    ray.shutdown()


@pytest.fixture
async def app(local_ray: object, fake_llm: FakeLLMServer) -> AsyncIterator[Orchestrator]:
    agents = RayAgents(
        RayConfig(namespace=f"test-{uuid.uuid4().hex[:6]}"), LLMEndpoint(fake_llm.base_url, timeout_s=5, max_retries=1)
    )
    councils = InMemoryCouncilStore()
    ports = fake_ports(agents, councils=councils, runtime=agents)
    yield compose(ports, fake_options()).orchestrator
    for council in await councils.all_councils():
        await agents.stop_council(council)


async def test_one_actor_per_agent_named_by_its_id(app: Orchestrator) -> None:
    council = await app.create_council(CreateCouncil(role="QA", num_agents=2))
    assert isinstance(app.runtime, RayAgents)
    namespace = app.runtime._config.namespace
    for agent in council.agents:
        handle = ray.get_actor(agent.agent_id, namespace=namespace)
        assert await handle.ping.remote() == agent.agent_id
    _, removed = await app.delete_council("QA")
    assert removed == 2
    await asyncio.sleep(0.5)
    with pytest.raises(ValueError):
        ray.get_actor(council.agents[0].agent_id, namespace=namespace)


async def test_deliberations_run_on_actors_concurrently_and_reuse_them(
    app: Orchestrator, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_latency(0.2)
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    results = await asyncio.gather(*(app.deliberate(Deliberate(TASK, "DEV", rounds=1)) for _ in range(3)))
    assert all(r.status is DeliberationStatus.COMPLETED for r in results)
    assert fake_llm.max_in_flight >= 9  # three deliberations x three agents in the same stage at once
    assert fake_llm.count() == 3 * 3 * 4


async def test_a_failing_agent_drops_out_and_the_rest_are_ranked(app: Orchestrator, fake_llm: FakeLLMServer) -> None:
    fake_llm.set_fault("agent-dev-002", FaultSpec("500"))
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    result = await app.deliberate(Deliberate(TASK, "DEV", rounds=1))
    assert result.status is DeliberationStatus.COMPLETED
    assert result.failed_agent_ids == ("agent-dev-002",)
    assert "agent-dev-002" not in {r.proposal.author_id for r in result.results}
    assert result.progress.failures[0].error.startswith("http_500")


async def test_cancelling_a_call_cancels_the_actor_task_and_closes_its_request(
    app: Orchestrator, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_fault("agent-data-001", FaultSpec("hang"))
    council = await app.create_council(CreateCouncil(role="DATA", num_agents=1))
    task = TaskSpec("t", TASK, Role.DATA, 0, 1)
    call = asyncio.create_task(
        app.supervisor.gateway.complete(council.agents[0], AgentCall("t", Stage.PROPOSE, 0, prompts.propose(task)))
    )
    await asyncio.sleep(1.0)
    assert fake_llm.in_flight() == 1
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await asyncio.to_thread(fake_llm.wait_for_calls, 1, "agent-data-001", None, 5.0)
    assert fake_llm.calls()[0].disconnected


async def test_a_second_process_attaching_to_the_actors_does_not_cut_off_calls_in_flight(
    app: Orchestrator, fake_llm: FakeLLMServer
) -> None:
    council = await app.create_council(CreateCouncil(role="ARCHITECT", num_agents=1))
    assert isinstance(app.runtime, RayAgents)
    fake_llm.set_latency(1.5)
    task = TaskSpec("t", TASK, Role.ARCHITECT, 0, 1)
    call = asyncio.create_task(
        app.runtime.complete(council.agents[0], AgentCall("t", Stage.PROPOSE, 0, prompts.propose(task)))
    )
    await asyncio.sleep(0.5)
    # Another replica (or the next pod of a rolling update) with the same settings re-attaches meanwhile.
    replica = RayAgents(app.runtime._config, app.runtime._endpoint)
    await replica.start_council(council)
    completion = await call
    assert completion.content and not fake_llm.calls()[0].disconnected
    # Changed settings take effect for new calls, and the old client still finished its call above.
    changed = RayAgents(app.runtime._config, LLMEndpoint(fake_llm.base_url, timeout_s=7, max_retries=0))
    await changed.start_council(council)
    handle = ray.get_actor(council.agents[0].agent_id, namespace=app.runtime._config.namespace)
    assert await handle.reconfigure.remote(LLMEndpoint(fake_llm.base_url, timeout_s=7, max_retries=0)) is False


async def test_a_replica_uses_the_actors_of_a_council_another_replica_created(
    app: Orchestrator, fake_llm: FakeLLMServer
) -> None:
    council = await app.create_council(CreateCouncil(role="DEVOPS", num_agents=1))
    assert isinstance(app.runtime, RayAgents)
    other = RayAgents(app.runtime._config, app.runtime._endpoint)  # knows nothing of the council
    task = TaskSpec("t", TASK, Role.DEVOPS, 0, 1)
    completion = await other.complete(council.agents[0], AgentCall("t", Stage.PROPOSE, 0, prompts.propose(task)))
    assert completion.content
    await app.delete_council("DEVOPS")  # deleted on the first replica: the second one's call now says so
    await asyncio.sleep(0.5)
    with pytest.raises(LLMCallError):
        await other.complete(council.agents[0], AgentCall("t", Stage.PROPOSE, 0, prompts.propose(task)))
    with pytest.raises(LLMCallError, match="not running"):
        await other.complete(council.agents[0], AgentCall("t", Stage.PROPOSE, 0, prompts.propose(task)))


def _cluster_config(**changes: object) -> RayConfig:
    """This process's Ray (started without the agent resource) seen as a cluster, through its address."""
    address = ray.get_runtime_context().gcs_address
    return RayConfig(address=address, namespace=f"test-{uuid.uuid4().hex[:6]}", **changes)  # type: ignore[arg-type]


async def test_a_cluster_without_the_agent_resource_refuses_a_council_within_30_s(
    local_ray: object, fake_llm: FakeLLMServer
) -> None:
    assert AGENT_RESOURCE not in ray.cluster_resources()
    assert RayConfig().placement_wait_s < 30  # the service's own wait: the refusal comes within 30 s
    # The wait is shortened here: what it waits for (a node offering the resource) never comes in this cluster.
    agents = RayAgents(_cluster_config(placement_wait_s=2.0), LLMEndpoint(fake_llm.base_url, timeout_s=5))
    app = compose(fake_ports(agents, runtime=agents), fake_options()).orchestrator
    bound = create_server(app, "127.0.0.1", 0)
    await bound.server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{bound.port}") as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV", num_agents=2), timeout=120)
            elapsed = time.monotonic() - started
            listed = await stub.ListCouncils(pb.ListCouncilsRequest())
    finally:
        await bound.server.stop(0)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert elapsed < 30
    details = refused.value.details() or ""
    assert "'fleet_agent'" in details
    assert """--resources='{"fleet_agent": N}'""" in details
    assert "RAY_AGENT_RESOURCE to empty" in details
    assert not listed.councils  # no half-created council
    with pytest.raises(ValueError):
        ray.get_actor("agent-dev-001", namespace=agents._config.namespace)  # and no actor waiting for a slot


async def test_an_empty_agent_resource_places_the_agents_on_any_node(
    local_ray: object, fake_llm: FakeLLMServer
) -> None:
    agents = RayAgents(_cluster_config(agent_resource=""), LLMEndpoint(fake_llm.base_url, timeout_s=5))
    app = compose(fake_ports(agents, runtime=agents), fake_options()).orchestrator
    council = await app.create_council(CreateCouncil(role="QA", num_agents=1))
    try:
        handle = ray.get_actor(council.agents[0].agent_id, namespace=agents._config.namespace)
        assert await handle.ping.remote() == council.agents[0].agent_id
    finally:
        await agents.stop_council(council)


async def test_actors_not_ready_in_time_are_refused_and_removed(local_ray: object, fake_llm: FakeLLMServer) -> None:
    # More CPUs than any node has: the actor can never be placed, whatever the agent resource.
    config = _cluster_config(agent_resource="", num_cpus=512.0, actor_start_timeout_s=3.0)
    agents = RayAgents(config, LLMEndpoint(fake_llm.base_url, timeout_s=5))
    app = compose(fake_ports(agents, runtime=agents), fake_options()).orchestrator
    started = time.monotonic()
    with pytest.raises(DependencyUnavailableError, match="not ready within 3 s"):
        await app.create_council(CreateCouncil(role="DATA", num_agents=1))
    assert time.monotonic() - started < 15
    await asyncio.sleep(0.5)
    with pytest.raises(ValueError):
        ray.get_actor("agent-data-001", namespace=config.namespace)
