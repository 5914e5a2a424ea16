"""Recording a run: its record, checkpoints and outbound events written to the store, through store outages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from orchestrator.application.ports import DeliberationStore, OutboundEvent
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import DependencyUnavailableError
from orchestrator.domain.events import RunEvent

log = structlog.get_logger(__name__)

T = TypeVar("T")

OutboundEvents = Callable[[RunEvent], list[OutboundEvent]]
"""The outbound events (NATS, through the outbox) of a run event; saved atomically with its record."""


@dataclass(frozen=True)
class RunRecorder:
    store: DeliberationStore
    outbound: OutboundEvents | None = None
    on_events: Callable[[], None] | None = None
    """Told when events were written, so the relay publishes them without waiting for its next poll."""

    async def save(self, event: RunEvent) -> None:
        """The record as of a transition (started, finished), with the transition's outbound events."""
        events = self.outbound(event) if self.outbound else []
        await self.persist(event.snapshot, checkpoint=False, events=events)
        if events and self.on_events:
            self.on_events()

    async def checkpoint(self, snapshot: Deliberation) -> None:
        await self.persist(snapshot, checkpoint=True, events=[])

    async def persist(self, record: Deliberation, *, checkpoint: bool, events: list[OutboundEvent]) -> None:
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


async def finishing(work: Coroutine[Any, Any, T], *, stopping: Callable[[], bool]) -> T:
    """Concluding and recording a run's end is not interrupted by a later cancel (a second cancel, a caller going
    away): otherwise the record would stay IN_PROGRESS with nobody running it. Only `stopping()` (shutdown) lets
    it be interrupted, and then the last checkpoint resumes at the next start."""
    inner = asyncio.ensure_future(work)
    while True:
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            if stopping():
                inner.cancel()
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
