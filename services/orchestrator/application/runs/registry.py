"""The runs of this process: one handle per running deliberation, with its task, live snapshot and cancel state."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

from orchestrator.application.protocol.engine import DeliberationRun
from orchestrator.domain.deliberation import Deliberation


@dataclass
class RunHandle:
    run: DeliberationRun
    snapshot: Deliberation
    """The record as of the run's latest event: what readers (get, watch, search) see while it runs."""
    task: asyncio.Task[Deliberation] | None = None
    started: bool = False
    """The task has begun its first step: from here on a cancel interrupts it (before, it is only flagged)."""
    holds_slot: bool = False
    """It holds one of the admission slots, given back when it ends."""
    cancel_requested: bool = False
    lost: bool = False
    """Its lease went to another replica: stop without recording an outcome; the new owner carries it on."""

    @property
    def task_id(self) -> str:
        return self.snapshot.task_id


@dataclass
class RunRegistry:
    _handles: dict[str, RunHandle] = field(default_factory=dict)

    def add(self, handle: RunHandle) -> None:
        self._handles[handle.task_id] = handle

    def get(self, task_id: str) -> RunHandle | None:
        return self._handles.get(task_id)

    def remove(self, task_id: str) -> None:
        self._handles.pop(task_id, None)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._handles

    def __len__(self) -> int:
        return len(self._handles)

    def __iter__(self) -> Iterator[RunHandle]:
        return iter(list(self._handles.values()))

    def ids(self) -> list[str]:
        return list(self._handles)

    def snapshot(self, task_id: str) -> Deliberation | None:
        handle = self._handles.get(task_id)
        return handle.snapshot if handle is not None else None

    def tasks(self) -> list[asyncio.Task[Deliberation]]:
        return [h.task for h in self._handles.values() if h.task is not None]
