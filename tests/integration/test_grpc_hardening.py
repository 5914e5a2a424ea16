"""The gRPC adapter under hostile input (issue 13): only codes of the error table, bounded messages, bounded
responses, no internals in status details, and connections a client left behind are closed.

A real grpc.aio server on port 0 with the application on the in-memory fakes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.grpc.server import ConnectionLimits, GrpcServer, create_server
from orchestrator.application.ports import RuntimeSummary
from orchestrator.compose import compose
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import CallErrorKind, DependencyUnavailableError
from orchestrator.domain.model import AgentSpec, Council, DeliberationStatus, Role, TaskSpec
from orchestrator.testing.fakes import (
    FakeGateway,
    FakeRuntime,
    InMemoryCouncilStore,
    InMemoryDeliberationStore,
    fake_options,
    fake_ports,
)

pytestmark = pytest.mark.integration

SERVICE = "/fleet.orchestrator.v1.OrchestratorService/"
INTERNALS = "actor_id=f00dfeed pid=4242 namespace=fleet-orchestrator"


@dataclass
class BrokenRuntime(FakeRuntime):
    """A runtime whose failures carry the kind of internals Ray's errors do."""

    async def start_council(self, council: Council) -> None:
        raise DependencyUnavailableError("ray", f"cannot start the council: ActorDiedError({INTERNALS})")

    async def summary(self) -> RuntimeSummary:
        raise RuntimeError(f"GCS lookup failed: {INTERNALS}")


@dataclass
class Served:
    channel: grpc.aio.Channel
    stub: pb_grpc.OrchestratorServiceStub
    councils: InMemoryCouncilStore
    store: InMemoryDeliberationStore


async def serve(runtime: FakeRuntime | None = None) -> tuple[GrpcServer, Served]:
    councils, store = InMemoryCouncilStore(), InMemoryDeliberationStore()
    gateway = FakeGateway(failing={"agent-qa-001", "agent-qa-002"}, failure_kind=CallErrorKind.UNAVAILABLE)
    ports = fake_ports(gateway, councils=councils, records=store, runtime=runtime)
    app = compose(ports, fake_options()).orchestrator
    bound = create_server(app, "127.0.0.1", 0)
    await bound.server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{bound.port}")
    return bound, Served(channel, pb_grpc.OrchestratorServiceStub(channel), councils, store)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    bound, result = await serve()
    yield result
    await result.channel.close()
    await bound.server.stop(0)


async def failure(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


@pytest.mark.parametrize("token", ["99999999999999999999", "²", "9" * 5000, "-5", "1e3"])
async def test_a_page_token_that_is_not_a_small_number_is_invalid_argument(served: Served, token: str) -> None:
    deliberations = await failure(served.stub.ListDeliberations(pb.ListDeliberationsRequest(page_token=token)))
    councils = await failure(served.stub.ListCouncils(pb.ListCouncilsRequest(page_token=token)))
    for error in (deliberations, councils):
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert len(error.details() or "") < 300


def invalid_utf8(method: MethodDescriptor) -> bytes | None:
    """The method's request with its first string field holding bytes that are not UTF-8."""
    strings = [f for f in method.input_type.fields if f.type == FieldDescriptor.TYPE_STRING]
    return bytes([strings[0].number << 3 | 2, 2, 0xFF, 0xFE]) if strings else None


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # invalid UTF-8 in a string field, made per method
        b"\x0a\x05ab",  # a length that runs past the end
        b"\x12\x80",  # a truncated varint length
        b"\x0f",  # field 1 with the reserved wire type 7
    ],
)
async def test_bytes_that_are_not_a_valid_request_are_invalid_argument_on_every_rpc(served: Served, raw: bytes) -> None:
    for method in pb.DESCRIPTOR.services_by_name["OrchestratorService"].methods:
        data = raw or invalid_utf8(method)
        if data is None:
            continue
        if method.server_streaming:
            stream = served.channel.unary_stream(SERVICE + method.name)(data, timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in stream:
                    pass
            error = info.value
        else:
            error = await failure(served.channel.unary_unary(SERVICE + method.name)(data, timeout=10))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method.name, error.details())


async def test_a_huge_task_id_is_answered_with_a_short_message(served: Served) -> None:
    task_id = "t" * 20_000
    for call in (
        served.stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id=task_id)),
        served.stub.CancelDeliberation(pb.CancelDeliberationRequest(task_id=task_id)),
        served.stub.SubmitDeliberation(pb.DeliberateRequest(task_id=task_id, task_description="x", role="DEV")),
    ):
        error = await failure(call)
        assert error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), error.details()
        assert len(error.details() or "") < 300
    role = await failure(served.stub.CreateCouncil(pb.CreateCouncilRequest(role="R" * 1_000_000)))
    assert role.code() == grpc.StatusCode.INVALID_ARGUMENT and len(role.details() or "") < 300


async def test_a_huge_council_profile_is_invalid_argument_naming_the_limit(served: Served) -> None:
    config = pb.CouncilConfig(model_profile="m" * 2_000_000)
    error = await failure(served.stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV", config=config)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "model_profile" in (error.details() or "") and "256" in (error.details() or "")
    params = pb.CouncilConfig(custom_params={f"k{i}": "v" for i in range(100_000)})
    error = await failure(served.stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV", config=params)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "custom_params" in (error.details() or "")


async def test_councils_stored_with_huge_profiles_still_list_for_everyone(served: Served) -> None:
    # A council created before the limit: ten agents repeating a 2 MB profile made 20 MB of ListCouncils.
    profile = "m" * 2_000_000
    agents = tuple(AgentSpec(f"agent-dev-{i:03d}", Role.DEV, profile, 0.7, i, 256) for i in range(10))
    served.councils.councils[Role.DEV] = Council("council-dev-old", Role.DEV, agents, 1, profile)
    listed = await served.stub.ListCouncils(pb.ListCouncilsRequest(include_agents=True))
    assert listed.councils[0].num_agents == 10 and listed.ByteSize() < 1_000_000


async def test_councils_are_listed_in_pages(served: Served) -> None:
    for role in ("DEV", "QA", "DATA"):
        await served.stub.CreateCouncil(pb.CreateCouncilRequest(role=role, num_agents=1))
    first = await served.stub.ListCouncils(pb.ListCouncilsRequest(page_size=2))
    second = await served.stub.ListCouncils(pb.ListCouncilsRequest(page_size=2, page_token=first.next_page_token))
    assert [c.role for c in first.councils] == ["DATA", "DEV"] and first.next_page_token
    assert [c.role for c in second.councils] == ["QA"] and second.next_page_token == ""
    everything = await served.stub.ListCouncils(pb.ListCouncilsRequest())
    assert len(everything.councils) == 3 and everything.next_page_token == ""


async def test_a_full_page_of_deliberations_stays_under_the_message_limit(served: Served) -> None:
    for i in range(200):
        task = TaskSpec(f"big-{i}", "x", Role.DEV, 1, 1)
        record = Deliberation(task, (), DeliberationStatus.FAILED, i, error_message="e" * 100_000)
        await served.store.create(record)
    page = await served.stub.ListDeliberations(pb.ListDeliberationsRequest(page_size=500))
    assert len(page.deliberations) == 200 and page.ByteSize() < 4_000_000


async def test_dependency_and_internal_failures_tell_clients_no_internals() -> None:
    bound, served = await serve(BrokenRuntime())
    try:
        unavailable = await failure(served.stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV")))
        internal = await failure(served.stub.GetStatus(pb.GetStatusRequest()))
    finally:
        await served.channel.close()
        await bound.server.stop(0)
    assert unavailable.code() == grpc.StatusCode.UNAVAILABLE and "ray" in (unavailable.details() or "")
    assert internal.code() == grpc.StatusCode.INTERNAL
    for error in (unavailable, internal):
        details = error.details() or ""
        assert "pid" not in details and "f00dfeed" not in details and "namespace" not in details, details


async def held_for(port: int, send: bytes, limit_s: float) -> float:
    """Seconds until the server closes a raw TCP connection that sent `send` and then nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(send)
    await writer.drain()
    started = time.monotonic()
    try:
        while await asyncio.wait_for(reader.read(1024), limit_s):
            pass
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
    return time.monotonic() - started


async def test_connections_a_client_left_behind_are_closed() -> None:
    limits = ConnectionLimits(handshake_timeout_s=1.0, max_idle_s=1.5)
    bound = create_server(None, "127.0.0.1", 0, limits)
    await bound.server.start()
    try:
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        silent, idle = await asyncio.gather(held_for(bound.port, b"", 8), held_for(bound.port, preface, 8))
    finally:
        await bound.server.stop(0)
    assert silent < 4, "a connection that never spoke HTTP/2 was held"
    assert idle < 5, "an idle HTTP/2 connection was held"


def test_the_default_connection_limits_are_sane() -> None:
    options = dict(ConnectionLimits().options())
    assert options["grpc.server_handshake_timeout_ms"] <= 20_000
    assert options["grpc.keepalive_time_ms"] + options["grpc.keepalive_timeout_ms"] <= 120_000
    assert options["grpc.max_connection_age_grace_ms"] > 3_600_000  # no deliberation is cut by recycling
    assert options["grpc.http2.min_ping_interval_without_data_ms"] < options["grpc.keepalive_time_ms"]
