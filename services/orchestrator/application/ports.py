"""Ports: what the use cases need from the outside world, in domain words. Adapters implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from orchestrator.domain.cross_checks import Reference, TestRuns
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.evidence import ProposalEvidence, Specification
from orchestrator.domain.execution import Execution, SandboxAvailability, SandboxLimits
from orchestrator.domain.model import AgentSpec, CheckSuite, Council, DeliberationStatus, Role, Stage, Usage
from orchestrator.domain.plans import PlanDispatch
from orchestrator.domain.prompts import Prompt


@dataclass(frozen=True)
class AgentCall:
    """One LLM call an agent makes for a deliberation stage."""

    task_id: str
    stage: Stage
    round: int
    prompt: Prompt
    trace: Mapping[str, str] = field(default_factory=dict, compare=False)
    """The caller's trace context (`traceparent`), set by a gateway that sends the call to another process (Ray),
    where the call continues the trace. A field, not an argument: an agent actor of an earlier version, which
    does not know it, ignores it and still answers."""


@dataclass(frozen=True)
class Completion:
    """The model's answer, with reasoning blocks already removed."""

    content: str
    usage: Usage
    latency_ms: float
    model: str


@dataclass(frozen=True)
class OutboundEvent:
    """An event waiting in the outbox. `event_id` is its idempotency key (the NATS `Nats-Msg-Id`)."""

    event_id: str
    subject: str
    payload: str
    """The enveloped event as JSON text."""
    created_at_ms: int


class AgentGateway(Protocol):
    """Runs one agent's LLM call wherever agents live (Ray actors in production)."""

    async def complete(self, agent: AgentSpec, call: AgentCall) -> Completion:
        """Returns the completion or raises LLMCallError once retries are exhausted."""
        ...


@dataclass(frozen=True)
class RuntimeNode:
    """One node of the cluster the agents run on, with this service's agents placed there."""

    node_id: str
    address: str
    alive: bool
    head: bool = False
    cpus: float = 0.0
    labels: tuple[tuple[str, str], ...] = ()
    agents_alive: int = 0
    agents_restarting: int = 0
    calls_in_flight: int = 0
    death_reason: str = ""


@dataclass(frozen=True)
class RuntimeSummary:
    """Where the agents run, for operators: cluster size and the agents' workers by state."""

    connected: bool
    address: str = ""
    nodes: int = 0
    cpus: float = 0.0
    actors_alive: int = 0
    actors_restarting: int = 0
    actors_dead: int = 0
    nodes_dead: int = 0
    actor_restarts: int = 0
    node_list: tuple[RuntimeNode, ...] = ()


class AgentRuntime(Protocol):
    """Creates and removes the long-lived agent workers of a council."""

    async def start_council(self, council: Council) -> None:
        """Creates (or re-attaches to) one worker per agent; idempotent."""
        ...

    async def stop_council(self, council: Council) -> int:
        """Removes the council's workers; returns how many were removed."""
        ...

    async def summary(self) -> RuntimeSummary: ...


class Checker(Protocol):
    """Deterministic checks of one proposal's text."""

    async def check(self, content: str, requirements: Sequence[str]) -> CheckSuite: ...


class CouncilStore(Protocol):
    async def add(self, council: Council) -> bool:
        """Stores a new council; False (and nothing written) when the role already has one."""
        ...

    async def get(self, role: Role) -> Council | None: ...

    async def all_councils(self) -> list[Council]: ...

    async def remove(self, role: Role) -> bool: ...


class DeliberationStore(Protocol):
    async def create(self, deliberation: Deliberation) -> bool:
        """Stores a new record; False (and nothing written) when the task_id exists: the idempotency check."""
        ...

    async def save(
        self, deliberation: Deliberation, *, checkpoint: bool = False, events: Sequence[OutboundEvent] = ()
    ) -> None:
        """Overwrites the record; with `checkpoint`, also appends it to the stage checkpoint history.
        `events` go into the outbox in the same transaction, so a record and its events are never apart."""
        ...

    async def get(self, task_id: str) -> Deliberation | None: ...

    async def search(
        self,
        *,
        status: DeliberationStatus | None = None,
        role: Role | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Deliberation]:
        """Newest first."""
        ...

    async def unfinished(self) -> list[Deliberation]:
        """PENDING and IN_PROGRESS records, oldest first (what a restart must resume)."""
        ...

    async def counts(self) -> dict[DeliberationStatus, int]: ...

    async def checkpoints(self, task_id: str) -> list[Deliberation]: ...


class DispatchStore(Protocol):
    """Dispatched plans: written before the plan event is acked, updated as subtasks move on."""

    async def create_dispatch(self, dispatch: PlanDispatch, events: Sequence[OutboundEvent] = ()) -> bool:
        """Stores a new dispatch (and its events, atomically); False, and nothing written, when the plan
        was dispatched before."""
        ...

    async def save_dispatch(self, dispatch: PlanDispatch, events: Sequence[OutboundEvent] = ()) -> None:
        """Overwrites the dispatch; `events` go into the outbox in the same transaction."""
        ...

    async def get_dispatch(self, plan_id: str) -> PlanDispatch | None: ...

    async def unfinished_dispatches(self) -> list[PlanDispatch]: ...

    async def dispatches_for_story(self, story_id: str) -> list[PlanDispatch]: ...


class Leases(Protocol):
    """Which replica works on what, when several share one store: a lease per key (a deliberation, a plan),
    held by one owner until it expires, renewed by the owner while the work goes on. Taking a lease is atomic,
    so two replicas never both take the same key; a replica that dies stops renewing, and after `ttl_ms` another
    one takes its work over. A cancel requested on any replica is a flag the owner sees when it renews."""

    async def acquire(self, key: str, owner: str, now_ms: int, ttl_ms: int) -> bool:
        """Takes the lease when nobody holds it, it expired, or `owner` holds it already (then renews it)."""
        ...

    async def renew(self, owner: str, keys: Sequence[str], now_ms: int, ttl_ms: int) -> dict[str, bool]:
        """Extends the leases `owner` still holds among `keys`: {key: cancel requested} for each of them."""
        ...

    async def release(self, key: str, owner: str) -> None: ...

    async def request_cancel(self, key: str, now_ms: int) -> bool:
        """Flags the key for cancelling; True when a live lease holds it (its owner will see the flag)."""
        ...


class Outbox(Protocol):
    """Events stored with the records they describe, until the publisher has them acknowledged."""

    async def pending_events(self, limit: int = 100) -> list[OutboundEvent]:
        """Oldest first."""
        ...

    async def mark_sent(self, event_ids: Sequence[str]) -> None: ...


class EventPublisher(Protocol):
    async def publish(self, event: OutboundEvent) -> None:
        """Publishes with `Nats-Msg-Id = event.event_id`; returns once the stream has stored it."""
        ...


class Sandbox(Protocol):
    """Runs untrusted code (proposals and their tests) in isolation: no network, no secrets, bounded resources.
    Without a working sandbox a run is reported as skipped, never run unprotected (unless an operator said so)."""

    async def run(self, files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits) -> Execution:
        """Writes `files` (paths relative to the work dir) into a fresh work dir, runs `command` there with no
        stdin, and returns what happened; the run's processes are all gone when it returns."""
        ...

    async def probe(self) -> SandboxAvailability:
        """Tries a trivial run and remembers the answer (call it at start-up)."""
        ...

    def availability(self) -> SandboxAvailability:
        """The last probe's answer."""
        ...


class Verifier(Protocol):
    """Runs the execution checks of one round: every proposal's code against the specification's tests and every
    agent's tests, in a sandbox, never in the service's process."""

    async def verify(
        self, spec: Specification, proposals: Mapping[str, str], round_: int
    ) -> dict[str, ProposalEvidence]:
        """`proposals` maps author ids to proposal texts; returns each author's evidence (skipped, with the
        reason, when nothing could run)."""
        ...

    def availability(self) -> SandboxAvailability:
        """Whether execution checks can run (the sandbox's last probe)."""
        ...


class CrossChecker(Protocol):
    """Runs what one plan subtask produced against what the subtask it depends on produced: tests in a sandbox,
    never in the service's process; manifests read, never applied."""

    async def run_tests(self, tests: Mapping[str, str], solutions: Mapping[str, str]) -> TestRuns:
        """`tests` and `solutions` map author ids to proposal texts; every author's tests run on every solution
        (skipped, with the reason, when no sandbox works)."""
        ...

    def references(self, manifests: str, solution: str, module: str) -> tuple[Reference, ...]:
        """Where the manifests in `manifests` (a proposal's text) name the DEV module `module` whose code is
        `solution` (entry point, port, image), and whether each matches; () when they name nothing of it."""
        ...


class Clock(Protocol):
    """Time, as the application reads it: wall time for records and leases, a monotonic clock for durations."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...
