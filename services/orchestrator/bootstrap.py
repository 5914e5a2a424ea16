"""Composition root: builds every adapter from Settings, wires the application, closes all in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from orchestrator.adapters.checks.checker import ThreadedChecker
from orchestrator.adapters.checks.cross_checks import SandboxCrossChecker
from orchestrator.adapters.checks.execution import ExecutionVerifier
from orchestrator.adapters.clock import SystemClock
from orchestrator.adapters.llm.openai_chat import LLMEndpoint, OpenAIChatClient
from orchestrator.adapters.metrics.prometheus import DeliberationMetrics, LiveCollector
from orchestrator.adapters.nats.jetstream import JetStreamBus, NatsConfig
from orchestrator.adapters.nats.planning import plan_approved_handler
from orchestrator.adapters.ray.agents import RayAgents, RayConfig
from orchestrator.adapters.ray.sandbox import RaySandbox
from orchestrator.adapters.sandbox import BwrapConfig, open_sandbox
from orchestrator.adapters.store.neo4j_store import Neo4jStore
from orchestrator.adapters.store.sqlite import SqliteStore
from orchestrator.adapters.tracing.setup import TracingRuntime, TracingSettings, start_tracing
from orchestrator.adapters.tracing.traced_ports import TracedChecker, TracedGateway, TracedSandbox
from orchestrator.adapters.tracing.worker import forwarded_env
from orchestrator.application.commands import CouncilDefaults, CreateCouncil
from orchestrator.application.ports import (
    AgentGateway,
    AgentRuntime,
    Checker,
    Clock,
    CrossChecker,
    Sandbox,
    Verifier,
)
from orchestrator.application.protocol.engine import Listener
from orchestrator.application.runs.admission import Admission
from orchestrator.application.runs.relay import OutboxRelay
from orchestrator.application.service import Orchestrator
from orchestrator.compose import Composition, Options, Ports, compose
from orchestrator.config import Settings
from orchestrator.config.councils_file import load_councils_file
from orchestrator.domain.errors import ConfigError
from orchestrator.domain.redaction import redact_url

log = structlog.get_logger(__name__)

RELAY_FLUSH_S = 5.0
"""At shutdown, how long the outbox relay may publish what the runs stored during the grace."""


Store = SqliteStore | Neo4jStore
"""Either store implements every store port: councils on the object, the rest on `.deliberations`."""

NEO4J_SCHEMES = ("neo4j://", "neo4j+s://", "neo4j+ssc://", "bolt://", "bolt+s://", "bolt+ssc://")


@dataclass(frozen=True)
class App:
    settings: Settings
    orchestrator: Orchestrator
    agents: AgentRuntime
    store: Store
    bus: JetStreamBus | None = None
    relay: OutboxRelay | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def options_from(settings: Settings, listeners: Sequence[Listener] = ()) -> Options:
    return Options(
        defaults=council_defaults(settings),
        default_timeout_s=settings.deliberation_timeout,
        admission=Admission(settings.max_concurrent_deliberations, settings.deliberation_queue_size),
        lease_ttl_s=settings.lease_ttl,
        early_stop=settings.early_stop,
        default_token_budget=settings.deliberation_token_budget or None,
        outbound_events=settings.enable_nats,
        plans=settings.enable_nats,
        auto_create_councils=settings.auto_create_councils,
        listeners=tuple(listeners),
    )


def council_defaults(settings: Settings) -> CouncilDefaults:
    return CouncilDefaults(
        model=settings.vllm_model,
        temperature=settings.vllm_temperature,
        max_tokens=settings.vllm_max_tokens,
        rounds=settings.default_rounds,
        num_agents=settings.default_agents,
    )


def neo4j_uri(settings: Settings) -> str:
    """The Bolt URI when the store is Neo4j: STORE_URL=neo4j://… or bolt://…, or NEO4J_URI with no STORE_URL."""
    if settings.store_url.startswith(NEO4J_SCHEMES):
        return settings.store_url
    if settings.neo4j_uri and "store_url" not in settings.model_fields_set:
        if not settings.neo4j_uri.startswith(NEO4J_SCHEMES):
            raise ConfigError(f"NEO4J_URI must be a neo4j:// or bolt:// URI, got {redact_url(settings.neo4j_uri)!r}")
        return settings.neo4j_uri
    return ""


async def open_store(settings: Settings, clock: Clock | None = None) -> Store:
    """The store STORE_URL / NEO4J_URI select: Neo4j over Bolt, else SQLite."""
    uri = neo4j_uri(settings)
    if uri:
        return await Neo4jStore.open(uri, settings.neo4j_user, settings.neo4j_password)
    if "://" in settings.store_url and not settings.store_url.startswith("sqlite://"):
        raise ConfigError(
            f"STORE_URL must be sqlite:///path, neo4j://host or bolt://host, got {redact_url(settings.store_url)!r}"
        )
    return await SqliteStore.open(settings.store_url, clock)


def sandbox_config(settings: Settings) -> BwrapConfig:
    """The bubblewrap sandbox as SANDBOX_* configure it (the same on the service and on the Ray workers)."""
    return BwrapConfig(
        python=settings.sandbox_python,
        run_memory_bytes=settings.sandbox_run_memory_mb * 1024 * 1024,
        cgroup_parent=settings.sandbox_cgroup,
    )


async def open_verifier_sandbox(settings: Settings) -> Sandbox:
    """The sandbox of the execution checks: bubblewrap on the Ray workers (Ray is connected by now), checked end
    to end with a small Python run. Where it does not work, start-up stops with the reason, unless
    UNSAFE_ALLOW_UNSANDBOXED_EXECUTION asks for running code unisolated here, or SANDBOX_DEGRADED_OK for running
    without executing it (every status, result and report then says "NOT EXECUTED")."""
    sandbox = RaySandbox(config=sandbox_config(settings))
    availability = await sandbox.probe()
    if availability.available:
        log.info("sandbox_ready", backend=availability.backend, detail=availability.reason)
        return sandbox
    if settings.unsafe_allow_unsandboxed_execution:
        return await open_sandbox(allow_unsandboxed=True, config=sandbox_config(settings))
    if not settings.sandbox_degraded_ok:
        raise ConfigError(
            f"no working sandbox, so proposals' code could not be executed: {availability.reason}. "
            "Fix the host (docs/deploy.md, 'The sandbox'), or set SANDBOX_DEGRADED_OK=true to run in DEGRADED mode "
            "with every execution check NOT EXECUTED"
        )
    log.error(
        "sandbox_unavailable_degraded",
        reason=availability.reason,
        effect="SANDBOX_DEGRADED_OK=true: proposals' code is NOT EXECUTED; results, status and reports say so",
    )
    return sandbox


async def _background(
    stack: contextlib.AsyncExitStack, name: str, work: Coroutine[Any, Any, None]
) -> asyncio.Task[None]:
    task = asyncio.create_task(work, name=name)

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    stack.push_async_callback(stop)
    return task


async def _open_store(stack: contextlib.AsyncExitStack, settings: Settings, clock: Clock) -> Store:
    store = await open_store(settings, clock)
    stack.push_async_callback(store.close)
    return store


async def _open_agents(
    stack: contextlib.AsyncExitStack, settings: Settings, endpoint: LLMEndpoint, tracing: TracingRuntime
) -> RayAgents:
    config = RayConfig(
        address=settings.ray_address,
        namespace=settings.ray_namespace,
        ship_code=settings.ray_ship_code,
        agent_resource=settings.ray_agent_resource,
        worker_env=forwarded_env(os.environ) if tracing.enabled else {},
    )
    # Each call carries the trace context; the actor makes the `chat` span in its worker.
    agents = RayAgents(config, endpoint, tracing.tracing)
    await agents.connect()
    stack.push_async_callback(agents.close)
    return agents


async def _open_bus(
    stack: contextlib.AsyncExitStack, settings: Settings, tracing: TracingRuntime
) -> JetStreamBus | None:
    if not settings.enable_nats:
        return None
    bus = JetStreamBus(
        NatsConfig(settings.nats_url, ack_wait_s=settings.nats_ack_wait, max_deliver=settings.nats_max_deliver),
        tracing=tracing.tracing,
    )
    await bus.connect()
    stack.push_async_callback(bus.close)
    return bus


def _endpoint(settings: Settings) -> LLMEndpoint:
    return LLMEndpoint(
        base_url=settings.vllm_url,
        api_key=settings.vllm_api_key,
        timeout_s=settings.vllm_timeout,
        max_retries=settings.vllm_max_retries,
    )


def open_tracing(environ: Mapping[str, str] | None = None) -> TracingRuntime:
    """The service's tracing from the standard OTEL_* variables: off unless an endpoint (or an exporter) is set;
    a bad value is a ConfigError, which stops start-up with its one line. Logs the mode it is in."""
    return start_tracing(TracingSettings.from_env(os.environ if environ is None else environ))


@dataclass(frozen=True)
class Overrides:
    """What `bootstrap` takes as given instead of opening it from Settings (tests, benchmarks). What it is given,
    it neither connects nor closes."""

    store: Store | None = None
    gateway: AgentGateway | None = None
    runtime: AgentRuntime | None = None
    """Agents' calls and lifecycle: Ray unless both are given."""
    checker: Checker | None = None
    verifier: Verifier | None = None
    cross_checker: CrossChecker | None = None
    clock: Clock | None = None
    llm_probe: bool = True
    """Probe the LLM endpoint for health (off where there is none)."""


@dataclass(frozen=True)
class _Opened:
    ports: Ports
    store: Store
    bus: JetStreamBus | None


async def _verification(settings: Settings, given: Overrides, traced: _Traced) -> tuple[Verifier, CrossChecker | None]:
    """The execution checks, and a plan's cross-checks (QA's tests on DEV's code) on the same machinery and sandbox."""
    if given.verifier is not None:
        return given.verifier, given.cross_checker
    sandbox = traced.sandbox(await open_verifier_sandbox(settings))
    return ExecutionVerifier(sandbox), given.cross_checker or SandboxCrossChecker(sandbox)


async def _open(
    stack: contextlib.AsyncExitStack, settings: Settings, given: Overrides, tracing: TracingRuntime
) -> _Opened:
    clock = given.clock or SystemClock()
    store = given.store or await _open_store(stack, settings, clock)
    endpoint = _endpoint(settings)
    gateway, runtime = await _agents(stack, settings, given, endpoint, tracing)
    unsafe = settings.unsafe_allow_unsandboxed_execution
    traced = _Traced(tracing)
    verifier, cross_checker = await _verification(settings, given, traced)
    checker = traced.checker(
        given.checker
        or ThreadedChecker(
            traced.sandbox(await open_sandbox(allow_unsandboxed=unsafe, config=sandbox_config(settings)))
        )
    )
    probe = None
    if given.llm_probe:
        client = OpenAIChatClient(endpoint)  # the service's own client, for the health probe only
        stack.push_async_callback(client.aclose)
        probe = client.probe
    bus = await _open_bus(stack, settings, tracing)
    ports = Ports(
        councils=store,
        records=store.records,
        runtime=runtime,
        gateway=gateway,
        checker=checker,
        verifier=verifier,
        cross_checker=cross_checker,
        leases=store.leases,
        publisher=bus,
        clock=clock,
        llm_probe=probe,
        tracing=tracing.tracing,
    )
    return _Opened(ports, store, bus)


async def _agents(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    given: Overrides,
    endpoint: LLMEndpoint,
    tracing: TracingRuntime,
) -> tuple[AgentGateway, AgentRuntime]:
    """Ray's agents (which trace their calls in the workers), or the given gateway with a `chat` span per call."""
    if given.gateway is not None and given.runtime is not None:
        return _Traced(tracing).gateway(given.gateway), given.runtime
    ray = await _open_agents(stack, settings, endpoint, tracing)
    gateway = _Traced(tracing).gateway(given.gateway) if given.gateway is not None else ray
    return gateway, given.runtime or ray


@dataclass(frozen=True)
class _Traced:
    """The ports the protocol calls, wrapped in their spans when the service traces (as they are otherwise)."""

    tracing: TracingRuntime

    def gateway(self, inner: AgentGateway) -> AgentGateway:
        return TracedGateway(inner, self.tracing.tracing) if self.tracing.enabled else inner

    def checker(self, inner: Checker) -> Checker:
        return TracedChecker(inner, self.tracing.tracing) if self.tracing.enabled else inner

    def sandbox(self, inner: Sandbox) -> Sandbox:
        return TracedSandbox(inner, self.tracing.tracing) if self.tracing.enabled else inner


def _live_collector(metrics: DeliberationMetrics, built: Composition, bus: JetStreamBus | None) -> LiveCollector:
    """The values /metrics reads at scrape time, registered in the metrics' registry."""
    runs = built.supervisor
    stats = bus.stats if bus is not None else None
    return LiveCollector(
        lambda: runs.queue_depth,
        lambda: runs.running_count,
        (lambda: stats) if stats is not None else None,
        registry=metrics.registry,
    )


async def _start(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    built: Composition,
    bus: JetStreamBus | None,
    wanted: list[CreateCouncil],
) -> None:
    """Restores councils and runs, creates the wanted ones (COUNCILS_FILE), and starts the background work."""
    orchestrator = built.orchestrator
    if built.relay is not None:
        await _background(stack, "outbox-relay", built.relay.run())
    restored, resumed = await orchestrator.restore()
    created = await orchestrator.ensure_councils(wanted)
    await _background(stack, "leases", built.supervisor.maintain())
    if (dispatcher := built.dispatcher) is not None:
        await _background(stack, "plan-sweep", dispatcher.sweep(settings.lease_ttl))
        if bus is not None:
            await _background(stack, "plan-consumer", bus.consume(plan_approved_handler(dispatcher)))
    log.info(
        "orchestrator_ready",
        councils=[c.role.value for c in restored],
        created_from_file=[c.role.value for c in created],
        resumed=resumed,
        nats=redact_url(settings.nats_url) if bus else "off",
    )


@contextlib.asynccontextmanager
async def bootstrap(
    settings: Settings,
    metrics: DeliberationMetrics | None = None,
    *,
    overrides: Overrides = Overrides(),
    listeners: Sequence[Listener] = (),
    tracing: TracingRuntime | None = None,
) -> AsyncIterator[App]:
    """Yields a ready App: store open, Ray connected, NATS consuming (when enabled), councils restored and
    those of COUNCILS_FILE created, interrupted deliberations and plans resumed. `metrics`, when given, observes
    every deliberation and reads the queue and the NATS consumer at scrape time; `overrides` replace the
    adapters Settings would open (tests, benchmarks). `tracing`: the service's tracing (the gRPC server's too);
    None starts it here from the OTEL_* environment and flushes it on the way out."""
    if overrides.gateway is None:
        settings.require_llm()
    wanted = load_councils_file(settings.councils_file) if settings.councils_file else []
    async with contextlib.AsyncExitStack() as stack:
        if tracing is None:
            tracing = open_tracing()
            stack.push_async_callback(tracing.shutdown)  # first in, last out: every span has ended by then
        opened = await _open(stack, settings, overrides, tracing)
        observers = (*listeners, metrics.observe) if metrics is not None else tuple(listeners)
        built = compose(opened.ports, options_from(settings, observers))
        if built.relay is not None:  # runs after the runs have stopped (and the relay task with them)
            stack.push_async_callback(built.relay.flush, RELAY_FLUSH_S)
        stack.push_async_callback(built.supervisor.shutdown, settings.shutdown_grace)
        if built.dispatcher is not None:
            stack.push_async_callback(built.dispatcher.shutdown)
        if metrics is not None:
            _live_collector(metrics, built, opened.bus)
        await _start(stack, settings, built, opened.bus, wanted)
        app = App(settings, built.orchestrator, opened.ports.runtime, opened.store, opened.bus, built.relay)
        yield app
