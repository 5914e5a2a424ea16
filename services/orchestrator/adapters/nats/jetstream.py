"""NATS JetStream: streams, the durable planning consumer, and the event publisher.

Streams are file-backed and created (or updated) idempotently at start-up; every subject the service
publishes falls under `ORCHESTRATOR_EVENTS`. The consumer is a durable pull consumer with explicit acks, an
ack wait, a delivery limit and a redelivery backoff; the client reconnects forever, and the durable consumer
lives in the server, so a NATS restart loses nothing and the loop carries on where it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from orchestrator.adapters.tracing.propagation import nats_headers
from orchestrator.application.events import DLQ_PLANNING, envelope, trace_context
from orchestrator.application.ports import OutboundEvent
from orchestrator.application.tracing import Failure, NoTracing, ReceiveInfo, Tracing
from orchestrator.domain.errors import DependencyUnavailableError
from orchestrator.domain.redaction import redact_secrets, redact_url

log = structlog.get_logger(__name__)

PLANNING_STREAM = "PLANNING_EVENTS"
ORCHESTRATOR_STREAM = "ORCHESTRATOR_EVENTS"
PLAN_APPROVED = "planning.plan.approved"
DURABLE = "orch-planning-plan-approved"
MAX_DLQ_BODY = 64 * 1024


@dataclass(frozen=True)
class NatsConfig:
    url: str
    ack_wait_s: float = 60.0
    max_deliver: int = 5
    backoff_s: tuple[float, ...] = (1.0, 5.0, 15.0, 30.0)
    """Redelivery delays after a missed ack; at most max_deliver - 1 of them."""
    duplicate_window_s: float = 600.0
    """How long the streams remember a Nats-Msg-Id; re-publishes inside it are dropped as duplicates."""
    fetch_batch: int = 10
    connect_timeout_s: float = 5.0


class Outcome:
    """What the consumer does with a message after handling it."""

    ACK = "ack"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True)
class Handled:
    outcome: str
    reason: str = ""


Handler = Callable[[bytes], Awaitable[Handled]]


@dataclass
class JetStreamBus:
    config: NatsConfig
    stats: dict[str, int] = field(default_factory=lambda: {"acked": 0, "nacked": 0, "dead": 0, "published": 0})
    tracing: Tracing = field(default_factory=NoTracing)
    """A consumer span per inbound message (child of its `traceparent` header); trace headers on what goes out."""
    _nc: Client | None = None
    _js: JetStreamContext | None = None
    _closing: bool = False

    async def connect(self) -> None:
        try:
            # Reconnects are unlimited once connected; the first connection must succeed within the timeout.
            self._nc = await asyncio.wait_for(self._connect(), self.config.connect_timeout_s * 2)
        except Exception as exc:
            raise DependencyUnavailableError(
                "nats", redact_secrets(f"cannot connect to {self.config.url}: {exc!r}")
            ) from exc
        self._js = self._nc.jetstream()
        await self.ensure_streams()
        log.info("nats_connected", url=redact_url(self.config.url))

    async def _connect(self) -> Client:
        return await nats.connect(
            self.config.url,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            connect_timeout=self.config.connect_timeout_s,
            allow_reconnect=True,
            disconnected_cb=self._on_disconnect,
            reconnected_cb=self._on_reconnect,
            error_cb=self._on_error,
        )

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def close(self) -> None:
        self._closing = True
        # Every publish already waited for its stream ack, so there is nothing to drain: close at once.
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()

    async def _on_disconnect(self) -> None:
        if not self._closing:
            log.warning("nats_disconnected")

    async def _on_reconnect(self) -> None:
        log.info("nats_reconnected")

    async def _on_error(self, exc: Exception) -> None:
        if self._nc is not None:  # failures of the first connection are reported once, by connect()
            log.warning("nats_error", error=str(exc))

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise DependencyUnavailableError("nats", "not connected")
        return self._js

    async def ensure_streams(self) -> None:
        for name, subjects in ((PLANNING_STREAM, ["planning.>"]), (ORCHESTRATOR_STREAM, ["orchestration.>"])):
            config = StreamConfig(
                name=name,
                subjects=subjects,
                storage=StorageType.FILE,
                duplicate_window=self.config.duplicate_window_s,
            )
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:  # exists with other settings: bring it to ours
                await self.js.update_stream(config)
        backoff = list(self.config.backoff_s[: max(0, self.config.max_deliver - 1)])
        consumer = ConsumerConfig(
            durable_name=DURABLE,
            filter_subject=PLAN_APPROVED,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.config.ack_wait_s,
            max_deliver=self.config.max_deliver,
            backoff=backoff or None,
        )
        await self.js.add_consumer(PLANNING_STREAM, consumer)

    async def publish(self, event: OutboundEvent) -> None:
        """EventPublisher: returns once the stream stored it (or recognised it as a duplicate)."""
        # The trace context the event was made in (kept in its envelope through the outbox) goes out as headers.
        headers = nats_headers(event.event_id, trace_context(event.payload))
        ack = await self.js.publish(event.subject, event.payload.encode(), timeout=5, headers=headers)
        self.stats["published"] += 0 if ack.duplicate else 1

    async def publish_raw(self, subject: str, body: bytes, msg_id: str = "") -> Any:
        headers = nats_headers(msg_id, self.tracing.carrier())  # the current trace, if any (a dead letter's)
        return await self.js.publish(subject, body, timeout=5, headers=headers or None)

    async def consume(self, handler: Handler) -> None:
        """Fetches and handles plan events until cancelled; survives disconnects and server restarts."""
        sub: JetStreamContext.PullSubscription | None = None
        while True:
            try:
                if sub is None:
                    sub = await self.js.pull_subscribe_bind(durable=DURABLE, stream=PLANNING_STREAM)
                messages = await sub.fetch(self.config.fetch_batch, timeout=1)
            except (nats.errors.TimeoutError, TimeoutError):  # no message within the fetch window
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # disconnected, server restarting: the durable consumer waits for us
                log.warning("nats_fetch_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)
                continue
            for msg in messages:
                await self._handle(msg, handler)

    async def _handle(self, msg: Msg, handler: Handler) -> None:
        # What the handler starts (a plan's dispatch, its deliberations) continues the publisher's trace.
        with self.tracing.span(ReceiveInfo(msg.subject), parent=msg.headers) as span:
            outcome = await self._handle_traced(msg, handler)
            if outcome != Outcome.ACK:
                span.record(Failure(outcome))

    async def _handle_traced(self, msg: Msg, handler: Handler) -> str:
        deliveries = msg.metadata.num_delivered
        try:
            handled = await handler(msg.data)
        except Exception as exc:  # a bug in the handler is treated as transient, within max_deliver
            log.exception("plan_event_handler_crashed")
            handled = Handled(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        if handled.outcome == Outcome.RETRY and deliveries >= self.config.max_deliver:
            handled = Handled(Outcome.DEAD, f"gave up after {deliveries} deliveries: {handled.reason}")
        try:
            await self._settle(msg, handled, deliveries)
        except Exception as exc:  # cannot settle now; without an ack the server redelivers after ack_wait
            log.warning("nats_settle_failed", error=str(exc))
        return handled.outcome

    async def _settle(self, msg: Msg, handled: Handled, deliveries: int) -> None:
        if handled.outcome == Outcome.ACK:
            await msg.ack()
            self.stats["acked"] += 1
        elif handled.outcome == Outcome.RETRY:
            delays = self.config.backoff_s or (5.0,)
            await msg.nak(delay=delays[min(deliveries, len(delays)) - 1])
            self.stats["nacked"] += 1
            log.info("plan_event_nacked", reason=handled.reason, deliveries=deliveries)
        else:
            await self._dead_letter(msg, handled.reason, deliveries)
            await msg.term()
            self.stats["dead"] += 1

    async def _dead_letter(self, msg: Msg, reason: str, deliveries: int) -> None:
        """Publishes the reason and the original body to the DLQ subject (before the message is termed)."""
        sequence = msg.metadata.sequence.stream
        payload = {
            "reason": reason,
            "subject": msg.subject,
            "stream_sequence": sequence,
            "delivery_count": deliveries,
            "original_size": len(msg.data),
            "original_body": msg.data[:MAX_DLQ_BODY].decode(errors="replace"),
        }
        key = f"dlq:{PLANNING_STREAM}:{sequence}"
        await self.publish_raw(DLQ_PLANNING, envelope(DLQ_PLANNING, payload, key, key).encode(), key)
        log.warning("plan_event_dead_lettered", reason=reason, sequence=sequence, deliveries=deliveries)
