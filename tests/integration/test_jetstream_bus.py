"""The JetStream adapter against a real nats-server: streams, redelivery after a nak, the delivery limit."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import nats
import pytest

from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.adapters.nats.jetstream import PLAN_APPROVED, Handled, JetStreamBus, NatsConfig, Outcome
from orchestrator.adapters.nats.planning import plan_approved_handler
from orchestrator.application.commands import CouncilDefaults
from orchestrator.application.events import DLQ_PLANNING
from orchestrator.compose import Options, compose
from orchestrator.testing.fakes import (
    FakeGateway,
    InMemoryDeliberationStore,
    fake_ports,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[JetStreamBus]:
    connection = JetStreamBus(NatsConfig(nats_server.url, ack_wait_s=5, max_deliver=3, backoff_s=(0.2, 0.2)))
    await connection.connect()
    await connection.js.purge_stream("PLANNING_EVENTS")
    yield connection
    await connection.close()


def plan(plan_id: str) -> bytes:
    return json.dumps(
        {
            "story_id": "s-1",
            "plan_id": plan_id,
            "approved_by": "po",
            "roles": ["DEV"],
            "timestamp": "t",
            "plan": {"title": "Slugify", "description": "Write a slugify function"},
        }
    ).encode()


async def consume_until(bus: JetStreamBus, handler: object, done: asyncio.Event, timeout_s: float = 15) -> None:
    task = asyncio.create_task(bus.consume(handler))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(done.wait(), timeout_s)
    finally:
        task.cancel()


async def dlq_messages(url: str) -> list[dict[str, object]]:
    nc = await nats.connect(url)
    sub = await nc.jetstream().pull_subscribe(DLQ_PLANNING, stream="ORCHESTRATOR_EVENTS")
    found = []
    try:
        while True:
            found += [json.loads(m.data)["payload"] for m in await sub.fetch(100, timeout=0.5)]
    except nats.errors.TimeoutError:
        pass
    await nc.close()
    return found


async def test_streams_and_consumer_are_created_idempotently(bus: JetStreamBus) -> None:
    await bus.ensure_streams()
    await bus.ensure_streams()
    info = await bus.js.consumer_info("PLANNING_EVENTS", "orch-planning-plan-approved")
    assert info.config.max_deliver == 3 and info.config.ack_policy == "explicit"
    assert info.config.filter_subject == PLAN_APPROVED


async def test_an_event_redelivered_after_a_nak_dispatches_nothing_new(bus: JetStreamBus) -> None:
    store, gateway = InMemoryDeliberationStore(), FakeGateway()
    options = Options(CouncilDefaults("fake-llm", 0.7, 256, num_agents=2), plans=True)
    dispatcher = compose(fake_ports(gateway, records=store), options).dispatcher
    assert dispatcher is not None
    real = plan_approved_handler(dispatcher)
    seen: list[Handled] = []
    done = asyncio.Event()

    async def ack_lost_first(body: bytes) -> Handled:
        handled = await real(body)  # dispatches for real, and then, the first time, "loses" the ack
        seen.append(handled)
        if len(seen) == 2:
            done.set()
        return Handled(Outcome.RETRY, "simulated lost ack") if len(seen) == 1 else handled

    plan_id = f"p-{uuid.uuid4().hex[:6]}"
    await bus.publish_raw(PLAN_APPROVED, plan(plan_id), uuid.uuid4().hex)
    await consume_until(bus, ack_lost_first, done)
    await dispatcher.wait_finished(plan_id)
    assert [h.outcome for h in seen] == [Outcome.ACK, Outcome.ACK]  # both deliveries handled successfully
    assert len(store.records) == 1 and len(store.dispatches) == 1
    assert len([c for c in gateway.calls if c[1] == "propose"]) == 2  # one deliberation of two agents, once
    assert bus.stats["nacked"] == 1 and bus.stats["acked"] == 1


async def test_a_transient_failure_is_retried_until_the_delivery_limit_then_dead_lettered(
    bus: JetStreamBus, nats_server: NatsServer
) -> None:
    deliveries = 0
    done = asyncio.Event()

    async def always_failing(body: bytes) -> Handled:
        nonlocal deliveries
        deliveries += 1
        if deliveries == 3:
            asyncio.get_running_loop().call_later(0.3, done.set)
        return Handled(Outcome.RETRY, "store unavailable")

    before = len(await dlq_messages(nats_server.url))
    await bus.publish_raw(PLAN_APPROVED, plan("p-retry"), uuid.uuid4().hex)
    await consume_until(bus, always_failing, done)
    dead = (await dlq_messages(nats_server.url))[before:]
    assert deliveries == 3
    assert len(dead) == 1 and dead[0]["delivery_count"] == 3
    assert "gave up after 3 deliveries: store unavailable" in str(dead[0]["reason"])
    assert json.loads(str(dead[0]["original_body"]))["plan_id"] == "p-retry"


async def test_an_invalid_event_is_dead_lettered_at_once_with_its_reason(
    bus: JetStreamBus, nats_server: NatsServer
) -> None:
    store = InMemoryDeliberationStore()
    options = Options(CouncilDefaults("fake-llm", 0.7, 256), plans=True)
    dispatcher = compose(fake_ports(FakeGateway(), records=store), options).dispatcher
    assert dispatcher is not None
    handler = plan_approved_handler(dispatcher)
    done = asyncio.Event()

    async def watched(body: bytes) -> Handled:
        handled = await handler(body)
        done.set()
        return handled

    before = len(await dlq_messages(nats_server.url))
    await bus.publish_raw(PLAN_APPROVED, b'{"plan_id": 5}', uuid.uuid4().hex)
    await consume_until(bus, watched, done)
    await asyncio.sleep(0.3)
    dead = (await dlq_messages(nats_server.url))[before:]
    assert len(dead) == 1 and dead[0]["delivery_count"] == 1
    assert "payload.story_id" in str(dead[0]["reason"])
    assert not store.dispatches
