"""Admission control: how many deliberations run at once, how many may wait for a slot, and refusing the rest."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from orchestrator.domain.errors import CapacityError, DependencyUnavailableError


@dataclass(frozen=True)
class Admission:
    """How many deliberations run at once, and how many may wait for a slot; beyond that, new work is refused."""

    max_running: int = 100
    max_queued: int = 1000


@dataclass
class AdmissionControl:
    """Places (admitted runs, running or queued) and slots (runs executing now). Every counter is touched only on
    the event loop; `queued` and `holding_slot` are also read from a metrics scrape thread (ints: safe)."""

    limits: Admission = field(default_factory=Admission)
    shutting_down: bool = False
    queued: int = 0
    holding_slot: int = 0
    reserved: int = 0
    """Places taken by start requests that passed admission and have not launched their run yet. Counted with
    the launched runs, so requests in parallel cannot all pass the check while each awaits the store."""
    _slots: asyncio.Semaphore | None = None

    def admit(self, launched: int) -> None:
        """Takes a place for a new run or refuses one. Check and reservation happen with no await between them,
        so they are atomic on the event loop; the caller gives the place back (`release_place`) on every path."""
        if self.shutting_down:
            raise DependencyUnavailableError("orchestrator", "shutting down; retry against another replica or later")
        admitted = launched + self.reserved
        if admitted >= self.limits.max_running + self.limits.max_queued:
            raise CapacityError(
                f"{self.holding_slot} deliberations running and {admitted - self.holding_slot} queued "
                f"(limits {self.limits.max_running} + {self.limits.max_queued}); retry later"
            )
        self.reserved += 1

    def release_place(self) -> None:
        """The reserved place is given back: its run launched (and now counts itself) or was refused."""
        self.reserved -= 1

    async def acquire_slot(self) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limits.max_running)
        self.queued += 1
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
        self.holding_slot += 1

    def release_slot(self) -> None:
        if self._slots is not None:
            self.holding_slot -= 1
            self._slots.release()
