"""Running the service: bind the port, build the app, serve until told to stop, shut down gracefully."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from orchestrator.adapters.grpc.health import Dependencies, watch_dependencies
from orchestrator.adapters.grpc.server import GrpcServer, ServerSecurity, bind_server
from orchestrator.adapters.metrics.prometheus import DeliberationMetrics, MetricsServer, RefusedCallsCollector
from orchestrator.adapters.tracing.setup import TracingRuntime
from orchestrator.adapters.web.server import WebServer, local_url, open_web_view
from orchestrator.bootstrap import App, bootstrap, open_tracing
from orchestrator.config import Settings

log = structlog.get_logger("orchestrator.serve")

OnReady = Callable[[str, Settings], Coroutine[Any, Any, None]]

SHUTDOWN_MARGIN_S = 45.0
"""How long the shutdown may take beyond the runs' grace (Ray, NATS, the store and the embedded servers closing)."""

STUCK_EXIT_CODE = 3


def stuck_tasks() -> list[str]:
    """Every pending task of the running loop with where it waits: what a shutdown that hangs is waiting on."""
    current = asyncio.current_task()
    stuck = []
    for task in asyncio.all_tasks():
        if task is not current:
            where = io.StringIO()
            task.print_stack(limit=12, file=where)
            stuck.append(where.getvalue())
    return stuck


async def exit_if_shutdown_hangs(stop: asyncio.Event, limit_s: float, last_words: Callable[[], None]) -> None:
    """Bounds the shutdown: `limit_s` after `stop` is set the process logs what it is still waiting on, says
    `last_words()` and exits with STUCK_EXIT_CODE. Nothing is lost by it: runs resume from their last checkpoint
    at the next start, as after a SIGKILL, and an orchestrator that never exits is worse than one that exits."""
    await stop.wait()
    await asyncio.sleep(limit_s)
    log.error("shutdown_stuck", waited_s=limit_s, tasks=stuck_tasks())
    try:
        last_words()
    finally:
        sys.stdout.flush()  # os._exit skips the interpreter's own flushing
        sys.stderr.flush()
        os._exit(STUCK_EXIT_CODE)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def _dependencies(app: App) -> Dependencies:
    bus = app.bus
    return Dependencies(
        ping_store=app.store.ping,
        check_llm=app.orchestrator.check_llm,
        bus_connected=(lambda: bus.connected) if bus is not None else None,
    )


async def run_service(settings: Settings, stop: asyncio.Event, on_ready: OnReady | None = None) -> None:
    """Serves until `stop` is set. `on_ready(address, settings)` runs alongside once the service answers; the
    stop event is what ends both."""
    # The port is bound before Ray starts, so none of Ray's own ports can take it.
    security = ServerSecurity.from_settings(settings)
    tracing = open_tracing()  # off unless OTEL_* asks for it; a bad value stops start-up here
    grpc_server = bind_server(settings.grpc_host, settings.grpc_port, security=security, tracing=tracing)
    # Bound now as well, serving once the application is built; the gRPC server's tokens and refusal log
    web = open_web_view(settings, security, grpc_server.tokens, grpc_server.refusals)
    metrics = DeliberationMetrics()
    if grpc_server.refusals is not None:
        refusals = grpc_server.refusals
        RefusedCallsCollector(refusals.snapshot, registry=metrics.registry, web_counts=refusals.web_snapshot)
    metrics_server = (
        MetricsServer(metrics.registry, settings.grpc_host, settings.metrics_port) if settings.metrics_port else None
    )
    if metrics_server is not None:
        log.info("metrics_listening", port=metrics_server.port, path="/metrics")
    try:
        await _serve(settings, stop, on_ready, grpc_server, metrics, tracing, web)
    finally:
        if web is not None:
            await web.stop()
        if metrics_server is not None:
            metrics_server.close()
        await tracing.shutdown()  # exports the spans still buffered
    log.info("stopped")


async def _serve(
    settings: Settings,
    stop: asyncio.Event,
    on_ready: OnReady | None,
    grpc_server: GrpcServer,
    metrics: DeliberationMetrics,
    tracing: TracingRuntime,
    web: WebServer | None = None,
) -> None:
    port, health = grpc_server.port, grpc_server.health
    async with bootstrap(settings, metrics, tracing=tracing) as built:
        grpc_server.register(built.orchestrator)
        await grpc_server.start()
        await health.set(True)
        log.info("grpc_listening", port=port)
        if web is not None:
            await web.start(built.orchestrator)
            log.info("web_listening", port=web.port, url=local_url(web, settings.grpc_host))
            settings = settings.model_copy(update={"web_port": web.port})  # what on_ready sees: the bound port
        watcher = asyncio.create_task(watch_dependencies(health, _dependencies(built)))
        companion = asyncio.create_task(on_ready(f"127.0.0.1:{port}", settings)) if on_ready else None
        await stop.wait()
        log.info("shutting_down", grace_s=settings.shutdown_grace)
        watcher.cancel()
        await health.set(False)
        if companion is not None and not companion.done():
            companion.cancel()
        elif companion is not None and not companion.cancelled() and (error := companion.exception()) is not None:
            log.error("companion_failed", error=f"{type(error).__name__}: {error}")
        # Runs get the grace period to finish; the rest stay at their last checkpoint and resume next start.
        await built.orchestrator.supervisor.shutdown(settings.shutdown_grace)
        await grpc_server.stop(1.0)
