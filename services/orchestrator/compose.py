"""The composition root's pure half: the application built once from its ports, real or fake, with no I/O.

`bootstrap` opens the real adapters (or takes the overrides it is given) and calls `compose`; tests and
benchmarks call `compose` with in-memory fakes or their own adapters. Nothing here is changed after it is built:
every listener, callback and collaborator is given to its constructor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from orchestrator.adapters.clock import SystemClock
from orchestrator.application import councils, deliberations
from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Limits, RunDefaults
from orchestrator.application.deliberations import Start
from orchestrator.application.dispatch import PlanDispatcher
from orchestrator.application.events import deliberation_events
from orchestrator.application.ports import (
    AgentGateway,
    AgentRuntime,
    Checker,
    Clock,
    CouncilStore,
    CrossChecker,
    DeliberationStore,
    DispatchStore,
    EventPublisher,
    Leases,
    OutboundEvent,
    Outbox,
    Verifier,
)
from orchestrator.application.protocol.engine import Listener
from orchestrator.application.runs.admission import Admission, AdmissionControl
from orchestrator.application.runs.leasing import Leasing, replica_id
from orchestrator.application.runs.recording import OutboundEvents, RunRecorder
from orchestrator.application.runs.relay import OutboxRelay
from orchestrator.application.runs.supervisor import RunSupervisor
from orchestrator.application.service import LLMProbe, Orchestrator, RunDurations
from orchestrator.application.tracing import NoTracing, Tracing
from orchestrator.domain.events import RunEvent
from orchestrator.domain.model import Council


class RecordStore(DeliberationStore, DispatchStore, Outbox, Protocol):
    """Deliberations, plan dispatches and the outbox: one store, so a record and its events commit together."""


@dataclass(frozen=True)
class Ports:
    """Everything the application talks to. Fakes for tests are in orchestrator.testing.fakes."""

    councils: CouncilStore
    records: RecordStore
    runtime: AgentRuntime
    gateway: AgentGateway
    checker: Checker
    verifier: Verifier | None = None
    cross_checker: CrossChecker | None = None
    """Runs a plan's cross-checks (QA's tests on DEV's code) in the sandbox; None: plans end `unchecked`."""
    leases: Leases | None = None
    """With several replicas on one store; None: this process is the only one."""
    publisher: EventPublisher | None = None
    """Where the outbox relay publishes (NATS); None: no relay runs."""
    clock: Clock = field(default_factory=SystemClock)
    llm_probe: LLMProbe | None = None
    tracing: Tracing = field(default_factory=NoTracing)
    """Spans of the runs and plans (the wrapped gateway, checker and sandbox trace their own calls)."""


@dataclass(frozen=True)
class Options:
    """The application's settings, in its own terms (bootstrap derives them from Settings)."""

    defaults: CouncilDefaults
    limits: Limits = field(default_factory=Limits)
    default_timeout_s: float = 600.0
    admission: Admission = field(default_factory=Admission)
    owner: str = field(default_factory=replica_id)
    lease_ttl_s: float = 30.0
    renew_every_s: float = 2.0
    poll_s: float = 0.5
    early_stop: bool = True
    default_token_budget: int | None = None
    """DELIBERATION_TOKEN_BUDGET: the budget of a run whose task and council set none; None = unlimited."""
    outbound_events: bool = False
    """Write the deliberation events to the outbox (always, when a publisher is given)."""
    plans: bool = False
    """Build the plan dispatcher (auto-dispatch of approved plans)."""
    auto_create_councils: bool = True
    dispatch_retry_s: float = 2.0
    listeners: Sequence[Listener] = ()
    """Told of every run event: metrics, tests."""


@dataclass(frozen=True)
class Composition:
    orchestrator: Orchestrator
    relay: OutboxRelay | None = None

    @property
    def supervisor(self) -> RunSupervisor:
        return self.orchestrator.supervisor

    @property
    def dispatcher(self) -> PlanDispatcher | None:
        return self.orchestrator.dispatcher


def compose(ports: Ports, options: Options) -> Composition:
    relay = OutboxRelay(ports.records, ports.publisher) if ports.publisher is not None else None
    wake = relay.wake if relay is not None else None
    durations = RunDurations()
    outbound: OutboundEvents | None = None
    if options.outbound_events or relay is not None:
        outbound = functools.partial(_outbound_events, ports.clock, ports.tracing)
    admission = AdmissionControl(options.admission)
    leasing = Leasing(ports.clock, ports.leases, options.owner, options.lease_ttl_s, options.renew_every_s)
    supervisor = RunSupervisor(
        councils=ports.councils,
        recorder=RunRecorder(ports.records, outbound, wake),
        gateway=ports.gateway,
        checker=ports.checker,
        clock=ports.clock,
        leasing=leasing,
        admission=admission,
        listeners=(durations, *options.listeners),
        poll_s=options.poll_s,
        verifier=ports.verifier,
        early_stop=options.early_stop,
        tracing=ports.tracing,
    )
    start: Start = functools.partial(
        deliberations.start_deliberation,
        councils=ports.councils,
        supervisor=supervisor,
        admission=admission,
        leasing=leasing,
        records=ports.records,
        clock=ports.clock,
        tracing=ports.tracing,
        defaults=RunDefaults(options.limits, options.default_timeout_s, options.default_token_budget),
    )
    dispatcher = _dispatcher(ports, options, supervisor, start, wake) if options.plans else None
    orchestrator = Orchestrator(
        ports.councils,
        ports.runtime,
        supervisor,
        start,
        options.defaults,
        ports.clock,
        options.limits,
        verifier=ports.verifier,
        dispatcher=dispatcher,
        durations=durations,
        llm_probe=ports.llm_probe,
    )
    return Composition(orchestrator, relay)


def _outbound_events(clock: Clock, tracing: Tracing, event: RunEvent) -> list[OutboundEvent]:
    # Made while the run's span is current: the events carry the run's trace to their consumers.
    return deliberation_events(event, clock.now_ms(), tracing.carrier())


def _dispatcher(
    ports: Ports, options: Options, supervisor: RunSupervisor, start: Start, wake: Callable[[], None] | None
) -> PlanDispatcher:
    async def create_council(cmd: CreateCouncil) -> Council:
        # The same use case as the CreateCouncil RPC, with the same dependencies.
        return await councils.create_council(
            cmd,
            store=ports.councils,
            runtime=ports.runtime,
            defaults=options.defaults,
            limits=options.limits,
            now_ms=ports.clock.now_ms(),
        )

    return PlanDispatcher(
        supervisor,
        start,
        options.limits,
        ports.records,
        ports.councils,
        create_council,
        ports.clock,
        auto_create_councils=options.auto_create_councils,
        retry_s=options.dispatch_retry_s,
        on_events=wake,
        tracing=ports.tracing,
        cross_checker=ports.cross_checker,
    )
