"""The gRPC adapter on a real grpc.aio server (port 0), called through the generated stubs.

The application behind it runs on the in-memory port fakes, so these tests are about the contract:
translation, the error table, health and reflection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.grpc.server import create_server
from orchestrator.compose import compose
from orchestrator.domain.errors import CallErrorKind
from orchestrator.testing.fakes import (
    FakeGateway,
    fake_options,
    fake_ports,
)

pytestmark = pytest.mark.integration

TASK = "Write a Python function that merges two sorted lists"


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    gateway = FakeGateway(
        broken_python={"agent-dev-002"},
        failing={"agent-qa-001", "agent-qa-002"},
        failure_kind=CallErrorKind.UNAVAILABLE,
    )
    app = compose(fake_ports(gateway), fake_options()).orchestrator
    bound = create_server(app, "127.0.0.1", 0)
    await bound.server.start()
    await bound.health.set(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{bound.port}") as ch:
        yield ch
    await bound.server.stop(0)


async def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value.code()


async def test_councils_round_trip_with_the_error_table(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.OrchestratorServiceStub(channel)
    created = await stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV", num_agents=0))
    assert created.agents_created == 3 and created.agent_ids[0] == "agent-dev-001"
    assert await code_of(stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV"))) == grpc.StatusCode.ALREADY_EXISTS
    mock = pb.CreateCouncilRequest(role="QA", config=pb.CouncilConfig(agent_type="MOCK"))
    assert await code_of(stub.CreateCouncil(mock)) == grpc.StatusCode.INVALID_ARGUMENT
    too_many = pb.CreateCouncilRequest(role="QA", num_agents=11)
    assert await code_of(stub.CreateCouncil(too_many)) == grpc.StatusCode.INVALID_ARGUMENT
    listed = await stub.ListCouncils(pb.ListCouncilsRequest(role_filter="DEV", include_agents=True))
    assert [c.role for c in listed.councils] == ["DEV"] and len(listed.councils[0].agents) == 3
    bare = await stub.ListCouncils(pb.ListCouncilsRequest())
    assert bare.councils[0].agents == [] and bare.councils[0].num_agents == 3
    assert await code_of(stub.DeleteCouncil(pb.DeleteCouncilRequest(role="DATA"))) == grpc.StatusCode.NOT_FOUND
    deleted = await stub.DeleteCouncil(pb.DeleteCouncilRequest(role="DEV"))
    assert deleted.success and deleted.agents_removed == 3


async def test_deliberate_returns_ranked_checked_results(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.OrchestratorServiceStub(channel)
    await stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV", num_agents=3))
    response = await stub.Deliberate(pb.DeliberateRequest(task_id="g-1", task_description=TASK, role="DEV", rounds=2))
    assert response.status == pb.DELIBERATION_STATUS_COMPLETED
    assert [r.rank for r in response.results] == [1, 2, 3]
    assert response.winner_id == response.results[0].proposal.author_id
    broken = next(r for r in response.results if r.proposal.author_id == "agent-dev-002")
    assert not broken.checks.lint.passed and broken.checks.lint.errors
    assert response.usage.total_tokens > 0
    again = await stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id="g-1"))
    assert list(again.results) == list(response.results) and len(again.calls) == 3 * 6


async def test_bad_requests_map_to_their_status_codes(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.OrchestratorServiceStub(channel)
    await stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV", num_agents=1))
    cases = [
        (pb.DeliberateRequest(task_description="", role="DEV"), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.DeliberateRequest(task_description=TASK, role="DEV", rounds=6), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.DeliberateRequest(task_description=TASK, role="DEV", num_agents=11), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.DeliberateRequest(task_description="x" * 40_000, role="DEV"), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.DeliberateRequest(task_description=TASK, role="WIZARD"), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.DeliberateRequest(task_description=TASK, role="ARCHITECT"), grpc.StatusCode.FAILED_PRECONDITION),
    ]
    for request, expected in cases:
        assert await code_of(stub.Deliberate(request)) == expected, request
    missing = pb.GetDeliberationResultRequest(task_id="nope")
    assert await code_of(stub.GetDeliberationResult(missing)) == grpc.StatusCode.NOT_FOUND
    no_id = pb.GetDeliberationResultRequest(task_id="")
    assert await code_of(stub.GetDeliberationResult(no_id)) == grpc.StatusCode.INVALID_ARGUMENT
    unknown_status = pb.ListDeliberationsRequest(status_filter=99)  # type: ignore[arg-type]
    assert await code_of(stub.ListDeliberations(unknown_status)) == grpc.StatusCode.INVALID_ARGUMENT


async def test_an_unreachable_llm_is_unavailable(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.OrchestratorServiceStub(channel)
    await stub.CreateCouncil(pb.CreateCouncilRequest(role="QA", num_agents=2))
    # The run waits for the endpoint until its deadline, then ends as unreachable.
    constraints = pb.TaskConstraints(timeout_seconds=1)
    request = pb.DeliberateRequest(task_id="q-1", task_description=TASK, role="QA", constraints=constraints)
    assert await code_of(stub.Deliberate(request)) == grpc.StatusCode.UNAVAILABLE
    result = await stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id="q-1"))
    assert result.status == pb.DELIBERATION_STATUS_FAILED and "unreachable" in result.error_message


async def test_status_health_and_reflection_are_served(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.OrchestratorServiceStub(channel)
    status = await stub.GetStatus(pb.GetStatusRequest(include_stats=True))
    assert status.status == "SERVING" and status.stats.active_councils == 0
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="fleet.orchestrator.v1.OrchestratorService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for answer in reflection.ServerReflectionInfo(iter([request])):
        names = {s.name for s in answer.list_services_response.service}
        assert "fleet.orchestrator.v1.OrchestratorService" in names
        break
