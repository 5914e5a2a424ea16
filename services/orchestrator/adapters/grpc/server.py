"""The grpc.aio server: the orchestrator service, grpc.health.v1 and reflection, bound by create_server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.adapters.grpc.auth import RefusalLog, TokenAuthInterceptor, TokenFile
from orchestrator.adapters.grpc.health import Health
from orchestrator.adapters.grpc.servicer import OrchestratorServicer
from orchestrator.adapters.grpc.tls import CertificateFiles, TlsConfig, server_credentials
from orchestrator.adapters.tracing.setup import TracingRuntime
from orchestrator.application.service import Orchestrator
from orchestrator.domain.errors import ConfigError, DependencyUnavailableError

if TYPE_CHECKING:
    from orchestrator.config import Settings

SERVICE = pb.DESCRIPTOR.services_by_name["OrchestratorService"]
SERVICE_NAME = SERVICE.full_name
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

log = structlog.get_logger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class ConnectionLimits:
    """When the server lets go of a connection a client left behind. Without these, a TCP connection that never
    speaks HTTP/2 is held for gRPC's 120 s handshake timeout, and one whose peer vanished (half-open) for as
    long as the kernel keeps it."""

    handshake_timeout_s: float = 10.0
    """A connection that has not finished the HTTP/2 handshake by then is closed."""
    keepalive_time_s: float = 60.0
    """The server pings a connection silent for this long, with or without calls on it..."""
    keepalive_timeout_s: float = 20.0
    """...and closes it when the ping is not answered within this: how half-open connections end."""
    max_idle_s: float = 300.0
    """A connection with no call for this long gets a GOAWAY; clients reconnect transparently."""
    max_age_s: float = 3_600.0
    """Connections are recycled after this (GOAWAY), so clients spread again over replicas..."""
    max_age_grace_s: float = 3_660.0
    """...while the calls already on them may run this much longer: more than the longest deliberation
    (DELIBERATION_TIMEOUT <= 3600 s), so no Deliberate, StreamDeliberation or WatchDeliberation is cut."""
    min_client_ping_interval_s: float = 10.0
    """Clients may ping an idle connection this often; a client pinging faster is sent GOAWAY after
    `max_ping_strikes` offences (gRPC's ENHANCE_YOUR_CALM)."""
    max_ping_strikes: int = 2

    def options(self) -> list[tuple[str, int]]:
        def ms(seconds: float) -> int:
            return int(seconds * 1000)

        return [
            ("grpc.server_handshake_timeout_ms", ms(self.handshake_timeout_s)),
            ("grpc.keepalive_time_ms", ms(self.keepalive_time_s)),
            ("grpc.keepalive_timeout_ms", ms(self.keepalive_timeout_s)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.max_connection_idle_ms", ms(self.max_idle_s)),
            ("grpc.max_connection_age_ms", ms(self.max_age_s)),
            ("grpc.max_connection_age_grace_ms", ms(self.max_age_grace_s)),
            ("grpc.http2.min_ping_interval_without_data_ms", ms(self.min_client_ping_interval_s)),
            ("grpc.http2.max_ping_strikes", self.max_ping_strikes),
        ]


@dataclass(frozen=True)
class ServerSecurity:
    """Who may connect and call: TLS (or mTLS) on the port, bearer tokens on the calls. Plaintext and open when
    both are unset (local use)."""

    tls: TlsConfig | None = None
    tokens_file: Path | None = None
    protect_reflection: bool = False
    health_port: int | None = None
    """A second, plaintext port serving only grpc.health.v1 (kubelet's gRPC probes do not speak TLS)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerSecurity:
        cert, key, ca = settings.grpc_tls_cert, settings.grpc_tls_key, settings.grpc_tls_client_ca
        return cls(
            tls=TlsConfig(Path(cert), Path(key), Path(ca) if ca else None) if cert else None,
            tokens_file=Path(settings.auth_tokens_file) if settings.auth_tokens_file else None,
            protect_reflection=settings.auth_protect_reflection,
            health_port=settings.grpc_health_port or None,
        )


@dataclass(frozen=True)
class GrpcServer:
    """A bound server. The orchestrator service is registered with the application that answers it
    (`register`), before `start`: `create_server` does both at once, the runner binds first and registers once
    the application is built."""

    server: grpc.aio.Server
    port: int
    health: Health
    warnings: Callable[[], list[str]] = list
    """The server's own problems for GetStatus (the tokens file's, the certificate's)."""
    probe_server: grpc.aio.Server | None = None
    probe_port: int | None = None
    refusals: RefusalLog | None = None
    """Calls the tokens refused, by code and reason (None without AUTH_TOKENS_FILE): the metrics read them."""
    tokens: TokenFile | None = None
    """The tokens of AUTH_TOKENS_FILE (None without it): the web view checks the same ones."""

    def register(self, app: Orchestrator | None) -> None:
        """Adds the orchestrator service, answered by `app` (None: every call is UNAVAILABLE, "still starting
        up"). Once, before `start`."""
        add_service(OrchestratorServicer(app, self.health, self.warnings), self.server)

    async def start(self) -> None:
        await self.server.start()
        if self.probe_server is not None:
            await self.probe_server.start()

    async def stop(self, grace: float | None) -> None:
        await self.server.stop(grace)
        if self.probe_server is not None:
            await self.probe_server.stop(grace)


@dataclass(frozen=True)
class Undecodable:
    """Stands in for a request whose bytes are not a valid message (invalid UTF-8 in a string, a truncated
    field), so that its handler answers INVALID_ARGUMENT: grpc.aio turns a deserializer's exception into UNKNOWN."""

    message_type: str
    error: str = field(repr=False)


def _lenient(parse: Callable[[bytes], object], message_type: str) -> Callable[[bytes], object]:
    def deserialize(raw: bytes) -> object:
        try:
            return parse(raw)
        except Exception as exc:  # DecodeError, or whatever else a malformed buffer makes the parser raise
            return Undecodable(message_type, f"{type(exc).__name__}: {exc}")

    return deserialize


async def _reject(request: Undecodable, method: str, context: Context) -> None:
    log.info("rpc_rejected", method=method, code="INVALID_ARGUMENT", reason=request.error)
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {request.message_type}")


def _unary(method: str, behavior: Callable[[Any, Context], Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def handle(request: Any, context: Context) -> Any:
        if isinstance(request, Undecodable):
            await _reject(request, method, context)
        return await behavior(request, context)

    return handle


def _stream(method: str, behavior: Callable[[Any, Context], AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
        if isinstance(request, Undecodable):
            await _reject(request, method, context)
        async for item in behavior(request, context):
            yield item

    return handle


def add_service(servicer: OrchestratorServicer, server: grpc.aio.Server) -> None:
    """Registers every RPC of the service descriptor, as the generated `add_..._to_server` does, but with
    requests that fail to parse answered as INVALID_ARGUMENT."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in SERVICE.methods:
        request_type, response_type = getattr(pb, method.input_type.name), getattr(pb, method.output_type.name)
        deserialize = _lenient(request_type.FromString, method.input_type.full_name)
        behavior = getattr(servicer, method.name)
        if method.client_streaming:
            raise NotImplementedError(f"{method.name}: client streaming is not wrapped")
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _stream(method.name, behavior),
                request_deserializer=deserialize,
                response_serializer=response_type.SerializeToString,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(method.name, behavior),
                request_deserializer=deserialize,
                response_serializer=response_type.SerializeToString,
            )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]


def _options(connections: ConnectionLimits) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
        *connections.options(),
    ]


def _bind(server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
    try:
        if credentials is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise DependencyUnavailableError("grpc", f"cannot bind {address}: is the port in use?") from exc


def _token_auth(security: ServerSecurity) -> TokenAuthInterceptor | None:
    if security.tokens_file is None:
        if security.protect_reflection:
            raise ConfigError("AUTH_PROTECT_REFLECTION is set but AUTH_TOKENS_FILE is not")
        return None
    tokens = TokenFile(security.tokens_file)
    return TokenAuthInterceptor(tokens, time.monotonic, protect_reflection=security.protect_reflection)


def _interceptors(
    auth: TokenAuthInterceptor | None, tracing: TracingRuntime | None
) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    # Tracing first (outermost): a call the tokens refuse still gets its span, with its status code.
    traced: list[grpc.aio.ServerInterceptor[Any, Any]] = (
        [tracing.server_interceptor()] if tracing is not None and tracing.enabled else []
    )
    return [*traced, auth] if auth is not None else traced


def _warnings(auth: TokenAuthInterceptor | None, certificates: CertificateFiles | None) -> Callable[[], list[str]]:
    """What GetStatus lists in `warnings` from the server's own files: the tokens file's problem, and a
    certificate that expires soon."""

    def warnings() -> list[str]:
        found = auth.tokens.problems(time.monotonic()) if auth is not None else []
        return found + (certificates.problems() if certificates is not None else [])

    return warnings


def _probe_server(health_state: Health, host: str, port: int, connections: ConnectionLimits) -> tuple[Any, int]:
    server = grpc.aio.server(options=_options(connections))
    health_pb2_grpc.add_HealthServicer_to_server(health_state.servicer, server)
    return server, _bind(server, f"{host}:{port}", None)


def bind_server(
    host: str = "127.0.0.1",
    port: int = 0,
    connections: ConnectionLimits = ConnectionLimits(),
    security: ServerSecurity = ServerSecurity(),
    tracing: TracingRuntime | None = None,
) -> GrpcServer:
    """Builds the server with health and reflection and binds its port (0 = any free port) at once; the
    orchestrator service comes with `register(app)`, before `start()`. Unusable TLS or token files raise
    ConfigError here, at start-up. With `tracing` on, every RPC is a server span, child of the caller's
    `traceparent` metadata."""
    certificates = CertificateFiles(security.tls) if security.tls is not None else None
    credentials = server_credentials(certificates) if certificates is not None else None
    auth = _token_auth(security)
    server = grpc.aio.server(interceptors=_interceptors(auth, tracing), options=_options(connections))
    health_state = Health(SERVICE_NAME)
    health_pb2_grpc.add_HealthServicer_to_server(health_state.servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    bound = _bind(server, f"{host}:{port}", credentials)
    probe, probe_port = (
        _probe_server(health_state, host, security.health_port, connections)
        if security.health_port is not None
        else (None, None)
    )
    log.info(
        "grpc_security",
        transport=security.tls.mode if security.tls is not None else "plaintext",
        auth="tokens" if security.tokens_file is not None else "off",
        reflection="token" if security.protect_reflection else "open",
        health_port=probe_port,
    )
    warnings = _warnings(auth, certificates)
    return GrpcServer(
        server,
        bound,
        health_state,
        warnings,
        probe,
        probe_port,
        auth.refusals if auth else None,
        auth.tokens if auth else None,
    )


def create_server(
    app: Orchestrator | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    connections: ConnectionLimits = ConnectionLimits(),
    security: ServerSecurity = ServerSecurity(),
    tracing: TracingRuntime | None = None,
) -> GrpcServer:
    """`bind_server` with the orchestrator service answered by `app` (None: UNAVAILABLE, "still starting up")."""
    bound = bind_server(host, port, connections, security, tracing)
    bound.register(app)
    return bound
