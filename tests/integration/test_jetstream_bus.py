"""The JetStream adapter against a real nats-server: streams, redelivery after a nak, the delivery limit."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.adapters.nats.jetstream import (
    ORCHESTRATOR_STREAM,
    PLAN_APPROVED,
    Handled,
    JetStreamBus,
    NatsConfig,
    Outcome,
)
from orchestrator.adapters.nats.planning import plan_approved_handler
from orchestrator.adapters.tracing.facade import OtelTracing
from orchestrator.application.events import DLQ_PLANNING, envelope
from orchestrator.application.ports import OutboundEvent
from orchestrator.compose import compose
from orchestrator.testing.fakes import (
    FakeGateway,
    InMemoryDeliberationStore,
    fake_options,
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
        await asyncio.gather(task, return_exceptions=True)  # no consumer outlives its test


async def dlq_messages(url: str) -> list[dict[str, object]]:
    nc = await nats.connect(url)
    sub = await nc.jetstream().pull_subscribe(DLQ_PLANNING, stream="ORCHESTRATOR_EVENTS")
    found = []
    try:
        while True:
            found += [json.loads(m.data)["payload"] for m in await sub.fetch(100, timeout=0.5)]
    except (nats.errors.TimeoutError, TimeoutError):  # the client raises either kind when nothing is left
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
    options = fake_options(num_agents=2, plans=True)
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


NEWLINE_ID = json.dumps(
    {
        "story_id": "s-1",
        "plan_id": "p-newline",
        "approved_by": "po",
        "timestamp": "2026-11-25T10:00:00Z",
        "subtasks": [{"subtask_id": "a\n", "role": "DEV"}],
    }
).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"plan_id": 5}', "payload.story_id"),
        (NEWLINE_ID, "payload.subtasks.0.subtask_id"),  # refused over gRPC too: one id rule for both
    ],
)
async def test_an_invalid_event_is_dead_lettered_at_once_with_its_reason(
    bus: JetStreamBus, nats_server: NatsServer, body: bytes, reason: str
) -> None:
    store = InMemoryDeliberationStore()
    options = fake_options(plans=True)
    dispatcher = compose(fake_ports(FakeGateway(), records=store), options).dispatcher
    assert dispatcher is not None
    handler = plan_approved_handler(dispatcher)
    done = asyncio.Event()

    async def watched(body: bytes) -> Handled:
        handled = await handler(body)
        done.set()
        return handled

    before = len(await dlq_messages(nats_server.url))
    await bus.publish_raw(PLAN_APPROVED, body, uuid.uuid4().hex)
    await consume_until(bus, watched, done)
    await asyncio.sleep(0.3)
    dead = (await dlq_messages(nats_server.url))[before:]
    assert len(dead) == 1 and dead[0]["delivery_count"] == 1
    assert reason in str(dead[0]["reason"])
    assert str(dead[0]["original_body"]).encode() == body  # nothing lost: the event is kept as it came
    assert not store.dispatches


async def test_traced_bus_continues_the_publishers_trace_and_sends_the_events_own_on(nats_server: NatsServer) -> None:
    """With tracing: the handler runs inside a consumer span, child of the message's `traceparent`; a message that
    is dead-lettered marks it as an error (by its outcome only); an outbound event is published with
    the trace context kept in its envelope (not the one current when the relay publishes it)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = OtelTracing(provider.get_tracer("test"))
    bus = JetStreamBus(NatsConfig(nats_server.url, ack_wait_s=5, max_deliver=3, backoff_s=(0.2,)), tracing=tracing)
    await bus.connect()
    await bus.js.purge_stream("PLANNING_EVENTS")
    trace_id, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    seen: list[str] = []

    async def handler(body: bytes) -> Handled:
        seen.append(tracing.carrier()["traceparent"])
        return Handled(Outcome.DEAD, "not a plan")

    try:
        headers = {"traceparent": f"00-{trace_id}-{parent}-01", "Nats-Msg-Id": uuid.uuid4().hex}
        await bus.js.publish(PLAN_APPROVED, b"{}", headers=headers)
        consuming = asyncio.create_task(bus.consume(handler))
        for _ in range(300):  # until the message is settled and its span has ended (bounded: 30 s)
            if any(s.name.endswith(" process") for s in exporter.get_finished_spans()):
                break
            await asyncio.sleep(0.1)
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
        made_in = {"traceparent": f"00-{trace_id}-{'ab' * 8}-01"}
        event_id = f"evt-{uuid.uuid4().hex[:8]}"
        body = envelope("orchestration.deliberation.started", {"task_id": "t"}, event_id, "c", trace=made_in)
        await bus.publish(OutboundEvent(event_id, "orchestration.deliberation.started", body, 0))
        # publish returns once the stream stored the event: read back what was stored (headers included), rather
        # than race a core subscription's delivery on a loaded machine.
        sent = await bus.js.get_last_msg(ORCHESTRATOR_STREAM, "orchestration.deliberation.started")
    finally:
        await bus.close()

    (span,) = [s for s in exporter.get_finished_spans() if s.name == f"{PLAN_APPROVED} process"]
    assert span.parent is not None and format(span.parent.span_id, "016x") == parent
    assert format(span.context.trace_id, "032x") == trace_id and span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == Outcome.DEAD
    assert seen and seen[0].split("-")[2] == format(span.context.span_id, "016x")  # the handler ran inside it
    assert sent.headers is not None and sent.headers["traceparent"] == made_in["traceparent"]
    assert sent.headers["Nats-Msg-Id"] == event_id
