"""The application's front door: every use case with its dependencies bound, for the gRPC, NATS and CLI
adapters alike, so each of them translates and delegates and nothing more."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from orchestrator.application import councils, deliberations
from orchestrator.application.commands import (
    CancelDeliberation,
    CouncilDefaults,
    CreateCouncil,
    Deliberate,
    GetDeliberation,
    Limits,
    ListDeliberations,
    WatchDeliberation,
)
from orchestrator.application.deliberations import Start
from orchestrator.application.dispatch import PlanDispatcher
from orchestrator.application.ports import AgentRuntime, Clock, CouncilStore, RuntimeSummary, Verifier
from orchestrator.application.runs.supervisor import RunSupervisor
from orchestrator.application.runs.updates import Update
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import NotFoundError
from orchestrator.domain.events import RunEvent, RunFinished
from orchestrator.domain.model import Council, DeliberationStatus
from orchestrator.domain.plans import PlanDispatch

log = structlog.get_logger(__name__)

LLMProbe = Callable[[], Awaitable[None]]
"""One cheap request to the LLM endpoint; raises when it cannot be reached or does not answer."""


@dataclass(frozen=True)
class StatusReport:
    uptime_s: int
    by_status: dict[DeliberationStatus, int]
    avg_duration_ms: float
    councils: list[Council]
    running: int
    queued: int
    runtime: RuntimeSummary
    serving: bool = True
    """False during shutdown. The gRPC adapter also reports False while its health says NOT_SERVING (a required
    dependency is down)."""
    llm_reachable: bool | None = None
    """The latest probe of the LLM endpoint; None before the first (or without a probe)."""
    sandbox: str = "not configured: execution checks are skipped"
    """Whether proposals' code can be executed (the sandbox's last probe), in words."""


@dataclass
class RunDurations:
    """A run listener: the durations of the latest completed runs, for GetStatus's average."""

    latest: deque[int] = field(default_factory=lambda: deque(maxlen=1000))

    def __call__(self, event: RunEvent) -> None:
        if isinstance(event, RunFinished) and event.snapshot.status is DeliberationStatus.COMPLETED:
            self.latest.append(event.snapshot.duration_ms)


@dataclass
class Orchestrator:
    """Built once by the composition root (bootstrap.compose) with every dependency; nothing is attached later.
    `llm_reachable` is state that changes while it runs (`check_llm`), not wiring."""

    council_store: CouncilStore
    runtime: AgentRuntime
    supervisor: RunSupervisor
    start: Start
    """The start-deliberation use case with its collaborators bound."""
    defaults: CouncilDefaults
    clock: Clock
    limits: Limits = field(default_factory=Limits)
    verifier: Verifier | None = None
    dispatcher: PlanDispatcher | None = None
    durations: RunDurations = field(default_factory=RunDurations)
    """Must be among the supervisor's listeners (the composition root sees to it)."""
    llm_probe: LLMProbe | None = None
    llm_reachable: bool | None = None
    started_at: float = 0.0

    def __post_init__(self) -> None:
        self.started_at = self.started_at or self.clock.monotonic()

    async def create_council(self, cmd: CreateCouncil) -> Council:
        return await councils.create_council(
            cmd,
            store=self.council_store,
            runtime=self.runtime,
            defaults=self.defaults,
            limits=self.limits,
            now_ms=self.clock.now_ms(),
        )

    async def list_councils(self, role_filter: str = "") -> list[Council]:
        return await councils.list_councils(role_filter, store=self.council_store)

    async def delete_council(self, role: str) -> tuple[Council, int]:
        return await councils.delete_council(role, store=self.council_store, runtime=self.runtime)

    async def ensure_councils(self, wanted: list[CreateCouncil]) -> list[Council]:
        """Creates the wanted councils that do not exist yet (COUNCILS_FILE at start-up)."""
        return await councils.ensure_councils(
            wanted,
            store=self.council_store,
            runtime=self.runtime,
            defaults=self.defaults,
            limits=self.limits,
            now_ms=self.clock.now_ms(),
        )

    async def restore(self) -> tuple[list[Council], list[str]]:
        """Start-up: councils get their agents back, then interrupted deliberations resume."""
        restored = await councils.restore_councils(store=self.council_store, runtime=self.runtime)
        resumed = await self.supervisor.resume_unfinished()
        if self.dispatcher is not None:
            await self.dispatcher.resume()
        return restored, resumed

    async def get_plan(self, plan_id: str) -> tuple[PlanDispatch, dict[str, Deliberation]]:
        """A dispatched plan and the deliberations of its subtasks and of DEV's follow-up (those that exist)."""
        if self.dispatcher is None:
            raise NotFoundError("plan", plan_id)
        dispatch = await self.dispatcher.dispatches.get_dispatch(plan_id)
        if dispatch is None:
            raise NotFoundError("plan", plan_id)
        runs = {}
        ids = [r.deliberation_id for r in dispatch.subtasks]
        ids += [dispatch.follow_up.deliberation_id] if dispatch.follow_up else []
        for task_id in ids:
            found = await self.supervisor.find(task_id)
            if found is not None:
                runs[task_id] = found
        return dispatch, runs

    async def deliberate(self, cmd: Deliberate) -> Deliberation:
        return await deliberations.deliberate(cmd, start=self.start, supervisor=self.supervisor)

    async def get_result(self, task_id: str) -> Deliberation:
        return await deliberations.get_deliberation(GetDeliberation(task_id), supervisor=self.supervisor)

    async def history(self, task_id: str) -> list[Deliberation]:
        """The stored stage checkpoints of a deliberation, oldest first (what each stage left, e.g. the proposals
        before their revisions); empty when none is stored."""
        return await self.supervisor.records.checkpoints(task_id)

    async def submit(self, cmd: Deliberate) -> tuple[Deliberation, bool]:
        """Starts a deliberation in the background; (record, created). An existing task_id is returned as is."""
        return await self.start(cmd)

    async def cancel(self, task_id: str) -> tuple[Deliberation, bool]:
        return await deliberations.cancel_deliberation(CancelDeliberation(task_id), supervisor=self.supervisor)

    def watch(self, task_id: str) -> AsyncIterator[Update]:
        return deliberations.watch_deliberation(WatchDeliberation(task_id), supervisor=self.supervisor)

    def stream(self, cmd: Deliberate) -> AsyncIterator[Update]:
        """Starts (or attaches to) a deliberation and yields its updates; a run this call started is cancelled
        when the caller stops listening before it ends."""
        return deliberations.stream_deliberation(cmd, start=self.start, supervisor=self.supervisor)

    async def list_deliberations(
        self, *, status: DeliberationStatus | None, role: str, page_size: int, page_token: str
    ) -> tuple[list[Deliberation], str]:
        """A page of deliberations, newest first, and the token of the next page ("" at the end)."""
        cmd = ListDeliberations(status=status, role=role, page_size=page_size, page_token=page_token)
        return await deliberations.list_deliberations(cmd, supervisor=self.supervisor)

    async def check_llm(self, timeout_s: float = 3.0) -> bool | None:
        """Probes the LLM endpoint once (bounded by `timeout_s`) and remembers the outcome for GetStatus;
        None without a probe. Logs each change."""
        if self.llm_probe is None:
            return None
        try:
            async with asyncio.timeout(timeout_s):
                await self.llm_probe()
            reachable, problem = True, ""
        except Exception as exc:
            reachable, problem = False, f"{type(exc).__name__}: {str(exc)[:200]}"
        if reachable != self.llm_reachable:
            if reachable:
                log.info("llm_reachable")
            else:
                log.warning("llm_unreachable", problem=problem)
        self.llm_reachable = reachable
        return reachable

    async def status(self) -> StatusReport:
        counts = await self.supervisor.records.counts()
        durations = self.durations.latest
        if not durations:  # after a restart, seed the average from the latest stored runs
            recent = await self.supervisor.records.search(status=DeliberationStatus.COMPLETED, limit=100)
            durations.extend(d.duration_ms for d in reversed(recent))
        return StatusReport(
            uptime_s=int(self.clock.monotonic() - self.started_at),
            by_status=counts,
            avg_duration_ms=sum(durations) / len(durations) if durations else 0.0,
            councils=await self.council_store.all_councils(),
            running=self.supervisor.holding_slot,
            queued=self.supervisor.queue_depth,
            runtime=await self.runtime.summary(),
            serving=not self.supervisor.shutting_down,
            llm_reachable=self.llm_reachable,
            sandbox=self._sandbox_status(),
        )

    def _sandbox_status(self) -> str:
        verifier = self.verifier
        if verifier is None:
            return "not configured: execution checks are skipped"
        return verifier.availability().summary
