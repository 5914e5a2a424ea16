"""Replica coordination: with several replicas on one store, a run goes on only in the replica holding its lease.

Leases are renewed in the background (`maintain`); a replica that stops renewing loses its runs to the others,
which resume them from their last checkpoint. A cancel asked on a replica that does not run the deliberation is
flagged on its lease, and the owner sees the flag at its next renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from orchestrator.application.ports import Clock, Leases
from orchestrator.application.runs.registry import RunRegistry

log = structlog.get_logger(__name__)


def replica_id() -> str:
    """Who holds a lease: host and pid, unique among running processes. A container restarted in the same pod
    comes back with the same id, so it resumes its own runs at once instead of waiting for their leases."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Leasing:
    """The lease protocol of one replica. Without `leases` this process is the only one (tests, the embedded
    stack): every lease is granted and nothing is renewed."""

    clock: Clock
    leases: Leases | None = None
    owner: str = field(default_factory=replica_id)
    ttl_s: float = 30.0
    renew_every_s: float = 2.0
    """Also how soon a cancel asked on another replica reaches the run's owner."""

    @property
    def shared(self) -> bool:
        return self.leases is not None

    async def acquire(self, task_id: str) -> bool:
        if self.leases is None:
            return True
        return await self.leases.acquire(task_id, self.owner, self.clock.now_ms(), self._ttl_ms)

    async def release(self, task_id: str) -> None:
        if self.leases is not None:
            with contextlib.suppress(Exception):  # it expires anyway
                await self.leases.release(task_id, self.owner)

    async def request_cancel(self, task_id: str) -> bool:
        """Flags the run's lease for its owner; False when no live owner holds it."""
        return self.leases is not None and await self.leases.request_cancel(task_id, self.clock.now_ms())

    async def renew(self, runs: RunRegistry) -> None:
        """Renews the leases of this replica's runs; stops a run whose lease was lost or whose cancel was asked
        on another replica."""
        mine = runs.ids()
        if self.leases is None or not mine:
            return
        held = await self.leases.renew(self.owner, mine, self.clock.now_ms(), self._ttl_ms)
        for task_id in mine:
            handle = runs.get(task_id)
            if handle is None or handle.task is None or handle.task.done():
                continue
            if task_id not in held:
                log.warning("lease_lost", deliberation_id=task_id)
                handle.lost = True
                handle.task.cancel()
            elif held[task_id] and not handle.cancel_requested:
                log.info("cancel_requested_elsewhere", deliberation_id=task_id)
                handle.cancel_requested = True
                if handle.started:
                    handle.task.cancel()

    async def maintain(self, runs: RunRegistry, take_over: Callable[[], Awaitable[list[str]]]) -> None:
        """For as long as the service runs: renews leases and, every half TTL, takes over (`take_over`) the runs
        of replicas that stopped renewing. Store trouble is logged and tried again next round."""
        if self.leases is None:
            return
        interval = min(self.renew_every_s, self.ttl_s / 3)
        sweep_every = max(1, round(self.ttl_s / 2 / interval))
        rounds = 0
        while True:
            await asyncio.sleep(interval)
            rounds += 1
            try:
                await self.renew(runs)
                if rounds % sweep_every == 0 and (taken := await take_over()):
                    log.info("deliberations_taken_over", deliberation_ids=taken)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("lease_maintenance_failed", error=f"{type(exc).__name__}: {exc}")

    @property
    def _ttl_ms(self) -> int:
        return int(self.ttl_s * 1000)
