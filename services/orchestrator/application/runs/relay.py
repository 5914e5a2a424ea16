"""The outbox relay: publishes stored events in order and removes each once the stream has stored it.

A publish that fails (bus down) is retried with backoff; the events stay in the outbox meanwhile, so nothing
is lost, and a re-publish after a crash carries the same idempotency key, so the stream drops the duplicate.
At shutdown, once the runs have stopped and before the bus closes, `flush` publishes what the last moments
stored (a run that finished within the grace), bounded in time; what it cannot send waits for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

import structlog

from orchestrator.application.ports import EventPublisher, Outbox

log = structlog.get_logger(__name__)


@dataclass
class OutboxRelay:
    outbox: Outbox
    publisher: EventPublisher
    poll_s: float = 1.0
    max_backoff_s: float = 10.0
    published: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Runs until cancelled."""
        failures = 0
        while True:
            self._wake.clear()
            try:
                sent = await self.drain()
                failures = 0
            except Exception as exc:  # the bus or the store is down: back off, the events are still stored
                failures += 1
                delay = min(self.max_backoff_s, 0.5 * 2 ** min(failures, 6)) * random.uniform(0.8, 1.2)
                log.warning("outbox_publish_failed", error=str(exc), retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def flush(self, timeout_s: float) -> int:
        """Publishes everything pending, for at most `timeout_s`; returns how many events went out. Never raises:
        what is not sent stays in the outbox, and the next start publishes it."""
        before = self.published
        try:
            async with asyncio.timeout(timeout_s):
                while await self.drain() > 0:  # a full batch or less: ask again until nothing is pending
                    continue
        except TimeoutError:
            log.warning("outbox_flush_timed_out", published=self.published - before, timeout_s=timeout_s)
        except Exception as exc:  # the bus is down: the events stay stored
            log.warning("outbox_flush_failed", published=self.published - before, error=str(exc))
        return self.published - before

    async def drain(self, batch: int = 100) -> int:
        """Publishes what is pending now; returns how many events went out."""
        events = await self.outbox.pending_events(batch)
        for event in events:
            await self.publisher.publish(event)
            await self.outbox.mark_sent([event.event_id])
            self.published += 1
        return len(events)
