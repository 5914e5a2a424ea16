"""Bearer tokens on the gRPC API: `authorization: Bearer <token>` metadata, checked against AUTH_TOKENS_FILE.

Two scopes: `read` may call the RPCs that only look (RPC_SCOPES), `write` may call everything. The table names
every RPC of the service explicitly (a test walks the service descriptor); an RPC missing from it is treated as
`write`. Health always answers without a token (kubelet probes carry none); reflection does too unless
AUTH_PROTECT_REFLECTION is set, and then needs a `read` token.

The tokens file is re-read when it changes; one that turns invalid, unreadable or goes away keeps the tokens last
read, logs an error once and says so in `TokenFile.problems()` (GetStatus `warnings`) until it is good again.
Refused calls are all counted (`RefusalLog.counts`, the metric `orchestrator_grpc_refused_calls_total`), but logged
at most once per client address per REFUSAL_LOG_INTERVAL_S, with the number of refusals not logged since, and at
most REFUSAL_LOG_LINES lines per interval in all: an unauthenticated client cannot flood the log. The web view
checks the same TokenFile and records its refused requests in the same RefusalLog (transport `web`: the metric
`orchestrator_web_refused_requests_total`, the log line `web_refused`), so a client is one client to the log
whichever port it knocks on.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
    unreadable, invalid or is deleted keeps the tokens last read, and says so: one error in the log, and
    `problems()` until the file is good again."""

    def __init__(self, path: Path, check_interval_s: float = 1.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._signature = self._stat()
        if self._signature is None:
            raise ConfigError(f"AUTH_TOKENS_FILE {path}: no such file")
        self._tokens = self._load()
        self.check_interval_s = check_interval_s
        self._checked_at = 0.0
        self._problem = ""

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
        if signature == self._signature:
            return
        self._signature = signature
        if signature is None:
            self._report(f"AUTH_TOKENS_FILE {self.path}: the file is gone")
            return
        try:
            self._tokens = self._load()
        except ConfigError as exc:
            self._report(str(exc))
        else:
            if self._problem:
                log.info("auth_tokens_file_fixed", file=str(self.path), was=self._problem)
            self._problem = ""
            log.info("auth_tokens_reloaded", tokens=len(self._tokens))

    def _report(self, problem: str) -> None:
        self._problem = f"{problem}; still serving with the {len(self._tokens)} tokens last read"
        log.error("auth_tokens_file_problem", error=problem, keeping=f"the {len(self._tokens)} tokens last read")

    def problems(self, now: float) -> list[str]:
        """What is wrong with the file now (re-read first if it changed), for GetStatus; [] when nothing is."""
        with self._lock:
            self._refresh(now)
            return [self._problem] if self._problem else []

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
    reason: str = ""
    """missing_token, invalid_token or needs_write: the metric's label and the log's reason."""


Clock = Callable[[], float]


def decide(
    tokens: TokenFile, method: str, token: str | None, now: float, *, protect_reflection: bool
) -> Refusal | None:
    """None when the call may go ahead, else why not. The details never repeat the token."""
    needed = required_scope(method, protect_reflection=protect_reflection)
    if needed is None:
        return None
    if token is None:
        return Refusal(
            grpc.StatusCode.UNAUTHENTICATED,
            "missing bearer token (metadata 'authorization: Bearer …')",
            "missing_token",
        )
    scope = tokens.scope_of(token, now)
    if scope is None:
        return Refusal(grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token", "invalid_token")
    if needed is Scope.WRITE and scope is not Scope.WRITE:
        return Refusal(
            grpc.StatusCode.PERMISSION_DENIED, f"{method.rsplit('/', 1)[-1]} needs a 'write' token", "needs_write"
        )
    return None


if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]  # generic in the stubs only
else:
    _Interceptor = grpc.aio.ServerInterceptor


GRPC = "grpc"
WEB = "web"
"""The transports a refusal is counted under."""
REFUSAL_LOG_INTERVAL_S = 60.0
"""At most one `rpc_refused` line per client address in this many seconds."""
REFUSAL_LOG_LINES = 100
"""At most this many `rpc_refused` lines per interval in all (a client that changes its address each call)."""
REFUSAL_LOG_CLIENTS = 10_000
"""Client addresses remembered; the least recently logged is forgotten first."""


def web_client_address(remote: str | None) -> str:
    """A web request's remote address in `client_address`'s form (`ipv4:10.0.0.7`, `ipv6:[2001:db8::1]`), so
    that a client refused on both ports is one client to the refusal log."""
    if not remote:
        return "unknown"
    if ":" in remote:
        return f"ipv6:[{remote.strip('[]')[:100]}]"
    return f"ipv4:{remote[:100]}"


def client_address(peer: str) -> str:
    """The client's address without its port (`ipv4:10.0.0.7:51234` -> `ipv4:10.0.0.7`): every new connection
    has a new port, and a flood is one client however many connections it opens."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return f"ipv4:{rest.rsplit(':', 1)[0]}"
    if kind == "ipv6" and rest.startswith("["):
        return f"ipv6:{rest.split(']', 1)[0]}]"
    return peer[:200]


@dataclass
class _Client:
    logged_at: float
    suppressed: int = 0


@dataclass
class RefusalLog:
    """Counts every refused call; logs a refusal only where the client has had no line for `interval_s`, saying
    how many of its refusals went unlogged since its last line."""

    interval_s: float = REFUSAL_LOG_INTERVAL_S
    max_lines: int = REFUSAL_LOG_LINES
    max_clients: int = REFUSAL_LOG_CLIENTS
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(transport, status code, reason) -> refused calls: what the metrics report."""
    _clients: OrderedDict[str, _Client] = field(default_factory=OrderedDict)
    _window: tuple[float, int, int] = (float("-inf"), 0, 0)
    """(start, lines logged) of the current interval, and the refusals not logged because of `max_lines` since
    the last line (reported in the next one as `suppressed_by_cap`)."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    """`counts` is read by the metrics' scrape thread."""

    def snapshot(self, transport: str = GRPC) -> dict[tuple[str, str], int]:
        """(status code, reason) -> refusals of one transport (`grpc` or `web`)."""
        with self._lock:
            return {(code, reason): n for (on, code, reason), n in self.counts.items() if on == transport}

    def web_snapshot(self) -> dict[tuple[str, str], int]:
        return self.snapshot(WEB)

    def refused(self, refusal: Refusal, method: str, peer: str, now: float, transport: str = GRPC) -> None:
        """Counts the refusal; logs it (`rpc_refused`, or `web_refused` with the path for the web view) unless
        its client had a line of either within the interval. `peer` as gRPC gives it (`ipv4:ADDRESS:PORT`), or for
        the web view the address from `web_client_address`."""
        with self._lock:
            self.counts[(transport, refusal.code.name, refusal.reason)] += 1
        address = client_address(peer) if transport == GRPC else peer
        client = self._clients.get(address)
        if client is not None and now - client.logged_at < self.interval_s:
            client.suppressed += 1
            return
        start, lines, capped = self._window
        if now - start >= self.interval_s:
            start, lines = now, 0
        if lines >= self.max_lines:
            self._window = (start, lines, capped + 1)
            return
        self._window = (start, lines + 1, 0)
        suppressed = client.suppressed if client is not None else 0
        self._clients[address] = _Client(now)
        self._clients.move_to_end(address)
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        log.warning(
            "rpc_refused" if transport == GRPC else f"{transport}_refused",
            **{"method" if transport == GRPC else "path": method[:200]},
            code=refusal.code.name,
            reason=refusal.reason,
            client=address,
            suppressed=suppressed,
            suppressed_by_cap=capped,
            next_line_after_s=self.interval_s,
        )


class TokenAuthInterceptor(_Interceptor):
    """Refuses calls without a valid token of the scope their RPC needs, before the handler runs."""

    def __init__(
        self,
        tokens: TokenFile,
        clock: Clock,
        *,
        protect_reflection: bool = False,
        refusals: RefusalLog | None = None,
    ) -> None:
        self.tokens = tokens
        self.clock = clock
        self.protect_reflection = protect_reflection
        self.refusals = refusals if refusals is not None else RefusalLog()

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
        return self._refusing(handler, refusal, method)

    def _refusing(
        self, handler: grpc.RpcMethodHandler[Any, Any] | None, refusal: Refusal, method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """A handler of the same shape as the refused one (unary or streaming, either way) that only aborts,
        after counting the refusal under the client's address (known only here, from the call's context)."""

        async def abort(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            self.refusals.refused(refusal, method, context.peer() or "unknown", self.clock())
            await context.abort(refusal.code, refusal.details)

        return _same_shape(handler, abort)


def _same_shape(
    handler: grpc.RpcMethodHandler[Any, Any] | None, abort: Callable[..., Awaitable[Any]]
) -> grpc.RpcMethodHandler[Any, Any]:
    """`abort` as a handler of the refused one's shape (unary or streaming, either way)."""
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
