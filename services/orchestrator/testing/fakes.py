"""In-memory fakes of the application ports, one per port, reused by tests at every level.

`FakeGateway` answers with the same deterministic content as the fake HTTP server (`fake_content`), so use
case tests see realistic proposals, critiques and scores without HTTP or Ray.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.adapters.clock import SystemClock
from orchestrator.application.commands import CouncilDefaults
from orchestrator.application.ports import (
    AgentCall,
    AgentGateway,
    AgentRuntime,
    Checker,
    Clock,
    Completion,
    CouncilStore,
    Leases,
    OutboundEvent,
    RuntimeSummary,
    Verifier,
)
from orchestrator.compose import Options, Ports, RecordStore
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import CallErrorKind, LLMCallError
from orchestrator.domain.model import AgentSpec, Council, DeliberationStatus, Role, Usage
from orchestrator.domain.plans import PlanDispatch
from orchestrator.testing.fake_content import AnswerOptions, answer, parse_prompt


@dataclass
class FakeGateway:
    """AgentGateway without Ray or HTTP. `failing` agents raise `failure_kind`; `latency_s` delays each call.
    While `endpoint_down` is set every call fails as an unreachable endpoint (checked when the call would answer);
    `gone` agents fail as Ray reports an actor that was killed (their council deleted)."""

    latency_s: float = 0.0
    failing: set[str] = field(default_factory=set)
    failure_kind: CallErrorKind = CallErrorKind.HTTP
    failure_status: int | None = 500
    """The HTTP status of a `failing` agent's error (kind HTTP only)."""
    broken_python: set[str] = field(default_factory=set)
    hang: set[str] = field(default_factory=set)
    endpoint_down: bool = False
    gone: set[str] = field(default_factory=set)
    scripted: dict[str, str] = field(default_factory=dict)
    """Agents answering every propose/revise call with this text."""
    score_markers: dict[str, int] = field(default_factory=dict)
    """Peer review scores proposals containing a marker with its score."""
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    prompts: list[tuple[str, str, int, str]] = field(default_factory=list)
    """(agent, stage, round, user message) of every call."""
    in_flight: int = 0
    max_in_flight: int = 0

    async def complete(self, agent: AgentSpec, call: AgentCall) -> Completion:
        self.calls.append((agent.agent_id, call.stage.value, call.round))
        self.prompts.append((agent.agent_id, call.stage.value, call.round, call.prompt.user))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if agent.agent_id in self.hang:
                await asyncio.Event().wait()
            await asyncio.sleep(self.latency_s)
            if self.endpoint_down:
                raise LLMCallError(
                    agent.agent_id, CallErrorKind.UNAVAILABLE, "cannot reach the LLM endpoint (injected)"
                )
            if agent.agent_id in self.gone:
                raise LLMCallError(
                    agent.agent_id, CallErrorKind.AGENT_UNAVAILABLE, "ActorDiedError: the actor was killed"
                )
            if agent.agent_id in self.failing:
                status = self.failure_status if self.failure_kind is CallErrorKind.HTTP else None
                raise LLMCallError(agent.agent_id, self.failure_kind, "injected failure", status)
            options = AnswerOptions(
                broken_python=agent.agent_id in self.broken_python,
                scripted=self.scripted.get(agent.agent_id),
                score_markers=tuple(self.score_markers.items()),
            )
            content = answer(agent.agent_id, parse_prompt(call.prompt.user), options)
            usage = Usage(len(call.prompt.user) // 4, len(content) // 4)
            return Completion(content, usage, self.latency_s * 1000, agent.model)
        finally:
            self.in_flight -= 1


@dataclass
class FakeRuntime:
    """AgentRuntime that only remembers which agents are 'running'. Given the `gateway`, stopping a council makes
    its agents' calls fail there (`FakeGateway.gone`), as killing their actors does."""

    running: set[str] = field(default_factory=set)
    gateway: FakeGateway | None = None

    async def start_council(self, council: Council) -> None:
        self.running.update(a.agent_id for a in council.agents)
        if self.gateway is not None:
            self.gateway.gone.difference_update(a.agent_id for a in council.agents)

    async def stop_council(self, council: Council) -> int:
        ids = {a.agent_id for a in council.agents} & self.running
        self.running -= ids
        if self.gateway is not None:
            self.gateway.gone.update(ids)
        return len(ids)

    async def summary(self) -> RuntimeSummary:
        return RuntimeSummary(True, "in-memory", 1, 1.0, actors_alive=len(self.running))


@dataclass
class InMemoryCouncilStore:
    councils: dict[Role, Council] = field(default_factory=dict)

    async def add(self, council: Council) -> bool:
        if council.role in self.councils:
            return False
        self.councils[council.role] = council
        return True

    async def get(self, role: Role) -> Council | None:
        return self.councils.get(role)

    async def all_councils(self) -> list[Council]:
        return list(self.councils.values())

    async def remove(self, role: Role) -> bool:
        return self.councils.pop(role, None) is not None


@dataclass
class InMemoryDeliberationStore:
    """DeliberationStore, DispatchStore and Outbox in dictionaries."""

    records: dict[str, Deliberation] = field(default_factory=dict)
    history: dict[str, list[Deliberation]] = field(default_factory=dict)
    dispatches: dict[str, PlanDispatch] = field(default_factory=dict)
    outbox: dict[str, OutboundEvent] = field(default_factory=dict)

    async def create(self, deliberation: Deliberation) -> bool:
        if deliberation.task_id in self.records:
            return False
        self.records[deliberation.task_id] = deliberation
        return True

    async def save(
        self, deliberation: Deliberation, *, checkpoint: bool = False, events: Sequence[OutboundEvent] = ()
    ) -> None:
        self.records[deliberation.task_id] = deliberation
        self.outbox.update({e.event_id: e for e in events})
        if checkpoint:
            self.history.setdefault(deliberation.task_id, []).append(deliberation)

    async def get(self, task_id: str) -> Deliberation | None:
        return self.records.get(task_id)

    async def search(
        self,
        *,
        status: DeliberationStatus | None = None,
        role: Role | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Deliberation]:
        found = [
            d
            for d in self.records.values()
            if (status is None or d.status is status) and (role is None or d.task.role is role)
        ]
        found.sort(key=lambda d: (-d.created_at_ms, d.task_id))
        return found[offset : offset + limit]

    async def unfinished(self) -> list[Deliberation]:
        return sorted((d for d in self.records.values() if not d.status.finished), key=lambda d: d.created_at_ms)

    async def counts(self) -> dict[DeliberationStatus, int]:
        counts: dict[DeliberationStatus, int] = {}
        for d in self.records.values():
            counts[d.status] = counts.get(d.status, 0) + 1
        return counts

    async def checkpoints(self, task_id: str) -> list[Deliberation]:
        return list(self.history.get(task_id, []))

    async def create_dispatch(self, dispatch: PlanDispatch, events: Sequence[OutboundEvent] = ()) -> bool:
        if dispatch.plan.plan_id in self.dispatches:
            return False
        self.dispatches[dispatch.plan.plan_id] = dispatch
        self.outbox.update({e.event_id: e for e in events})
        return True

    async def save_dispatch(self, dispatch: PlanDispatch, events: Sequence[OutboundEvent] = ()) -> None:
        self.dispatches[dispatch.plan.plan_id] = dispatch
        self.outbox.update({e.event_id: e for e in events})

    async def get_dispatch(self, plan_id: str) -> PlanDispatch | None:
        return self.dispatches.get(plan_id)

    async def unfinished_dispatches(self) -> list[PlanDispatch]:
        return [d for d in self.dispatches.values() if not d.finished]

    async def dispatches_for_story(self, story_id: str) -> list[PlanDispatch]:
        return [d for d in self.dispatches.values() if d.plan.story_id == story_id]

    async def pending_events(self, limit: int = 100) -> list[OutboundEvent]:
        return sorted(self.outbox.values(), key=lambda e: e.created_at_ms)[:limit]

    async def mark_sent(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            self.outbox.pop(event_id, None)


def interrupted(record: Deliberation) -> Deliberation:
    """A record as a crash leaves it: IN_PROGRESS at its last checkpoint."""
    return replace(record, status=DeliberationStatus.IN_PROGRESS, finished_at_ms=0)


@dataclass
class InMemoryLeases:
    """Leases in a dictionary: {key: (owner, until_ms, cancel)}. Share one between two `Deliberations` to play
    two replicas on one store."""

    leases: dict[str, tuple[str, int, bool]] = field(default_factory=dict)

    async def acquire(self, key: str, owner: str, now_ms: int, ttl_ms: int) -> bool:
        current = self.leases.get(key)
        if current is not None and current[0] != owner and current[1] >= now_ms:
            return False
        self.leases[key] = (owner, now_ms + ttl_ms, current[2] if current else False)
        return True

    async def renew(self, owner: str, keys: Sequence[str], now_ms: int, ttl_ms: int) -> dict[str, bool]:
        held = {}
        for key in keys:
            current = self.leases.get(key)
            if current is not None and current[0] == owner:
                self.leases[key] = (owner, now_ms + ttl_ms, current[2])
                held[key] = current[2]
        return held

    async def release(self, key: str, owner: str) -> None:
        if key in self.leases and self.leases[key][0] == owner:
            del self.leases[key]

    async def request_cancel(self, key: str, now_ms: int) -> bool:
        current = self.leases.get(key)
        if current is None or current[1] < now_ms:
            return False
        self.leases[key] = (current[0], current[1], True)
        return True


@dataclass
class FakeClock:
    """A Clock that moves only when told (`advance`): tests of timestamps and durations without waiting."""

    wall_ms: int = 1_700_000_000_000
    mono_s: float = 0.0

    def now_ms(self) -> int:
        return self.wall_ms

    def monotonic(self) -> float:
        return self.mono_s

    def advance(self, seconds: float) -> None:
        self.wall_ms += int(seconds * 1000)
        self.mono_s += seconds


def fake_ports(
    gateway: AgentGateway | None = None,
    *,
    councils: CouncilStore | None = None,
    records: RecordStore | None = None,
    runtime: AgentRuntime | None = None,
    checker: Checker | None = None,
    verifier: Verifier | None = None,
    leases: Leases | None = None,
    clock: Clock | None = None,
) -> Ports:
    """The application's ports as in-memory fakes (the real static checker, which needs nothing outside), for
    `compose`; any of them can be given instead."""
    from orchestrator.adapters.checks.checker import ThreadedChecker

    gateway = gateway if gateway is not None else FakeGateway()
    return Ports(
        councils=councils if councils is not None else InMemoryCouncilStore(),
        records=records if records is not None else InMemoryDeliberationStore(),
        runtime=runtime if runtime is not None else FakeRuntime(),
        gateway=gateway,
        checker=checker if checker is not None else ThreadedChecker(),
        verifier=verifier,
        leases=leases,
        clock=clock if clock is not None else SystemClock(),
    )


def fake_options(max_tokens: int = 256, *, num_agents: int = 3, **options: Any) -> Options:
    """The application's options for tests and benchmarks against the fake model: councils of `num_agents`
    agents on "fake-llm" at temperature 0.7 answering in `max_tokens`; `options` as Options takes them."""
    return Options(CouncilDefaults("fake-llm", 0.7, max_tokens, num_agents=num_agents), **options)
