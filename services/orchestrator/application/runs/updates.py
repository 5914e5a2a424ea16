"""Live updates of deliberations: every stage start/end and every finished agent call, fanned out to watchers.

Publishing never blocks a deliberation: each watcher has a bounded queue, and a watcher that falls behind loses
its oldest intermediate updates, never the final one (which is always the last thing published).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.events import RunEvent


@dataclass(frozen=True)
class Update:
    """One event of a deliberation with the record as it stood right after it."""

    snapshot: Deliberation
    event: str
    """current, or the `name` of the run event (domain/events.py): started | stage_started | stage_finished |
    agent_finished | agent_failed | llm_unavailable | llm_back | token_budget_reached | finished"""
    agent_id: str = ""

    @property
    def final(self) -> bool:
        return self.event == "finished" or (self.event == "current" and self.snapshot.status.finished)


@dataclass
class UpdateHub:
    backlog: int = 1000
    _watchers: dict[str, set[asyncio.Queue[Update]]] = field(default_factory=dict)

    def publish(self, event: RunEvent) -> None:
        watchers = self._watchers.get(event.task_id)
        if not watchers:
            return
        update = Update(event.snapshot, event.name, event.agent_id)
        for queue in watchers:
            if queue.full():
                queue.get_nowait()  # drop the oldest intermediate update; the newest state matters more
            queue.put_nowait(update)

    @contextlib.contextmanager
    def subscribe(self, task_id: str) -> Iterator[asyncio.Queue[Update]]:
        queue: asyncio.Queue[Update] = asyncio.Queue(self.backlog)
        self._watchers.setdefault(task_id, set()).add(queue)
        try:
            yield queue
        finally:
            watchers = self._watchers.get(task_id, set())
            watchers.discard(queue)
            if not watchers:
                self._watchers.pop(task_id, None)

    def watcher_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())


def _progress_key(record: Deliberation) -> tuple[object, ...]:
    return (record.status, record.stage, record.round, record.progress.stages_done, len(record.progress.calls))


async def follow(
    task_id: str,
    *,
    hub: UpdateHub,
    read: Callable[[str], Awaitable[Deliberation]],
    runs_here: Callable[[str], bool],
    poll_s: float,
) -> AsyncIterator[Update]:
    """A deliberation's updates: its current state (`read`), then what the hub publishes for it, ending with its
    final state. While no run of it is in this process (`runs_here`), its stored record is polled every `poll_s`
    (another replica runs it)."""
    with hub.subscribe(task_id) as queue:  # subscribe before reading, so nothing falls in between
        current = Update(await read(task_id), "current")
        yield current
        if current.final:
            return
        seen = _progress_key(current.snapshot)
        while True:
            try:
                update = await asyncio.wait_for(queue.get(), timeout=poll_s)
            except TimeoutError:
                if runs_here(task_id):
                    continue
                stored = await read(task_id)
                if _progress_key(stored) == seen:
                    continue
                update = Update(stored, "finished" if stored.status.finished else "current")
            seen = _progress_key(update.snapshot)
            yield update
            if update.final:
                return
