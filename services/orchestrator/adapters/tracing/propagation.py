"""W3C trace context (`traceparent`, `tracestate`) in and out of the places a trace crosses: gRPC invocation
metadata, NATS message headers, and a plain dict sent along a Ray actor call.

Only the trace context travels, never baggage: baggage is free-form and could carry anything to a peer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orchestrator.adapters.tracing.port import TraceCarrier, carrier_from_metadata

_PROPAGATOR = TraceContextTextMapPropagator()
TRACE_HEADERS = frozenset(_PROPAGATOR.fields)
"""`traceparent` and `tracestate`."""


def inject(context: Context | None = None) -> TraceCarrier:
    """The given (else the current) trace context as a new dict; {} when there is no valid span in it."""
    carrier: TraceCarrier = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier


def extract(carrier: Mapping[str, str] | None) -> Context:
    """A context whose parent is the carrier's span (an empty context, i.e. a new trace, when it has none).
    Header names are matched case-insensitively, as NATS and HTTP peers may capitalise them."""
    lowered = {k.lower(): v for k, v in (carrier or {}).items() if k.lower() in TRACE_HEADERS}
    return _PROPAGATOR.extract(lowered, context=Context())


def extract_grpc(metadata: Iterable[tuple[str, str | bytes]] | None) -> Context:
    """The parent context of an RPC from its invocation metadata."""
    return extract(carrier_from_metadata(metadata))


def extract_nats(headers: Mapping[str, str] | None) -> Context:
    """The parent context of a NATS message from its headers (`msg.headers`, None when it has none)."""
    return extract(headers)


def inject_nats(headers: Mapping[str, str] | None = None, context: Context | None = None) -> dict[str, str]:
    """Outbound NATS headers: `headers` (e.g. `Nats-Msg-Id`) plus the trace context; a stale trace header in
    `headers` is replaced, never duplicated."""
    merged = {k: v for k, v in (headers or {}).items() if k.lower() not in TRACE_HEADERS}
    merged.update(inject(context))
    return merged


def nats_headers(msg_id: str, carrier: Mapping[str, str] | None) -> dict[str, str]:
    """Headers of an event published later than it was made (the outbox): its `Nats-Msg-Id` and the trace
    context captured when it was made (`inject()` then, stored with the event)."""
    headers = {k.lower(): v for k, v in (carrier or {}).items() if k.lower() in TRACE_HEADERS}
    return {"Nats-Msg-Id": msg_id, **headers} if msg_id else headers


@contextmanager
def attached(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Inside the block the carrier's trace is current (no-op for an empty carrier: the current trace stays)."""
    if not carrier:
        yield
        return
    token = otel_context.attach(extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)
