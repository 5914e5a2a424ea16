"""The tracing port, as the adapters see it: the Protocols live in `application/tracing.py` (the application talks
to them only); this module re-exports them and adds what only adapters need (reading gRPC metadata)."""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.application.tracing import (
    AttributeValue,
    ChatInfo,
    ChatUsage,
    DeliberationInfo,
    Failure,
    ForbiddenAttributeError,
    NoTracing,
    Outcome,
    ReceiveInfo,
    Retries,
    RunOutcome,
    Span,
    SpanInfo,
    StageInfo,
    ToolInfo,
    ToolResult,
    TraceCarrier,
    Tracing,
)

__all__ = [
    "AttributeValue",
    "ChatInfo",
    "ChatUsage",
    "DeliberationInfo",
    "Failure",
    "ForbiddenAttributeError",
    "NoTracing",
    "Outcome",
    "ReceiveInfo",
    "Retries",
    "RunOutcome",
    "Span",
    "SpanInfo",
    "StageInfo",
    "ToolInfo",
    "ToolResult",
    "TraceCarrier",
    "Tracing",
    "carrier_from_metadata",
]


def carrier_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> TraceCarrier:
    """The trace headers among gRPC invocation metadata (keys are lower case on the wire)."""
    found: TraceCarrier = {}
    for key, value in metadata or ():
        name = key.lower()
        if name in ("traceparent", "tracestate") and isinstance(value, str):
            found[name] = value
    return found
