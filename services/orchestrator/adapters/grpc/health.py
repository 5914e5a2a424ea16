"""grpc.health.v1 for the orchestrator: the serving status of the server and its service, the "llm" name, and
the watch that keeps them true while the service runs (what GetStatus says follows the same status)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

log = structlog.get_logger("orchestrator.serve")

LLM_HEALTH_NAME = "llm"
"""The grpc.health.v1 service name that reports the LLM endpoint. The overall status ("") does not follow it:
an LLM outage is everyone's, and deliberations ride it out, so taking replicas out of service helps nobody."""


def _status(up: bool) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    return health_pb2.HealthCheckResponse.SERVING if up else health_pb2.HealthCheckResponse.NOT_SERVING


class Health:
    """Serving status for the overall server ("") and the orchestrator service, and the LLM endpoint's under
    LLM_HEALTH_NAME. `serving` is the last status set (True until one is), which GetStatus reports too."""

    def __init__(self, service: str) -> None:
        self.servicer = HealthServicer()
        self._service = service
        self._serving = True

    @property
    def serving(self) -> bool:
        return self._serving

    async def set(self, serving: bool) -> None:
        self._serving = serving
        for name in ("", self._service):
            await self.servicer.set(name, _status(serving))

    async def set_llm(self, reachable: bool) -> None:
        await self.servicer.set(LLM_HEALTH_NAME, _status(reachable))


CheckLLM = Callable[[float], Awaitable[bool | None]]
"""Probes the LLM endpoint once within the given seconds: reachable or not, None without a probe."""


@dataclass(frozen=True)
class Dependencies:
    """What the watch probes: the store (required), NATS when enabled (required), the LLM endpoint (reported)."""

    ping_store: Callable[[], Awaitable[None]]
    check_llm: CheckLLM
    bus_connected: Callable[[], bool] | None = None


async def watch_dependencies(health: Health, dependencies: Dependencies, interval_s: float = 2.0) -> None:
    """Health is NOT_SERVING while the store (or NATS, when enabled) is unreachable, SERVING again after; the
    "llm" name follows a periodic probe of the LLM endpoint. Runs until cancelled."""
    await asyncio.gather(
        watch_store(health, dependencies, interval_s), watch_llm(health, dependencies.check_llm, interval_s)
    )


async def watch_llm(health: Health, check_llm: CheckLLM, interval_s: float) -> None:
    while True:
        reachable = await check_llm(max(1.0, interval_s))
        if reachable is not None:
            await health.set_llm(reachable)
        await asyncio.sleep(interval_s)


async def _problem(dependencies: Dependencies, timeout_s: float) -> str:
    try:
        await asyncio.wait_for(dependencies.ping_store(), timeout=timeout_s)
    except Exception as exc:
        return f"store: {exc}"
    if dependencies.bus_connected is not None and not dependencies.bus_connected():
        return "nats: disconnected"
    return ""


async def watch_store(health: Health, dependencies: Dependencies, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        problem = await _problem(dependencies, max(1.0, interval_s))
        if health.serving == (not problem):
            continue
        await health.set(not problem)
        if not problem:
            log.info("dependencies_back", health="SERVING")
        else:
            log.warning("dependency_down", health="NOT_SERVING", problem=problem)
