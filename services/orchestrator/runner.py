"""Running the service: bind the port, build the app, serve until told to stop, shut down gracefully."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from orchestrator.adapters.grpc.server import create_server
from orchestrator.bootstrap import bootstrap
from orchestrator.config import Settings

log = structlog.get_logger("orchestrator.serve")

OnReady = Callable[[str, Settings], Coroutine[Any, Any, None]]


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def run_service(settings: Settings, stop: asyncio.Event, on_ready: OnReady | None = None) -> None:
    """Serves until `stop` is set. `on_ready(address, settings)` runs alongside once the service answers; the
    stop event is what ends both."""
    # The port is bound before Ray starts, so none of Ray's own ports can take it.
    grpc_server = create_server(None, settings.grpc_host, settings.grpc_port)
    server, port, health = grpc_server.server, grpc_server.port, grpc_server.health
    async with bootstrap(settings) as built:
        grpc_server.servicer.attach(built.orchestrator)
        await server.start()
        await health.set(True)
        log.info("grpc_listening", port=port)
        companion = asyncio.create_task(on_ready(f"127.0.0.1:{port}", settings)) if on_ready else None
        await stop.wait()
        log.info("shutting_down", grace_s=settings.shutdown_grace)
        await health.set(False)
        if companion is not None and not companion.done():
            companion.cancel()
        # Runs get the grace period to finish; the rest stay at their last checkpoint and resume next start.
        await built.orchestrator.deliberations.shutdown(settings.shutdown_grace)
        await server.stop(1.0)
    log.info("stopped")
