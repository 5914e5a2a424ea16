"""Admission and status through a real grpc.aio server on the SQLite store (whose awaits really yield), with
the fake agent gateway: parallel submits, status during shutdown, the LLM probe and its health name (issue 13)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.grpc.health import LLM_HEALTH_NAME, watch_llm
from orchestrator.adapters.grpc.server import GrpcServer, create_server
from orchestrator.adapters.llm.openai_chat import LLMEndpoint, OpenAIChatClient
from orchestrator.adapters.store.sqlite import SqliteStore
from orchestrator.application.runs.admission import Admission
from orchestrator.application.service import Orchestrator
from orchestrator.compose import compose
from orchestrator.domain.errors import DependencyUnavailableError
from orchestrator.testing.fake_llm import FakeLLMServer
from orchestrator.testing.fakes import FakeGateway, fake_options, fake_ports

pytestmark = pytest.mark.integration

TASK = "Write a Python function that merges two sorted lists"
MAX_RUNNING, MAX_QUEUED = 5, 20


@dataclass
class Served:
    app: Orchestrator
    bound: GrpcServer
    stub: pb_grpc.OrchestratorServiceStub
    channel: grpc.aio.Channel


@pytest.fixture
async def served(tmp_path: Any) -> AsyncIterator[Served]:
    store = await SqliteStore.open(f"sqlite:///{tmp_path}/orchestrator.db")
    gateway = FakeGateway(hang={"agent-dev-001"})  # runs hold their slot until cancelled
    ports = fake_ports(gateway, councils=store, records=store.records)
    options = fake_options(admission=Admission(MAX_RUNNING, MAX_QUEUED))
    app = compose(ports, options).orchestrator
    bound = create_server(app, "127.0.0.1", 0)
    await bound.server.start()
    await bound.health.set(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{bound.port}") as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        await stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV", num_agents=2))
        yield Served(app, bound, stub, channel)
    await app.supervisor.shutdown(0)
    await bound.server.stop(0)
    await store.close()


async def test_parallel_submits_through_grpc_admit_only_the_running_and_queued_limits(served: Served) -> None:
    requests = [pb.DeliberateRequest(task_id=f"par-{i}", task_description=TASK, role="DEV") for i in range(60)]
    outcomes = await asyncio.gather(
        *(served.stub.SubmitDeliberation(r, timeout=30) for r in requests), return_exceptions=True
    )
    accepted = [o for o in outcomes if isinstance(o, pb.SubmitDeliberationResponse)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(accepted) == MAX_RUNNING + MAX_QUEUED
    assert len(refused) == 60 - len(accepted)
    assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    await asyncio.sleep(0.2)
    status = await served.stub.GetStatus(pb.GetStatusRequest())
    assert (status.running_deliberations, status.queue_depth) == (MAX_RUNNING, MAX_QUEUED)


async def test_get_status_says_not_serving_while_the_service_shuts_down(served: Served) -> None:
    await served.stub.SubmitDeliberation(pb.DeliberateRequest(task_id="busy", task_description=TASK, role="DEV"))
    assert (await served.stub.GetStatus(pb.GetStatusRequest())).status == "SERVING"
    shutdown = asyncio.create_task(served.app.supervisor.shutdown(1.0))
    await asyncio.sleep(0.1)
    assert (await served.stub.GetStatus(pb.GetStatusRequest())).status == "NOT_SERVING"
    await shutdown


async def test_get_status_follows_the_serving_state_health_reports(served: Served) -> None:
    await served.bound.health.set(False)  # what the dependency watch sets when the store is unreachable
    assert (await served.stub.GetStatus(pb.GetStatusRequest())).status == "NOT_SERVING"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_llm_health_name_and_status_follow_a_probe_of_the_endpoint(
    served: Served, fake_llm: FakeLLMServer
) -> None:
    up = OpenAIChatClient(LLMEndpoint(fake_llm.base_url))
    down = OpenAIChatClient(LLMEndpoint(f"http://127.0.0.1:{closed_port()}", connect_timeout_s=1.0))
    health = health_pb2_grpc.HealthStub(served.channel)
    llm = health_pb2.HealthCheckRequest(service=LLM_HEALTH_NAME)
    assert (await served.stub.GetStatus(pb.GetStatusRequest())).llm_status == "UNKNOWN"
    served.app.llm_probe = up.probe
    watcher = asyncio.create_task(watch_llm(served.bound.health, served.app.check_llm, 0.1))
    try:
        await asyncio.sleep(0.5)
        assert (await health.Check(llm)).status == health_pb2.HealthCheckResponse.SERVING
        assert (await served.stub.GetStatus(pb.GetStatusRequest())).llm_status == "SERVING"
        served.app.llm_probe = down.probe
        await asyncio.sleep(0.5)
        assert (await health.Check(llm)).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert (await served.stub.GetStatus(pb.GetStatusRequest())).llm_status == "NOT_SERVING"
        overall = await health.Check(health_pb2.HealthCheckRequest())
        assert overall.status == health_pb2.HealthCheckResponse.SERVING  # the LLM is reported, not a reason to leave
    finally:
        watcher.cancel()
        await up.aclose()
        await down.aclose()


async def test_the_probe_raises_unavailable_for_an_endpoint_that_does_not_answer() -> None:
    client = OpenAIChatClient(LLMEndpoint(f"http://127.0.0.1:{closed_port()}"))
    try:
        with pytest.raises(DependencyUnavailableError):
            await client.probe(timeout_s=1.0)
    finally:
        await client.aclose()
