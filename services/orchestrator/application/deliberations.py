"""Deliberation use cases: start (idempotent on task_id), wait, get, cancel, resume after a restart.

`Deliberations` owns the asyncio tasks of the runs in this process. A run's record is written when it is
created, after every stage (checkpoint) and when it ends, so a crash loses at most the stage in flight, and
`resume_unfinished` carries interrupted runs on from their last checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import structlog

from orchestrator.application.commands import Deliberate, Limits
from orchestrator.application.engine import DeliberationRun, now_ms
from orchestrator.application.ports import (
    AgentGateway,
    Checker,
    CouncilStore,
    DeliberationStore,
    Leases,
    OutboundEvent,
    Verifier,
)
from orchestrator.application.updates import Update, UpdateHub
from orchestrator.domain.deliberation import Deliberation, default_quorum
from orchestrator.domain.errors import (
    CapacityError,
    CouncilMissingError,
    DependencyUnavailableError,
    InvalidArgumentError,
    NotFoundError,
    TaskIdConflictError,
)
from orchestrator.domain.model import DeliberationStatus, Role, TaskSpec
from orchestrator.domain.validation import check_task_id, parse_role

log = structlog.get_logger(__name__)

T = TypeVar("T")


def replica_id() -> str:
    """Who holds a lease: host and pid, unique among running processes. A container restarted in the same pod
    comes back with the same id, so it resumes its own runs at once instead of waiting for their leases."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _progress_key(record: Deliberation) -> tuple[object, ...]:
    return (record.status, record.stage, record.round, record.progress.stages_done, len(record.progress.calls))


def _failed(record: Deliberation, reason: str) -> Deliberation:
    return replace(record, status=DeliberationStatus.FAILED, error_message=reason, finished_at_ms=now_ms())


Observer = Callable[[Deliberation, str, str], None]
EventFactory = Callable[[Deliberation, str], list[OutboundEvent]]


def validate(cmd: Deliberate, limits: Limits) -> None:
    """Every limit of the Deliberate contract; raises InvalidArgumentError naming the field."""
    if cmd.task_id:
        check_task_id(cmd.task_id)
    if not cmd.task_description.strip():
        raise InvalidArgumentError("task_description", "must not be empty")
    checks = [
        ("task_description", len(cmd.task_description), limits.max_task_chars, "characters"),
        ("constraints.rubric", len(cmd.rubric), limits.max_rubric_chars, "characters"),
        ("constraints.acceptance_tests", len(cmd.acceptance_tests), limits.max_acceptance_tests_chars, "characters"),
        ("constraints.requirements", len(cmd.requirements), limits.max_requirements, "items"),
        ("constraints.metadata", len(cmd.metadata), limits.max_metadata_entries, "entries"),
    ]
    for name, size, limit, unit in checks:
        if size > limit:
            raise InvalidArgumentError(name, f"{size} {unit} exceeds the limit of {limit}")
    if any(len(r) > limits.max_requirement_chars for r in cmd.requirements):
        raise InvalidArgumentError("constraints.requirements", f"an item exceeds {limits.max_requirement_chars} chars")
    if any(len(k) + len(v) > limits.max_metadata_chars for k, v in cmd.metadata.items()):
        raise InvalidArgumentError("constraints.metadata", f"an entry exceeds {limits.max_metadata_chars} chars")
    if cmd.rounds is not None and not 0 <= cmd.rounds <= limits.max_rounds:
        raise InvalidArgumentError("rounds", f"must be 0..{limits.max_rounds}, got {cmd.rounds}")
    if not 0 <= cmd.num_agents <= limits.max_agents:
        raise InvalidArgumentError("num_agents", f"must be 0..{limits.max_agents}, got {cmd.num_agents}")
    if not 0 <= cmd.timeout_s <= limits.max_timeout_s:
        raise InvalidArgumentError("constraints.timeout_seconds", f"must be 0..{limits.max_timeout_s}")


def differences(task: TaskSpec, cmd: Deliberate, role: Role) -> list[str]:
    """What a request for an existing task_id asks for otherwise than the deliberation it names. Numbers left
    at 0 mean "the default", so they match whatever the existing one resolved them to. Client text is named,
    never repeated."""
    found = []
    if role is not task.role:
        found.append(f"role {role.value} (existing: {task.role.value})")
    if cmd.task_description != task.description:
        found.append("task_description")
    if cmd.rounds is not None and cmd.rounds != task.rounds:
        found.append(f"rounds {cmd.rounds} (existing: {task.rounds})")
    if cmd.num_agents and cmd.num_agents != task.num_agents:
        found.append(f"num_agents {cmd.num_agents} (existing: {task.num_agents})")
    if cmd.rubric != task.rubric:
        found.append("constraints.rubric")
    if cmd.acceptance_tests != task.acceptance_tests:
        found.append("constraints.acceptance_tests")
    if tuple(cmd.requirements) != tuple(task.requirements):
        found.append("constraints.requirements")
    if dict(cmd.metadata) != dict(task.metadata):
        found.append("constraints.metadata")
    if cmd.timeout_s and float(cmd.timeout_s) != task.timeout_s:
        found.append(f"constraints.timeout_seconds {cmd.timeout_s} (existing: {task.timeout_s:g})")
    return found


def same_request(existing: Deliberation, cmd: Deliberate, role: Role) -> Deliberation:
    """`existing` when `cmd` asks for the same deliberation (an idempotent retry); else TaskIdConflictError,
    so a client reusing a task_id for other work is told instead of silently given the first one's result."""
    found = differences(existing.task, cmd, role)
    if found:
        raise TaskIdConflictError(existing.task_id, tuple(found))
    return existing


@dataclass(frozen=True)
class Admission:
    """How many deliberations run at once, and how many may wait for a slot; beyond that, new work is refused."""

    max_running: int = 100
    max_queued: int = 1000


@dataclass
class Deliberations:
    councils: CouncilStore
    store: DeliberationStore
    gateway: AgentGateway
    checker: Checker
    limits: Limits = field(default_factory=Limits)
    default_timeout_s: float = 600.0
    admission: Admission = field(default_factory=Admission)
    observers: list[Observer] = field(default_factory=list)
    hub: UpdateHub = field(default_factory=UpdateHub)
    events: EventFactory | None = None
    """Builds the outbound events of a `started`/`finished` transition; saved atomically with the record."""
    on_events: Callable[[], None] | None = None
    """Told when events were written, so the relay publishes them without waiting for its next poll."""
    leases: Leases | None = None
    """With several replicas on one store: a run goes on only in the replica holding its lease. None: this
    process is the only one (tests, the embedded stack)."""
    owner: str = field(default_factory=replica_id)
    lease_ttl_s: float = 30.0
    renew_every_s: float = 2.0
    """Also how soon a cancel asked on another replica reaches the run's owner."""
    poll_s: float = 0.5
    """How often a replica that does not run a deliberation looks at its stored record (wait, watch)."""
    verifier: Verifier | None = None
    """Runs the execution checks of the verify stages (in the sandbox, on Ray); None: reported as skipped."""
    early_stop: bool = True
    """End the critique/revise rounds once the evidence decides (application/verification.py)."""
    _tasks: dict[str, asyncio.Task[Deliberation]] = field(default_factory=dict)
    _live: dict[str, Deliberation] = field(default_factory=dict)
    _runs: dict[str, DeliberationRun] = field(default_factory=dict)
    _shutting_down: bool = False
    _slots: asyncio.Semaphore | None = None
    _started: set[str] = field(default_factory=set)
    _cancel_requested: set[str] = field(default_factory=set)
    _lost: set[str] = field(default_factory=set)
    _queued: int = 0
    _holding_slot: int = 0
    _reserved: int = 0
    """Places taken by start() calls that passed admission and have not launched their run yet. Counted with
    the launched runs, so requests in parallel cannot all pass the check while each awaits the store."""

    async def start(self, cmd: Deliberate) -> tuple[Deliberation, bool]:
        """Creates and starts a deliberation; an existing task_id returns that one (created=False) when the
        request is the same, and raises TaskIdConflictError when it asks for something else."""
        validate(cmd, self.limits)
        role = parse_role(cmd.role)
        if cmd.task_id and (existing := await self.find(cmd.task_id)) is not None:
            return same_request(existing, cmd, role), False
        self._admit()
        try:
            return await self._create(cmd, role)
        finally:
            self._reserved -= 1  # launched (its task now holds the place) or refused

    def _admit(self) -> None:
        """Takes a place for a new run or refuses one. Check and reservation happen with no await between
        them, so they are atomic on the event loop; start() gives the place back on every path."""
        if self._shutting_down:
            raise DependencyUnavailableError("orchestrator", "shutting down; retry against another replica or later")
        admitted = len(self._tasks) + self._reserved
        if admitted >= self.admission.max_running + self.admission.max_queued:
            raise CapacityError(
                f"{self._holding_slot} deliberations running and {admitted - self._holding_slot} queued "
                f"(limits {self.admission.max_running} + {self.admission.max_queued}); retry later"
            )
        self._reserved += 1

    async def _create(self, cmd: Deliberate, role: Role) -> tuple[Deliberation, bool]:
        council = await self.councils.get(role)
        if council is None:
            raise CouncilMissingError(role.value)
        num_agents = cmd.num_agents or len(council.agents)
        if num_agents > len(council.agents):
            raise InvalidArgumentError(
                "num_agents",
                f"the {role.value} council has {len(council.agents)} agents, {num_agents} requested",
            )
        task = TaskSpec(
            task_id=cmd.task_id or f"delib-{uuid.uuid4().hex[:12]}",
            description=cmd.task_description,
            role=role,
            rounds=cmd.rounds if cmd.rounds is not None else council.rounds,
            num_agents=num_agents,
            rubric=cmd.rubric,
            requirements=tuple(cmd.requirements),
            metadata=dict(cmd.metadata),
            timeout_s=float(cmd.timeout_s) or self.default_timeout_s,
            acceptance_tests=cmd.acceptance_tests,
        )
        record = Deliberation(
            task=task,
            agents=council.agents[:num_agents],
            status=DeliberationStatus.PENDING,
            created_at_ms=now_ms(),
            quorum=default_quorum(num_agents),
            source=cmd.source,
        )
        # The lease is taken last, just before the record exists, so no refusal above can leave one behind.
        if not await self._acquire(task.task_id):
            return same_request(await self._created_elsewhere(task.task_id), cmd, role), False
        if not await self.store.create(record):  # lost a race with another request for the same id
            await self._release(task.task_id)
            return same_request(await self.get(task.task_id), cmd, role), False
        if self._shutting_down:  # began while this request awaited: the stored record resumes at the next start
            await self._release(task.task_id)
            return record, True
        self._launch(record, peer_review=council.enable_peer_review)
        return record, True

    async def _created_elsewhere(self, task_id: str) -> Deliberation:
        """The record of a task_id whose lease another replica took a moment ago, to create it."""
        for _ in range(20):
            if (found := await self.find(task_id)) is not None:
                return found
            await asyncio.sleep(self.poll_s)
        raise DependencyUnavailableError("orchestrator", f"another replica is starting {task_id}; retry shortly")

    async def deliberate(self, cmd: Deliberate) -> Deliberation:
        """Starts (or attaches to) a deliberation and waits for its end. If the caller goes away, a
        deliberation it started is cancelled; one it merely attached to runs on."""
        record, created = await self.start(cmd)
        try:
            return await self.wait(record.task_id)
        except asyncio.CancelledError:
            if created:
                await self.cancel(record.task_id)
            raise

    async def wait(self, task_id: str) -> Deliberation:
        """The final record: from the run in this process, or, for one another replica runs, from the store."""
        while True:
            task = self._tasks.get(task_id)
            if task is not None:
                return await asyncio.shield(task)
            record = await self.get(task_id)
            if record.status.finished or self.leases is None:
                return record
            await asyncio.sleep(self.poll_s)

    async def find(self, task_id: str) -> Deliberation | None:
        """The live snapshot of a running deliberation, else the stored record, else None."""
        return self._live.get(task_id) or await self.store.get(task_id)

    async def get(self, task_id: str) -> Deliberation:
        if not task_id:
            raise InvalidArgumentError("task_id", "is required")
        found = await self.find(task_id)
        if found is None:
            raise NotFoundError("deliberation", task_id)
        return found

    async def cancel(self, task_id: str) -> tuple[Deliberation, bool]:
        """Cancels a running deliberation; (record, False) when it had already finished. A run of another
        replica is flagged for its owner, which stops it at its next lease renewal; one whose owner is gone
        is taken over and ended here."""
        task = self._tasks.get(task_id)
        if task is None:
            record = await self.get(task_id)
            if record.status.finished or self.leases is None:
                return record, False
            for _ in range(3):  # the owner is told; or, where none is alive, this replica ends the run itself
                if await self.leases.request_cancel(task_id, now_ms()):
                    break
                if await self._acquire(task_id):
                    self._cancel_requested.add(task_id)
                    await self._resume(record)
                    break
            return await self.wait(task_id), True
        if task_id in self._started:
            task.cancel()
        else:  # a task cancelled before its first step could not record the outcome; let it see the request
            self._cancel_requested.add(task_id)
        with contextlib.suppress(asyncio.CancelledError):
            return await asyncio.shield(task), True
        return await self.get(task_id), True

    def running(self) -> list[Deliberation]:
        return list(self._live.values())

    @property
    def running_count(self) -> int:
        """Runs in this process, queued ones included; safe to read from another thread (a metrics scrape),
        where copying the live records is not."""
        return len(self._live)

    @property
    def queue_depth(self) -> int:
        return self._queued

    @property
    def holding_slot(self) -> int:
        """Runs that hold one of the `max_running` slots now: never more than the limit."""
        return self._holding_slot

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    async def watch(self, task_id: str) -> AsyncIterator[Update]:
        """The current state first, then every update as it happens, ending with the final state. A run of
        another replica is followed through its stored record (stage by stage)."""
        with self.hub.subscribe(task_id) as queue:  # subscribe before reading, so nothing falls in between
            current = Update(await self.get(task_id), "current")
            yield current
            if current.final:
                return
            seen = _progress_key(current.snapshot)
            while True:
                try:
                    update = await asyncio.wait_for(queue.get(), timeout=self.poll_s)
                except TimeoutError:
                    if task_id in self._tasks:
                        continue
                    stored = await self.get(task_id)
                    if _progress_key(stored) == seen:
                        continue
                    update = Update(stored, "finished" if stored.status.finished else "current")
                seen = _progress_key(update.snapshot)
                yield update
                if update.final:
                    return

    async def search(
        self, *, status: DeliberationStatus | None, role: Role | None, limit: int, offset: int
    ) -> list[Deliberation]:
        """Newest first; running deliberations show their live state."""
        records = await self.store.search(status=status, role=role, limit=limit, offset=offset)
        return [self._live.get(r.task_id, r) for r in records]

    async def resume_unfinished(self) -> list[str]:
        """At start-up (and then periodically, with leases): every PENDING/IN_PROGRESS record that no live
        replica runs carries on here from its last checkpoint."""
        resumed = []
        for record in await self.store.unfinished():
            if record.task_id in self._tasks or self._shutting_down:
                continue
            if not await self._acquire(record.task_id):
                continue  # another replica runs it
            if await self._resume(record):
                resumed.append(record.task_id)
        return resumed

    async def _resume(self, record: Deliberation) -> bool:
        council = await self.councils.get(record.task.role)
        if council is None:
            reason = "council was deleted before the run could resume"
            await self._save_with_events(_failed(record, reason), "finished")
            await self._release(record.task_id)
            return False
        log.info("deliberation_resumed", deliberation_id=record.task_id, stages_done=record.progress.stages_done)
        self._launch(record, peer_review=council.enable_peer_review)
        return True

    async def maintain(self) -> None:
        """With leases, for as long as the service runs: renews the leases of this replica's runs, stops a
        run whose cancel was asked on another replica (or whose lease was lost), and takes over the runs of
        replicas that stopped renewing. Store trouble is logged and tried again next round."""
        if self.leases is None:
            return
        interval = min(self.renew_every_s, self.lease_ttl_s / 3)
        sweep_every = max(1, round(self.lease_ttl_s / 2 / interval))
        rounds = 0
        while True:
            await asyncio.sleep(interval)
            rounds += 1
            try:
                await self._renew()
                if rounds % sweep_every == 0:
                    taken = await self.resume_unfinished()
                    if taken:
                        log.info("deliberations_taken_over", deliberation_ids=taken)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("lease_maintenance_failed", error=f"{type(exc).__name__}: {exc}")

    async def _renew(self) -> None:
        assert self.leases is not None
        mine = list(self._tasks)
        if not mine:
            return
        held = await self.leases.renew(self.owner, mine, now_ms(), int(self.lease_ttl_s * 1000))
        for task_id in mine:
            task = self._tasks.get(task_id)
            if task is None or task.done():
                continue
            if task_id not in held:
                log.warning("lease_lost", deliberation_id=task_id)
                self._lost.add(task_id)
                task.cancel()
            elif held[task_id] and task_id not in self._cancel_requested:
                log.info("cancel_requested_elsewhere", deliberation_id=task_id)
                self._cancel_requested.add(task_id)
                if task_id in self._started:
                    task.cancel()

    async def _acquire(self, task_id: str) -> bool:
        if self.leases is None:
            return True
        return await self.leases.acquire(task_id, self.owner, now_ms(), int(self.lease_ttl_s * 1000))

    async def _release(self, task_id: str) -> None:
        if self.leases is not None:
            with contextlib.suppress(Exception):  # it expires anyway
                await self.leases.release(task_id, self.owner)

    async def shutdown(self, grace_s: float) -> None:
        """Lets runs finish for `grace_s`, then interrupts the rest, which stay IN_PROGRESS at their last
        checkpoint and resume at the next start."""
        self._shutting_down = True
        pending = list(self._tasks.values())
        if pending:
            await asyncio.wait(pending, timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _launch(self, record: Deliberation, *, peer_review: bool) -> None:
        run = DeliberationRun(
            record,
            self.gateway,
            self.checker,
            self._checkpoint,
            self._notify,
            peer_review,
            verifier=self.verifier,
            early_stop=self.early_stop,
        )
        self._runs[record.task_id] = run
        self._live[record.task_id] = record
        task = asyncio.create_task(self._run(run), name=f"deliberation-{record.task_id}")
        self._tasks[record.task_id] = task

    async def _save_with_events(self, record: Deliberation, transition: str) -> None:
        events = self.events(record, transition) if self.events else []
        await self._persist(record, checkpoint=False, events=events)
        if events and self.on_events:
            self.on_events()

    async def _checkpoint(self, snapshot: Deliberation) -> None:
        await self._persist(snapshot, checkpoint=True, events=[])

    async def _persist(self, record: Deliberation, *, checkpoint: bool, events: list[OutboundEvent]) -> None:
        """Writes, waiting out a store outage (with backoff) instead of losing the run: when the database
        comes back the run carries on; if the process stops first, the last checkpoint is resumed."""
        delay = 0.2
        while True:
            try:
                await self.store.save(record, checkpoint=checkpoint, events=events)
                return
            except DependencyUnavailableError as exc:
                log.warning("store_unavailable_retrying", deliberation_id=record.task_id, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    async def _finishing(self, work: Coroutine[Any, Any, T]) -> T:
        """Concluding and recording a run's end is not interrupted by a later cancel (a second cancel, a
        caller going away): otherwise the record would stay IN_PROGRESS with nobody running it. Only shutdown
        interrupts it, and then the last checkpoint resumes at the next start."""
        inner = asyncio.ensure_future(work)
        while True:
            try:
                return await asyncio.shield(inner)
            except asyncio.CancelledError:
                if self._shutting_down:
                    inner.cancel()
                    raise
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()

    def _notify(self, snapshot: Deliberation, event: str, agent_id: str) -> None:
        self._live[snapshot.task_id] = snapshot
        for observer in self.observers:
            observer(snapshot, event, agent_id)
        self.hub.publish(Update(snapshot, event, agent_id))

    async def _acquire_slot(self) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.admission.max_running)
        self._queued += 1
        try:
            await self._slots.acquire()
        finally:
            self._queued -= 1
        self._holding_slot += 1

    async def _mark_started(self, run: DeliberationRun) -> None:
        started = run.snapshot.started_at_ms or now_ms()  # a resumed run keeps its original start
        run.snapshot = replace(run.snapshot, status=DeliberationStatus.IN_PROGRESS, started_at_ms=started)
        await self._save_with_events(run.snapshot, "started")
        self._notify(run.snapshot, "started", "")

    async def _run(self, run: DeliberationRun) -> Deliberation:
        task_id = run.snapshot.task_id
        bound = log.bind(deliberation_id=task_id, role=run.snapshot.task.role.value)
        acquired = False
        self._started.add(task_id)
        try:
            try:
                if task_id in self._cancel_requested:
                    raise asyncio.CancelledError
                await self._acquire_slot()
                acquired = True  # before any other await, so a cancel from here on gives the slot back
                await self._mark_started(run)
                async with asyncio.timeout(run.snapshot.task.timeout_s):
                    final = await run.execute()
            except TimeoutError:
                final = await self._finishing(
                    run.conclude_early(
                        DeliberationStatus.TIMEOUT,
                        f"deadline of {run.snapshot.task.timeout_s:g}s passed "
                        f"during {run.snapshot.stage} (round {run.snapshot.round})",
                    )
                )
            except asyncio.CancelledError:
                if self._shutting_down or task_id in self._lost:
                    raise  # keep the last checkpoint; the next start (or the lease's new owner) resumes it
                final = await self._finishing(run.conclude_early(DeliberationStatus.CANCELLED, "cancelled by request"))
            await self._finishing(self._save_with_events(final, "finished"))
            self._notify(final, "finished", "")
            bound.info(
                "deliberation_finished",
                status=final.status.value,
                duration_ms=final.duration_ms,
                winner=final.winner_id,
                tokens=final.usage.total_tokens,
            )
            return final
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a store failure: record it rather than lose the run silently
            bound.exception("deliberation_crashed")
            failed = _failed(run.snapshot, f"internal error: {exc}")
            with contextlib.suppress(Exception):
                await self._save_with_events(failed, "finished")
            self._notify(failed, "finished", "")
            return failed
        finally:
            if acquired and self._slots is not None:
                self._holding_slot -= 1
                self._slots.release()
            await self._release(task_id)  # done, or shut down: any replica may take it over from its checkpoint
            self._lost.discard(task_id)
            self._tasks.pop(task_id, None)
            self._started.discard(task_id)
            self._cancel_requested.discard(task_id)
            self._live.pop(task_id, None)
            self._runs.pop(task_id, None)
