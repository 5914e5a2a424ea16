"""The one table from domain errors to gRPC status codes; nothing known reaches a client as UNKNOWN."""

from __future__ import annotations

import functools
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
    OrchestratorError,
    TaskIdConflictError,
)

log = structlog.get_logger(__name__)

STATUS_TABLE: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (TaskIdConflictError, grpc.StatusCode.ALREADY_EXISTS),
    (CouncilMissingError, grpc.StatusCode.FAILED_PRECONDITION),
    (CapacityError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (DependencyUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (LLMCallError, grpc.StatusCode.UNAVAILABLE),
    (ConfigError, grpc.StatusCode.FAILED_PRECONDITION),
)


def status_for(exc: Exception) -> grpc.StatusCode:
    for kind, code in STATUS_TABLE:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


Req = TypeVar("Req")
Resp = TypeVar("Resp")


def _report(exc: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    code = status_for(exc)
    if code is grpc.StatusCode.INTERNAL and not isinstance(exc, OrchestratorError):
        log.exception("rpc_failed", method=method)
        return code, f"internal error in {method}: {type(exc).__name__}"
    log.info("rpc_rejected", method=method, code=code.name, reason=str(exc))
    return code, str(exc)


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
