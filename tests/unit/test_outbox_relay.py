"""The outbox relay's last flush at shutdown: everything pending goes out, and a stuck bus cannot hold the stop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from orchestrator.application.ports import OutboundEvent
from orchestrator.application.runs.relay import OutboxRelay
from orchestrator.testing.fakes import InMemoryDeliberationStore


@dataclass
class Publisher:
    stuck_after: int | None = None
    sent: list[str] = field(default_factory=list)

    async def publish(self, event: OutboundEvent) -> None:
        if self.stuck_after is not None and len(self.sent) >= self.stuck_after:
            await asyncio.Event().wait()  # a bus that never acknowledges
        self.sent.append(event.event_id)


def outbox(n: int) -> InMemoryDeliberationStore:
    store = InMemoryDeliberationStore()
    store.outbox = {f"e{i}": OutboundEvent(f"e{i}", "orchestration.x", "{}", created_at_ms=i) for i in range(n)}
    return store


async def test_flush_publishes_every_pending_event_in_order_across_batches() -> None:
    store, publisher = outbox(250), Publisher()
    relay = OutboxRelay(store, publisher)
    assert await relay.flush(5.0) == 250
    assert publisher.sent == [f"e{i}" for i in range(250)] and store.outbox == {}


async def test_a_stuck_bus_ends_the_flush_at_its_limit_and_the_unsent_events_stay() -> None:
    store, publisher = outbox(5), Publisher(stuck_after=2)
    relay = OutboxRelay(store, publisher)
    assert await relay.flush(0.2) == 2
    assert sorted(store.outbox) == ["e2", "e3", "e4"]  # the next start publishes them


async def test_a_failing_bus_ends_the_flush_without_raising() -> None:
    class Down:
        async def publish(self, event: OutboundEvent) -> None:
            raise ConnectionError("nats: no servers available")

    store = outbox(3)
    assert await OutboxRelay(store, Down()).flush(5.0) == 0
    assert len(store.outbox) == 3
