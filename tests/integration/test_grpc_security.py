"""The server's security options on a real grpc.aio server (port 0): protected reflection, the plaintext health
port, and what a token-protected server answers before the handler runs."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from structlog.testing import capture_logs

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.grpc.server import GrpcServer, ServerSecurity, create_server
from orchestrator.adapters.grpc.tls import TlsConfig
from orchestrator.adapters.metrics.prometheus import DeliberationMetrics, RefusedCallsCollector
from orchestrator.application.commands import CouncilDefaults
from orchestrator.compose import Options, compose
from orchestrator.domain.errors import ConfigError
from orchestrator.testing.fakes import FakeGateway, fake_ports
from tests.certs import Authority

pytestmark = pytest.mark.integration

READER = (("authorization", "Bearer reader-token"),)


@pytest.fixture
async def protected(tmp_path: Path) -> AsyncIterator[GrpcServer]:
    (tmp_path / "tokens").write_text("reader-token read\nwriter-token write\n")
    security = ServerSecurity(tokens_file=tmp_path / "tokens", protect_reflection=True, health_port=0)
    bound = create_server(None, "127.0.0.1", 0, security=security)
    await bound.start()
    await bound.health.set(True)
    yield bound
    await bound.stop(0)


async def _list_services(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(metadata=metadata)
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await call.done_writing()
    return {s.name async for answer in call for s in answer.list_services_response.service}


async def test_protected_reflection_needs_a_token_and_health_never_does(protected: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{protected.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _list_services(channel)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "fleet.orchestrator.v1.OrchestratorService" in await _list_services(channel, READER)
        health = health_pb2_grpc.HealthStub(channel)
        assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING


async def test_the_health_port_serves_health_and_nothing_else(protected: GrpcServer) -> None:
    assert protected.probe_port and protected.probe_port != protected.port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{protected.probe_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        name = "fleet.orchestrator.v1.OrchestratorService"
        answer = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        await protected.health.set(False)
        answer = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING, "the same statuses as the main port"
        stub = pb_grpc.OrchestratorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as absent:
            await stub.GetStatus(pb.GetStatusRequest(), metadata=READER)
        assert absent.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_refusal_comes_before_the_handler_even_with_no_application_attached(protected: GrpcServer) -> None:
    # No app is attached: a call that got past the interceptor would be UNAVAILABLE ("still starting up").
    async with grpc.aio.insecure_channel(f"127.0.0.1:{protected.port}") as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CancelDeliberation(pb.CancelDeliberationRequest(task_id="t"), metadata=READER)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as admitted:
            await stub.GetStatus(pb.GetStatusRequest(), metadata=READER)
        assert admitted.value.code() == grpc.StatusCode.UNAVAILABLE


def test_unusable_files_fail_server_construction_with_the_setting_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AUTH_TOKENS_FILE"):
        create_server(None, "127.0.0.1", 0, security=ServerSecurity(tokens_file=tmp_path / "none"))
    with pytest.raises(ConfigError, match="AUTH_PROTECT_REFLECTION"):
        create_server(None, "127.0.0.1", 0, security=ServerSecurity(protect_reflection=True))


async def test_a_flood_of_refused_calls_is_counted_in_full_and_logged_once(protected: GrpcServer) -> None:
    assert protected.refusals is not None
    metrics = DeliberationMetrics()
    RefusedCallsCollector(protected.refusals.snapshot, registry=metrics.registry)
    codes: list[grpc.StatusCode] = []
    with capture_logs() as logs:
        for _ in range(10):  # 1,000 calls without a token: 100 at a time over 10 new connections (new ports)
            channels = [grpc.aio.insecure_channel(f"127.0.0.1:{protected.port}") for _ in range(10)]
            calls = [
                pb_grpc.OrchestratorServiceStub(channels[i % 10]).GetStatus(pb.GetStatusRequest()) for i in range(100)
            ]
            for outcome in await asyncio.gather(*calls, return_exceptions=True):
                assert isinstance(outcome, grpc.aio.AioRpcError)
                codes.append(outcome.code())
            await asyncio.gather(*(channel.close() for channel in channels))
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 1_000
    lines = [entry for entry in logs if entry["event"] == "rpc_refused"]
    assert len(lines) == 1 and lines[0]["client"] == "ipv4:127.0.0.1"  # one client, one line per interval
    labels = {"code": "UNAUTHENTICATED", "reason": "missing_token"}
    assert metrics.registry.get_sample_value("orchestrator_grpc_refused_calls_total", labels) == 1_000


async def test_get_status_warns_while_the_tokens_file_is_gone_and_the_last_tokens_still_work(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("reader-token read\nwriter-token write\n")
    app = compose(fake_ports(FakeGateway()), Options(CouncilDefaults("fake-llm", 0.7, 256))).orchestrator
    bound = create_server(app, "127.0.0.1", 0, security=ServerSecurity(tokens_file=tokens))
    await bound.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{bound.port}") as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            assert list((await stub.GetStatus(pb.GetStatusRequest(), metadata=READER)).warnings) == []
            tokens.unlink()
            await asyncio.sleep(1.2)  # the file is looked at once a second
            with capture_logs() as logs:
                status = await stub.GetStatus(pb.GetStatusRequest(), metadata=READER)
                await stub.GetStatus(pb.GetStatusRequest(), metadata=READER)
            assert list(status.warnings) == [
                f"AUTH_TOKENS_FILE {tokens}: the file is gone; still serving with the 2 tokens last read"
            ]
            assert [e["event"] for e in logs if e["log_level"] == "error"] == ["auth_tokens_file_problem"]
            tokens.write_text("reader-token read\n")
            await asyncio.sleep(1.2)
            assert list((await stub.GetStatus(pb.GetStatusRequest(), metadata=READER)).warnings) == []
    finally:
        await bound.stop(0)


async def test_tls_refuses_an_expired_certificate_at_start_up_and_get_status_warns_of_one_expiring(
    tmp_path: Path,
) -> None:
    ca, now = Authority("ca"), datetime.datetime.now(datetime.UTC)
    ca.issue("server", server=True, valid_from=now - datetime.timedelta(days=90), valid_until=now).write(
        tmp_path / "tls.crt", tmp_path / "tls.key"
    )
    tls = TlsConfig(tmp_path / "tls.crt", tmp_path / "tls.key")
    with pytest.raises(ConfigError, match=r"GRPC_TLS_CERT .*the certificate expired at"):
        create_server(None, "127.0.0.1", 0, security=ServerSecurity(tls=tls))
    ca.issue("server", server=True, valid_until=now + datetime.timedelta(days=5)).write(
        tmp_path / "tls.crt", tmp_path / "tls.key"
    )
    app = compose(fake_ports(FakeGateway()), Options(CouncilDefaults("fake-llm", 0.7, 256))).orchestrator
    bound = create_server(app, "127.0.0.1", 0, security=ServerSecurity(tls=tls))
    await bound.start()
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.pem)
        async with grpc.aio.secure_channel(f"localhost:{bound.port}", credentials) as channel:
            status = await pb_grpc.OrchestratorServiceStub(channel).GetStatus(pb.GetStatusRequest())
    finally:
        await bound.stop(0)
    assert len(status.warnings) == 1
    assert "the certificate expires at" in status.warnings[0] and "days); renew it" in status.warnings[0]
