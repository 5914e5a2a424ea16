"""The one table from domain errors to gRPC status codes; nothing known reaches a client as UNKNOWN."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog

from orchestrator.domain.errors import (
    AlreadyExistsError,
    CapacityError,
    ConfigError,
    CouncilMissingError,
    DependencyUnavailableError,
    InvalidArgumentError,
    LLMCallError,
    NotFoundError,
    PlacementError,
    TaskIdConflictError,
)
from orchestrator.domain.redaction import redact_secrets
from orchestrator.domain.text import cut_with_size

log = structlog.get_logger(__name__)

STATUS_TABLE: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (TaskIdConflictError, grpc.StatusCode.ALREADY_EXISTS),
    (CouncilMissingError, grpc.StatusCode.FAILED_PRECONDITION),
    (PlacementError, grpc.StatusCode.FAILED_PRECONDITION),
    (CapacityError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (DependencyUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (LLMCallError, grpc.StatusCode.UNAVAILABLE),
    (ConfigError, grpc.StatusCode.FAILED_PRECONDITION),
)


DETAIL_CHARS = 500
"""The most a status detail says: far below the 8-16 KiB a client accepts in its trailers."""
LOGGED_REASON_CHARS = 2_000


def status_for(exc: Exception) -> grpc.StatusCode:
    for kind, code in STATUS_TABLE:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


Req = TypeVar("Req")
Resp = TypeVar("Resp")


def public_detail(exc: Exception) -> str:
    """What the client is told. Failures of a dependency or of the service itself carry internals (actor ids,
    pids, namespaces, hosts, SQL), so the client gets the kind of failure and the log keeps the rest; a
    rejected request is told exactly what is wrong with it."""
    if isinstance(exc, DependencyUnavailableError):
        # "orchestrator" is this service's own state (starting up, shutting down), written for callers.
        if exc.dependency == "orchestrator":
            return str(exc)
        return f"{exc.dependency} unavailable; retry later"
    if isinstance(exc, LLMCallError):
        return f"LLM endpoint unavailable ({exc.code}); retry later"
    return str(exc)


def _report(exc: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    code = status_for(exc)
    if code is grpc.StatusCode.INTERNAL:
        ref = uuid.uuid4().hex[:12]
        log.error("rpc_failed", method=method, ref=ref, exc_info=exc)
        return code, f"internal error (ref {ref}); the details are in the service's log"
    reason = redact_secrets(str(exc))
    log.info("rpc_rejected", method=method, code=code.name, reason=cut_with_size(reason, LOGGED_REASON_CHARS))
    return code, cut_with_size(redact_secrets(public_detail(exc)), DETAIL_CHARS)


def unary(
    fn: Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]],
) -> Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    """Translates domain errors of a unary handler through the table."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            code, message = _report(exc, fn.__name__)
            await context.abort(code, message)
            raise  # unreachable: abort raises

    return wrapper


def streaming(
    fn: Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]],
) -> Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]]:
    """The same translation for server-streaming handlers."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Resp]:
        try:
            async for item in fn(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            code, message = _report(exc, fn.__name__)
            await context.abort(code, message)

    return wrapper
