"""A small, real OTLP/gRPC trace receiver for tests: the collector's `TraceService` on a free loopback port,
keeping every span it receives for assertions (find by name, walk parent links, read attributes).

It runs a plain (threaded) gRPC server, so the exporter's blocking exports never wait on a test's event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Value = str | int | float | bool | bytes | list[Any] | dict[str, Any] | None


def decode_value(value: AnyValue) -> Value:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [decode_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return decode_attributes(value.kvlist_value.values)
    decoded: Value = getattr(value, kind)
    return decoded


def decode_attributes(pairs: Any) -> dict[str, Any]:
    items: list[KeyValue] = list(pairs)
    return {kv.key: decode_value(kv.value) for kv in items}


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    """32 lower-case hex digits, as in a `traceparent`."""
    span_id: str
    parent_span_id: str
    """"" for a root span."""
    kind: int
    """The OTLP `Span.SpanKind` number (2 server, 3 client, 1 internal)."""
    attributes: dict[str, Any]
    status_code: int
    """The OTLP `Status.StatusCode` number (0 unset, 1 ok, 2 error)."""
    resource: dict[str, Any] = field(default_factory=dict)
    events: tuple[str, ...] = ()

    @property
    def service_name(self) -> str:
        return str(self.resource.get("service.name", ""))


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: Callable[[list[ReceivedSpan]], None]) -> None:
        self._sink = sink

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        received: list[ReceivedSpan] = []
        for resource_spans in request.resource_spans:
            resource = decode_attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                received.extend(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        attributes=decode_attributes(span.attributes),
                        status_code=span.status.code,
                        resource=resource,
                        events=tuple(event.name for event in span.events),
                    )
                    for span in scope_spans.spans
                )
        self._sink(received)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """`endpoint` is what `OTEL_EXPORTER_OTLP_ENDPOINT` takes (plaintext `http://127.0.0.1:<port>`)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Condition()
        self._spans: list[ReceivedSpan] = []
        self.exports = 0
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        add_servicer = trace_service_pb2_grpc.add_TraceServiceServicer_to_server  # generated, untyped
        add_servicer(_Collector(self._receive), self._server)  # type: ignore[no-untyped-call]
        self.port = self._server.add_insecure_port(f"{host}:0")
        self.endpoint = f"http://{host}:{self.port}"

    def _receive(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self._spans.extend(spans)
            self.exports += 1
            self._lock.notify_all()

    def start(self) -> OtlpReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 10.0) -> list[ReceivedSpan]:
        """Blocks until `predicate(spans)` holds; raises TimeoutError with what did arrive otherwise."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while not predicate(self._spans):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = sorted({s.name for s in self._spans})
                    raise TimeoutError(f"spans never matched in {timeout_s}s; received {len(self._spans)}: {names}")
                self._lock.wait(left)
            return list(self._spans)

    def named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ReceivedSpan:
        found = self.named(name)
        if len(found) != 1:
            raise AssertionError(f"expected one span {name!r}, found {len(found)}")
        return found[0]

    def by_id(self, span_id: str) -> ReceivedSpan | None:
        return next((s for s in self.spans if s.span_id == span_id), None)

    def parent_of(self, span: ReceivedSpan) -> ReceivedSpan | None:
        return self.by_id(span.parent_span_id) if span.parent_span_id else None

    def ancestors(self, span: ReceivedSpan) -> list[ReceivedSpan]:
        """Parent first, up to the root (or the first parent this receiver did not get)."""
        chain: list[ReceivedSpan] = []
        current = self.parent_of(span)
        while current is not None:
            chain.append(current)
            current = self.parent_of(current)
        return chain

    def children_of(self, span: ReceivedSpan) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.parent_span_id == span.span_id and s.trace_id == span.trace_id]

    def in_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]


@contextmanager
def running_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
