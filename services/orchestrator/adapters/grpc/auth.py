"""Bearer tokens on the gRPC API: `authorization: Bearer <token>` metadata, checked against AUTH_TOKENS_FILE.

Two scopes: `read` may call the RPCs that only look (RPC_SCOPES), `write` may call everything. The table names
every RPC of the service explicitly (a test walks the service descriptor); an RPC missing from it is treated as
`write`. Health always answers without a token (kubelet probes carry none); reflection does too unless
AUTH_PROTECT_REFLECTION is set, and then needs a `read` token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import structlog

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.domain.errors import ConfigError

log = structlog.get_logger(__name__)


class Scope(Enum):
    READ = "read"
    WRITE = "write"


SERVICE_NAME = pb.DESCRIPTOR.services_by_name["OrchestratorService"].full_name

RPC_SCOPES: dict[str, Scope] = {
    "GetDeliberationResult": Scope.READ,
    "ListCouncils": Scope.READ,
    "GetStatus": Scope.READ,
    "WatchDeliberation": Scope.READ,
    "ListDeliberations": Scope.READ,
    "GetPlan": Scope.READ,
    "Deliberate": Scope.WRITE,
    "StreamDeliberation": Scope.WRITE,  # starts a deliberation
    "SubmitDeliberation": Scope.WRITE,
    "CreateCouncil": Scope.WRITE,
    "DeleteCouncil": Scope.WRITE,
    "CancelDeliberation": Scope.WRITE,
}
"""The scope each RPC of OrchestratorService needs. Every RPC is listed; one that is not needs `write`."""

HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICES = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")


def required_scope(method: str, *, protect_reflection: bool) -> Scope | None:
    """The scope a full method name (`/package.Service/Method`) needs; None = open to every caller."""
    service, _, name = method.lstrip("/").rpartition("/")
    if service == HEALTH_SERVICE:
        return None
    if service in REFLECTION_SERVICES:
        return Scope.READ if protect_reflection else None
    if service == SERVICE_NAME:
        return RPC_SCOPES.get(name, Scope.WRITE)
    return Scope.WRITE


def _digest(token: str) -> bytes:
    # Equal-length digests, so that compare_digest's time depends on neither the token's length nor its content.
    return hashlib.sha256(token.encode()).digest()


def parse_tokens(text: str, source: str) -> dict[bytes, Scope]:
    """`TOKEN SCOPE` per line, `#` comments and blank lines ignored. Errors name the line, never the token."""
    tokens: dict[bytes, Scope] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in {s.value for s in Scope}:
            raise ConfigError(f"AUTH_TOKENS_FILE {source} line {number}: expected 'TOKEN read' or 'TOKEN write'")
        tokens[_digest(parts[0])] = Scope(parts[1])
    if not tokens:
        raise ConfigError(f"AUTH_TOKENS_FILE {source}: no tokens in it (every call would be refused)")
    return tokens


def lookup(tokens: dict[bytes, Scope], token: str) -> Scope | None:
    """The scope of `token` in parsed tokens, or None. Compares against every entry in constant time, so the
    answer's timing says nothing about how close a guess was."""
    wanted, found = _digest(token), None
    for digest, scope in tokens.items():
        if hmac.compare_digest(digest, wanted):
            found = scope
    return found


class TokenFile:
    """The tokens of AUTH_TOKENS_FILE, re-read when the file's (inode, size, mtime) changes. A file that turns
    unreadable or invalid keeps the tokens last read, and says so in the log."""

    def __init__(self, path: Path, check_interval_s: float = 1.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._signature = self._stat()
        if self._signature is None:
            raise ConfigError(f"AUTH_TOKENS_FILE {path}: no such file")
        self._tokens = self._load()
        self.check_interval_s = check_interval_s
        self._checked_at = 0.0

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _load(self) -> dict[bytes, Scope]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"AUTH_TOKENS_FILE {self.path}: cannot be read ({type(exc).__name__})") from None
        return parse_tokens(text, str(self.path))

    def _refresh(self, now: float) -> None:
        if now - self._checked_at < self.check_interval_s:
            return
        self._checked_at = now
        signature = self._stat()
        if signature is None or signature == self._signature:
            return
        try:
            self._tokens = self._load()
        except ConfigError as exc:
            log.error("auth_tokens_reload_failed", error=str(exc), keeping="previous tokens")
        else:
            log.info("auth_tokens_reloaded", tokens=len(self._tokens))
        self._signature = signature

    def scope_of(self, token: str, now: float) -> Scope | None:
        """The scope of `token`, or None when it is not in the file (re-read first if it changed)."""
        with self._lock:
            self._refresh(now)
            tokens = self._tokens
        return lookup(tokens, token)


def bearer_token(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    details: str


Clock = Callable[[], float]


def decide(
    tokens: TokenFile, method: str, token: str | None, now: float, *, protect_reflection: bool
) -> Refusal | None:
    """None when the call may go ahead, else why not. The details never repeat the token."""
    needed = required_scope(method, protect_reflection=protect_reflection)
    if needed is None:
        return None
    if token is None:
        return Refusal(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token (metadata 'authorization: Bearer …')")
    scope = tokens.scope_of(token, now)
    if scope is None:
        return Refusal(grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token")
    if needed is Scope.WRITE and scope is not Scope.WRITE:
        return Refusal(grpc.StatusCode.PERMISSION_DENIED, f"{method.rsplit('/', 1)[-1]} needs a 'write' token")
    return None


if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]  # generic in the stubs only
else:
    _Interceptor = grpc.aio.ServerInterceptor


class TokenAuthInterceptor(_Interceptor):
    """Refuses calls without a valid token of the scope their RPC needs, before the handler runs."""

    def __init__(self, tokens: TokenFile, clock: Clock, *, protect_reflection: bool = False) -> None:
        self.tokens = tokens
        self.clock = clock
        self.protect_reflection = protect_reflection

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        token = bearer_token(handler_call_details.invocation_metadata)
        refusal = decide(self.tokens, method, token, self.clock(), protect_reflection=self.protect_reflection)
        handler = await continuation(handler_call_details)
        if refusal is None:
            return handler
        log.info("rpc_refused", method=method, code=refusal.code.name, token_present=token is not None)
        return _refusing(handler, refusal)


def _refusing(handler: grpc.RpcMethodHandler[Any, Any] | None, refusal: Refusal) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape as the refused one (unary or streaming, either way) that only aborts."""

    async def abort(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(refusal.code, refusal.details)

    if handler is None:
        return grpc.unary_unary_rpc_method_handler(abort)
    shape = (handler.request_streaming, handler.response_streaming)
    factory = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[shape]
    return factory(abort, request_deserializer=handler.request_deserializer)
