"""The run supervisor: the asyncio tasks of the deliberations this process runs, from launch to their recorded end.

A run's record is written when it is created, after every stage (checkpoint) and when it ends, so a crash loses at
most the stage in flight, and `resume_unfinished` carries interrupted runs on from their last checkpoint. Each run
has one handle in the registry; admission gives it a slot, leasing decides (with replicas) who runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import structlog

from orchestrator.application.ports import (
    AgentGateway,
    Checker,
    Clock,
    CouncilStore,
    DeliberationStore,
    Verifier,
)
from orchestrator.application.protocol.engine import DeliberationRun, Listener
from orchestrator.application.runs.admission import AdmissionControl
from orchestrator.application.runs.leasing import Leasing
from orchestrator.application.runs.recording import RunRecorder, finishing
from orchestrator.application.runs.registry import RunHandle, RunRegistry
from orchestrator.application.runs.updates import Update, UpdateHub, follow
from orchestrator.application.tracing import NoTracing, Tracing, run_info, run_outcome
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import InvalidArgumentError, NotFoundError
from orchestrator.domain.events import CallFinished, RunEvent, RunFinished, RunStarted
from orchestrator.domain.model import DeliberationStatus, Role

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass
class RunSupervisor:
    councils: CouncilStore
    recorder: RunRecorder
    gateway: AgentGateway
    checker: Checker
    clock: Clock
    leasing: Leasing
    admission: AdmissionControl = field(default_factory=AdmissionControl)
    hub: UpdateHub = field(default_factory=UpdateHub)
    listeners: tuple[Listener, ...] = ()
    """Told of every run event (metrics, statistics), after the live snapshot and the watchers."""
    poll_s: float = 0.5
    """How often a replica that does not run a deliberation looks at its stored record (wait, watch)."""
    verifier: Verifier | None = None
    """Runs the execution checks of the verify stages (in the sandbox, on Ray); None: reported as skipped."""
    early_stop: bool = True
    """End the critique/revise rounds once the evidence decides (application/protocol/verification.py)."""
    registry: RunRegistry = field(default_factory=RunRegistry)
    tracing: Tracing = field(default_factory=NoTracing)
    """An `invoke_workflow deliberation` span per run: a child of the trace current at launch (RPC, plan event)."""

    @property
    def records(self) -> DeliberationStore:
        return self.recorder.store

    async def find(self, task_id: str) -> Deliberation | None:
        """The live snapshot of a running deliberation, else the stored record, else None."""
        return self.registry.snapshot(task_id) or await self.records.get(task_id)

    async def get(self, task_id: str) -> Deliberation:
        if not task_id:
            raise InvalidArgumentError("task_id", "is required")
        found = await self.find(task_id)
        if found is None:
            raise NotFoundError("deliberation", task_id)
        return found

    async def wait(self, task_id: str) -> Deliberation:
        """The final record: from the run in this process, or, for one another replica runs, from the store."""
        while True:
            handle = self.registry.get(task_id)
            if handle is not None and handle.task is not None:
                return await asyncio.shield(handle.task)
            record = await self.get(task_id)
            if record.status.finished or not self.leasing.shared:
                return record
            await asyncio.sleep(self.poll_s)

    async def cancel(self, task_id: str) -> tuple[Deliberation, bool]:
        """Cancels a running deliberation; (record, False) when it had already finished. A run of another
        replica is flagged for its owner, which stops it at its next lease renewal; one whose owner is gone
        is taken over and ended here."""
        handle = self.registry.get(task_id)
        if handle is None or handle.task is None:
            return await self._cancel_elsewhere(task_id)
        if handle.started:
            handle.task.cancel()
        else:  # a task cancelled before its first step could not record the outcome; let it see the request
            handle.cancel_requested = True
        with contextlib.suppress(asyncio.CancelledError):
            return await asyncio.shield(handle.task), True
        return await self.get(task_id), True

    async def _cancel_elsewhere(self, task_id: str) -> tuple[Deliberation, bool]:
        record = await self.get(task_id)
        if record.status.finished or not self.leasing.shared:
            return record, False
        for _ in range(3):  # the owner is told; or, where none is alive, this replica ends the run itself
            if await self.leasing.request_cancel(task_id):
                break
            if await self.leasing.acquire(task_id):
                await self._resume(record, cancel=True)
                break
        return await self.wait(task_id), True

    def running(self) -> list[Deliberation]:
        return [h.snapshot for h in self.registry]

    @property
    def running_count(self) -> int:
        """Runs in this process, queued ones included; safe to read from another thread (a metrics scrape),
        where copying the live records is not."""
        return len(self.registry)

    @property
    def queue_depth(self) -> int:
        return self.admission.queued

    @property
    def holding_slot(self) -> int:
        """Runs that hold one of the `max_running` slots now: never more than the limit."""
        return self.admission.holding_slot

    @property
    def shutting_down(self) -> bool:
        return self.admission.shutting_down

    def watch(self, task_id: str) -> AsyncIterator[Update]:
        """The current state first, then every update as it happens, ending with the final state. A run of
        another replica is followed through its stored record (stage by stage)."""
        return follow(task_id, hub=self.hub, read=self.get, runs_here=self.registry.__contains__, poll_s=self.poll_s)

    async def search(
        self, *, status: DeliberationStatus | None, role: Role | None, limit: int, offset: int
    ) -> list[Deliberation]:
        """Newest first; running deliberations show their live state."""
        records = await self.records.search(status=status, role=role, limit=limit, offset=offset)
        return [self.registry.snapshot(r.task_id) or r for r in records]

    async def resume_unfinished(self) -> list[str]:
        """At start-up (and then periodically, with leases): every PENDING/IN_PROGRESS record that no live
        replica runs carries on here from its last checkpoint."""
        resumed = []
        for record in await self.records.unfinished():
            if record.task_id in self.registry or self.shutting_down:
                continue
            if not await self.leasing.acquire(record.task_id):
                continue  # another replica runs it
            if await self._resume(record):
                resumed.append(record.task_id)
        return resumed

    async def _resume(self, record: Deliberation, *, cancel: bool = False) -> bool:
        council = await self.councils.get(record.task.role)
        if council is None:
            reason = "council was deleted before the run could resume"
            await self.recorder.save(RunFinished(self.failed(record, reason)))
            await self.leasing.release(record.task_id)
            return False
        log.info("deliberation_resumed", deliberation_id=record.task_id, stages_done=record.progress.stages_done)
        self.launch(record, peer_review=council.enable_peer_review, cancel_requested=cancel)
        return True

    async def maintain(self) -> None:
        """With leases, for as long as the service runs: renews this replica's leases and takes over the runs
        of replicas that stopped renewing (application/runs/leasing.py)."""
        await self.leasing.maintain(self.registry, self.resume_unfinished)

    async def shutdown(self, grace_s: float) -> None:
        """Lets runs finish for `grace_s`, then interrupts the rest, which stay IN_PROGRESS at their last
        checkpoint and resume at the next start."""
        self.admission.shutting_down = True
        pending = self.registry.tasks()
        if pending:
            await asyncio.wait(pending, timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def failed(self, record: Deliberation, reason: str) -> Deliberation:
        now = self.clock.now_ms()
        return replace(record, status=DeliberationStatus.FAILED, error_message=reason, finished_at_ms=now)

    def launch(self, record: Deliberation, *, peer_review: bool, cancel_requested: bool = False) -> None:
        run = DeliberationRun(
            record,
            self.gateway,
            self.checker,
            self.recorder.checkpoint,
            self._notify,
            self.clock,
            peer_review,
            verifier=self.verifier,
            early_stop=self.early_stop,
            tracing=self.tracing,
        )
        handle = RunHandle(run, record, cancel_requested=cancel_requested)
        handle.task = asyncio.create_task(self._run(handle), name=f"deliberation-{record.task_id}")
        self.registry.add(handle)

    async def _finishing(self, work: Coroutine[Any, Any, T]) -> T:
        return await finishing(work, stopping=lambda: self.shutting_down)

    def _notify(self, event: RunEvent) -> None:
        # A call's accounting is for the listeners (metrics); watchers and readers see the agent's outcome.
        if not isinstance(event, CallFinished):
            if (handle := self.registry.get(event.task_id)) is not None:
                handle.snapshot = event.snapshot
            self.hub.publish(event)
        for listener in self.listeners:
            listener(event)

    async def _mark_started(self, run: DeliberationRun) -> None:
        started = run.snapshot.started_at_ms or self.clock.now_ms()  # a resumed run keeps its original start
        run.snapshot = replace(run.snapshot, status=DeliberationStatus.IN_PROGRESS, started_at_ms=started)
        await self.recorder.save(RunStarted(run.snapshot))
        self._notify(RunStarted(run.snapshot))

    async def _run(self, handle: RunHandle) -> Deliberation:
        # The run continues the trace of the request that created the record (kept with it, so a run resumed after a
        # restart stays in that trace); a record without one continues whatever was current at launch.
        parent = dict(handle.snapshot.trace) or None
        with self.tracing.span(run_info(handle.snapshot), parent=parent) as span:
            final = await self._run_to_end(handle)
            span.record(run_outcome(final))
            return final

    async def _run_to_end(self, handle: RunHandle) -> Deliberation:
        handle.started = True
        try:
            return await self._record_end(handle, await self._outcome(handle))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a store failure: record it rather than lose the run silently
            log.exception("deliberation_crashed", deliberation_id=handle.task_id, role=handle.snapshot.task.role.value)
            failed = self.failed(handle.run.snapshot, f"internal error: {exc}")
            with contextlib.suppress(Exception):
                await self.recorder.save(RunFinished(failed))
            self._notify(RunFinished(failed))
            return failed
        finally:
            if handle.holds_slot:
                self.admission.release_slot()
            await self.leasing.release(handle.task_id)  # done, or shut down: any replica may take it over
            self.registry.remove(handle.task_id)

    async def _outcome(self, handle: RunHandle) -> Deliberation:
        """Runs the protocol to its end, or to its deadline or cancellation, keeping what finished."""
        run = handle.run
        try:
            if handle.cancel_requested:
                raise asyncio.CancelledError
            await self.admission.acquire_slot()
            handle.holds_slot = True  # before any other await, so a cancel from here on gives the slot back
            await self._mark_started(run)
            async with asyncio.timeout(run.snapshot.task.timeout_s):
                return await run.execute()
        except TimeoutError:
            snapshot = run.snapshot
            reason = f"deadline of {snapshot.task.timeout_s:g}s passed during {snapshot.stage} (round {snapshot.round})"
            return await self._finishing(run.conclude_early(DeliberationStatus.TIMEOUT, reason))
        except asyncio.CancelledError:
            if self.shutting_down or handle.lost:
                raise  # keep the last checkpoint; the next start (or the lease's new owner) resumes it
            return await self._finishing(run.conclude_early(DeliberationStatus.CANCELLED, "cancelled by request"))

    async def _record_end(self, handle: RunHandle, final: Deliberation) -> Deliberation:
        await self._finishing(self.recorder.save(RunFinished(final)))
        self._notify(RunFinished(final))
        log.info(
            "deliberation_finished",
            deliberation_id=handle.task_id,
            role=final.task.role.value,
            status=final.status.value,
            duration_ms=final.duration_ms,
            winner=final.winner_id,
            tokens=final.usage.total_tokens,
        )
        return final
