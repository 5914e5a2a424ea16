"""The application's front door: every use case with its dependencies bound, for the gRPC, NATS and CLI
adapters alike, so each of them translates and delegates and nothing more."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from orchestrator.application import councils
from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate, Limits
from orchestrator.application.deliberations import Deliberations
from orchestrator.application.engine import now_ms
from orchestrator.application.ports import AgentRuntime, CouncilStore
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.model import Council, DeliberationStatus


@dataclass(frozen=True)
class StatusReport:
    uptime_s: int
    by_status: dict[DeliberationStatus, int]
    avg_duration_ms: float
    councils: list[Council]
    running: int


@dataclass
class Orchestrator:
    council_store: CouncilStore
    runtime: AgentRuntime
    deliberations: Deliberations
    defaults: CouncilDefaults
    limits: Limits = field(default_factory=Limits)
    started_at: float = field(default_factory=time.monotonic)
    _durations: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.deliberations.observers.append(self._record_duration)

    def _record_duration(self, snapshot: Deliberation, event: str, _agent: str) -> None:
        if event == "finished" and snapshot.status is DeliberationStatus.COMPLETED:
            self._durations.append(snapshot.duration_ms)

    async def create_council(self, cmd: CreateCouncil) -> Council:
        return await councils.create_council(
            cmd,
            store=self.council_store,
            runtime=self.runtime,
            defaults=self.defaults,
            limits=self.limits,
            now_ms=now_ms(),
        )

    async def list_councils(self, role_filter: str = "") -> list[Council]:
        return await councils.list_councils(role_filter, store=self.council_store)

    async def delete_council(self, role: str) -> tuple[Council, int]:
        return await councils.delete_council(role, store=self.council_store, runtime=self.runtime)

    async def restore(self) -> tuple[list[Council], list[str]]:
        """Start-up: councils get their agents back, then interrupted deliberations resume."""
        restored = await councils.restore_councils(store=self.council_store, runtime=self.runtime)
        resumed = await self.deliberations.resume_unfinished()
        return restored, resumed

    async def deliberate(self, cmd: Deliberate) -> Deliberation:
        return await self.deliberations.deliberate(cmd)

    async def get_result(self, task_id: str) -> Deliberation:
        return await self.deliberations.get(task_id)

    async def status(self) -> StatusReport:
        counts = await self.deliberations.store.counts()
        durations = self._durations
        return StatusReport(
            uptime_s=int(time.monotonic() - self.started_at),
            by_status=counts,
            avg_duration_ms=sum(durations) / len(durations) if durations else 0.0,
            councils=await self.council_store.all_councils(),
            running=len(self.deliberations.running()),
        )
