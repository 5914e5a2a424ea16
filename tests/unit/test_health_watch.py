"""The dependency watch (adapters/grpc/health.py): gRPC health follows the store and NATS, the "llm" name the probe."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from grpc_health.v1 import health_pb2

from orchestrator.adapters.grpc.health import LLM_HEALTH_NAME, Dependencies, Health, watch_dependencies

SERVICE = "fleet.orchestrator.v1.OrchestratorService"


class Flaky:
    """A store whose ping fails while `down`, and a bus connected unless `disconnected`."""

    def __init__(self) -> None:
        self.down = False
        self.disconnected = False
        self.llm: bool | None = True

    async def ping(self) -> None:
        if self.down:
            raise ConnectionError("refused")

    async def check_llm(self, timeout_s: float) -> bool | None:
        return self.llm


class NoStatus(LookupError):
    pass


class Context:
    """What HealthServicer.Check needs of a call's context: an abort (a name with no status yet)."""

    async def abort(self, code: object, details: str = "") -> None:
        raise NoStatus(code)


async def status(health: Health, name: str) -> int:
    request = health_pb2.HealthCheckRequest(service=name)
    return int((await health.servicer.Check(request, Context())).status)


async def eventually(condition: Callable[[], Awaitable[bool]], timeout_s: float = 2.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.01)


async def test_health_leaves_service_while_the_store_or_nats_is_down_and_returns_after() -> None:
    health, deps = Health(SERVICE), Flaky()
    await health.set(True)
    watch = Dependencies(ping_store=deps.ping, check_llm=deps.check_llm, bus_connected=lambda: not deps.disconnected)
    task = asyncio.create_task(watch_dependencies(health, watch, interval_s=0.02))
    try:
        serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        deps.down = True
        await eventually(lambda: _is(health, "", not_serving))
        assert not health.serving and await status(health, SERVICE) == not_serving
        deps.down = False
        await eventually(lambda: _is(health, SERVICE, serving))
        assert health.serving
        deps.disconnected = True
        await eventually(lambda: _is(health, "", not_serving))
        deps.disconnected = False
        await eventually(lambda: _is(health, "", serving))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_llm_name_follows_the_probe_and_the_overall_status_does_not() -> None:
    health, deps = Health(SERVICE), Flaky()
    await health.set(True)
    watch = Dependencies(ping_store=deps.ping, check_llm=deps.check_llm)
    task = asyncio.create_task(watch_dependencies(health, watch, interval_s=0.02))
    try:
        await eventually(lambda: _is(health, LLM_HEALTH_NAME, health_pb2.HealthCheckResponse.SERVING))
        deps.llm = False
        await eventually(lambda: _is(health, LLM_HEALTH_NAME, health_pb2.HealthCheckResponse.NOT_SERVING))
        assert health.serving and await status(health, "") == health_pb2.HealthCheckResponse.SERVING
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _is(health: Health, name: str, expected: int) -> bool:
    try:
        return await status(health, name) == expected
    except NoStatus:
        return False
