"""A server span per RPC (`rpc.system=grpc`), child of the caller's `traceparent` metadata.

The span is current while the servicer runs, so whatever the RPC starts (a deliberation span, NATS events) joins
the caller's trace. Off, the interceptor returns the handler untouched: nothing wraps any call. Only the status
code is recorded on failure, never the details text (client input may be echoed in it).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from orchestrator.adapters.tracing import attributes as attr
from orchestrator.adapters.tracing.propagation import extract_grpc

# The stubs make these generic; at run time they are not subscriptable.
if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    _Interceptor: TypeAlias = grpc.aio.ServerInterceptor[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
    _Interceptor = grpc.aio.ServerInterceptor
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


def _status_name(code: grpc.StatusCode | None) -> int:
    return (code or grpc.StatusCode.OK).value[0]  # type: ignore[no-any-return]


class TracingServerInterceptor(_Interceptor):
    """Pass `TracingServerInterceptor(tracer)` in `grpc.aio.server(interceptors=[...])`; `tracer` None = off."""

    def __init__(self, tracer: trace.Tracer | None) -> None:
        self._tracer = tracer

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if self._tracer is None or handler is None:
            return handler
        method: str = handler_call_details.method
        metadata = handler_call_details.invocation_metadata
        span = _RpcSpan(self._tracer, method, metadata)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                span.unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                span.stream(handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # client-streaming RPCs: none in this service


class _RpcSpan:
    def __init__(self, tracer: trace.Tracer, method: str, metadata: Any) -> None:
        self._tracer = tracer
        self._name = method.lstrip("/")
        self._service, self._method = _split(method)
        self._parent = extract_grpc(metadata)

    def _start(self) -> Any:
        attributes = {attr.RPC_SYSTEM: "grpc", attr.RPC_SERVICE: self._service, attr.RPC_METHOD: self._method}
        return self._tracer.start_as_current_span(
            self._name,
            context=self._parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )

    def unary(self, behavior: Any) -> Any:
        """Wraps an async unary behaviour (`async def (request, context) -> response`)."""

        async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with self._start() as span:
                try:
                    response = await behavior(request, context)
                except BaseException as exc:
                    _finish(span, context, failed=exc)
                    raise
                _finish(span, context)
                return response

        return traced

    def stream(self, behavior: Any) -> Any:
        """Wraps an async server-streaming behaviour (`async def (request, context)` yielding responses)."""

        async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            with self._start() as span:
                try:
                    if inspect.isasyncgenfunction(behavior):
                        async for item in behavior(request, context):
                            yield item
                    else:  # a coroutine that writes with `context.write` (the health service's Watch)
                        await behavior(request, context)
                except BaseException as exc:
                    _finish(span, context, failed=exc)
                    raise
                _finish(span, context)

        return traced


def _finish(span: trace.Span, context: grpc.aio.ServicerContext[Any, Any], failed: BaseException | None = None) -> None:
    code = context.code()  # set by `context.abort` / `set_code`, so an abort is recorded with its own code
    if failed is not None and (code is None or code == grpc.StatusCode.OK):
        cancelled = isinstance(failed, asyncio.CancelledError)
        code = grpc.StatusCode.CANCELLED if cancelled else grpc.StatusCode.UNKNOWN
    span.set_attribute(attr.RPC_GRPC_STATUS, _status_name(code))
    if code not in (None, grpc.StatusCode.OK):
        span.set_attribute(attr.ERROR_TYPE, code.name)
        span.set_status(Status(StatusCode.ERROR))
