"""Composition root: builds every adapter from Settings, wires the application, closes all in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from orchestrator.adapters.checks.checker import ThreadedChecker
from orchestrator.adapters.checks.execution import ExecutionVerifier
from orchestrator.adapters.llm.openai_chat import LLMEndpoint, OpenAIChatClient
from orchestrator.adapters.metrics.prometheus import DeliberationMetrics, LiveCollector
from orchestrator.adapters.nats.jetstream import JetStreamBus, NatsConfig
from orchestrator.adapters.nats.planning import plan_approved_handler
from orchestrator.adapters.ray.agents import RayAgents, RayConfig
from orchestrator.adapters.ray.sandbox import RaySandbox
from orchestrator.adapters.sandbox import open_sandbox
from orchestrator.adapters.store.neo4j_store import Neo4jStore
from orchestrator.adapters.store.sqlite import SqliteStore
from orchestrator.application.commands import CouncilDefaults, Limits
from orchestrator.application.deliberations import Admission, Deliberations
from orchestrator.application.dispatch import PlanDispatcher
from orchestrator.application.events import deliberation_events
from orchestrator.application.ports import Sandbox
from orchestrator.application.relay import OutboxRelay
from orchestrator.application.service import Orchestrator
from orchestrator.config import Settings
from orchestrator.config.councils_file import load_councils_file
from orchestrator.domain.errors import ConfigError
from orchestrator.domain.redaction import redact_url

log = structlog.get_logger(__name__)


Store = SqliteStore | Neo4jStore
"""Either store implements every store port: councils on the object, the rest on `.deliberations`."""

NEO4J_SCHEMES = ("neo4j://", "neo4j+s://", "neo4j+ssc://", "bolt://", "bolt+s://", "bolt+ssc://")


@dataclass
class App:
    settings: Settings
    orchestrator: Orchestrator
    agents: RayAgents
    store: Store
    bus: JetStreamBus | None = None
    relay: OutboxRelay | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


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


async def open_store(settings: Settings) -> Store:
    """The store STORE_URL / NEO4J_URI select: Neo4j over Bolt, else SQLite."""
    uri = neo4j_uri(settings)
    if uri:
        return await Neo4jStore.open(uri, settings.neo4j_user, settings.neo4j_password)
    if "://" in settings.store_url and not settings.store_url.startswith("sqlite://"):
        raise ConfigError(
            f"STORE_URL must be sqlite:///path, neo4j://host or bolt://host, got {redact_url(settings.store_url)!r}"
        )
    return await SqliteStore.open(settings.store_url)


async def open_verifier_sandbox(settings: Settings) -> Sandbox:
    """The sandbox of the execution checks: bubblewrap on the Ray workers (Ray is connected by now). Where the
    workers cannot create one, runs are skipped, unless UNSAFE_ALLOW_UNSANDBOXED_EXECUTION asks for running them
    unisolated here."""
    sandbox = RaySandbox()
    availability = await sandbox.probe()
    if availability.available:
        log.info("sandbox_ready", backend=availability.backend, detail=availability.reason)
        return sandbox
    if settings.unsafe_allow_unsandboxed_execution:
        return await open_sandbox(allow_unsandboxed=True)
    log.warning("sandbox_unavailable", reason=availability.reason, effect="execution checks are reported as skipped")
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


async def _start_nats(
    stack: contextlib.AsyncExitStack, settings: Settings, store: Store, app: Orchestrator
) -> tuple[JetStreamBus, OutboxRelay]:
    bus = JetStreamBus(
        NatsConfig(settings.nats_url, ack_wait_s=settings.nats_ack_wait, max_deliver=settings.nats_max_deliver)
    )
    await bus.connect()
    stack.push_async_callback(bus.close)
    relay = OutboxRelay(store.deliberations, bus)
    app.deliberations.on_events = relay.wake
    await _background(stack, "outbox-relay", relay.run())
    return bus, relay


@contextlib.asynccontextmanager
async def bootstrap(settings: Settings, metrics: DeliberationMetrics | None = None) -> AsyncIterator[App]:
    """Yields a ready App: store open, Ray connected, NATS consuming (when enabled), councils restored and
    those of COUNCILS_FILE created, interrupted deliberations and plans resumed. `metrics`, when given, observes
    every deliberation and reads the queue and the NATS consumer at scrape time."""
    settings.require_llm()
    wanted = load_councils_file(settings.councils_file) if settings.councils_file else []
    async with contextlib.AsyncExitStack() as stack:
        store = await open_store(settings)
        stack.push_async_callback(store.close)
        endpoint = LLMEndpoint(
            base_url=settings.vllm_url,
            api_key=settings.vllm_api_key,
            timeout_s=settings.vllm_timeout,
            max_retries=settings.vllm_max_retries,
        )
        agents = RayAgents(
            RayConfig(address=settings.ray_address, namespace=settings.ray_namespace, ship_code=settings.ray_ship_code),
            endpoint,
        )
        await agents.connect()
        stack.push_async_callback(agents.close)
        sandbox = await open_verifier_sandbox(settings)
        deliberations = Deliberations(
            councils=store,
            store=store.deliberations,
            gateway=agents,
            checker=ThreadedChecker(await open_sandbox(allow_unsandboxed=settings.unsafe_allow_unsandboxed_execution)),
            limits=Limits(),
            default_timeout_s=settings.deliberation_timeout,
            admission=Admission(settings.max_concurrent_deliberations, settings.deliberation_queue_size),
            events=deliberation_events if settings.enable_nats else None,
            leases=store.leases,
            lease_ttl_s=settings.lease_ttl,
            verifier=ExecutionVerifier(sandbox),
            early_stop=settings.early_stop,
        )
        probe = OpenAIChatClient(endpoint)  # the service's own client, for the health probe only
        stack.push_async_callback(probe.aclose)
        orchestrator = Orchestrator(
            store, agents, deliberations, council_defaults(settings), Limits(), llm_probe=probe.probe
        )
        stack.push_async_callback(deliberations.shutdown, settings.shutdown_grace)
        bus = relay = None
        if settings.enable_nats:
            bus, relay = await _start_nats(stack, settings, store, orchestrator)
            orchestrator.dispatcher = PlanDispatcher(
                deliberations,
                store.deliberations,
                store,
                orchestrator.create_council,
                auto_create_councils=settings.auto_create_councils,
                on_events=relay.wake,
            )
            stack.push_async_callback(orchestrator.dispatcher.shutdown)
        if metrics is not None:
            deliberations.observers.append(metrics.observe)
            stats = bus.stats if bus is not None else None
            metrics.track(
                LiveCollector(
                    lambda: deliberations.queue_depth,
                    lambda: deliberations.running_count,
                    (lambda: stats) if stats is not None else None,
                )
            )
        restored, resumed = await orchestrator.restore()
        created = await orchestrator.ensure_councils(wanted)
        await _background(stack, "leases", deliberations.maintain())
        if orchestrator.dispatcher is not None:
            await _background(stack, "plan-sweep", orchestrator.dispatcher.sweep(settings.lease_ttl))
        if bus is not None and orchestrator.dispatcher is not None:
            await _background(stack, "plan-consumer", bus.consume(plan_approved_handler(orchestrator.dispatcher)))
        log.info(
            "orchestrator_ready",
            councils=[c.role.value for c in restored],
            created_from_file=[c.role.value for c in created],
            resumed=resumed,
            nats=redact_url(settings.nats_url) if bus else "off",
        )
        yield App(settings, orchestrator, agents, store, bus, relay)
