"""Who may look: the gRPC adapter's bearer tokens (AUTH_TOKENS_FILE, any valid token reads) and TLS files.

A browser signs in once with a form that puts the token in an HttpOnly, SameSite=Strict cookie; other clients
send `Authorization: Bearer <token>`. Every page and stream is refused with 401 and no data without one; only the
sign-in form and the service's own static assets are open. The token is checked on every request against the
gRPC server's own TokenFile (one token state: a file problem is logged once and shown in GetStatus), so a token
removed from the file stops working for the web view as it does for gRPC. Refused requests (a sign-in with a bad
token included) go to the gRPC server's RefusalLog under the transport `web`: all counted, logged at most once
per client per interval, whichever of the two ports the client tries.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field

import grpc
import structlog
from aiohttp import web

from orchestrator.adapters.grpc.auth import WEB, Refusal, RefusalLog, TokenFile, bearer_token, web_client_address
from orchestrator.adapters.grpc.server import ServerSecurity
from orchestrator.adapters.grpc.tls import CertificateFiles, TlsConfig

log = structlog.get_logger(__name__)

COOKIE = "orchestrator_token"


@dataclass(frozen=True)
class WebSecurity:
    """`tokens`: None = open (no AUTH_TOKENS_FILE). `tls`: None = plain HTTP. `refusals`: where refused
    requests are counted and logged (the gRPC server's, in the service)."""

    tokens: TokenFile | None = None
    tls: ssl.SSLContext | None = None
    refusals: RefusalLog = field(default_factory=RefusalLog)

    @classmethod
    def from_server_security(
        cls, security: ServerSecurity, tokens: TokenFile | None = None, refusals: RefusalLog | None = None
    ) -> WebSecurity:
        """The web view's security from the gRPC settings. `tokens` and `refusals`: the gRPC server's own (the
        service passes them); without them, and with AUTH_TOKENS_FILE set, the web view reads the file itself."""
        if tokens is None and security.tokens_file is not None:
            tokens = TokenFile(security.tokens_file)
        tls = tls_context(security.tls) if security.tls is not None else None
        return cls(tokens, tls, refusals if refusals is not None else RefusalLog())

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def allows(self, token: str | None) -> bool:
        """Any token in the file may read (the web view only reads)."""
        if self.tokens is None:
            return True
        return token is not None and self.tokens.scope_of(token, time.monotonic()) is not None

    def refused(self, token: str | None, path: str, remote: str | None) -> None:
        """Counts a refused request (and logs it, rate-limited per client) in the shared refusal log."""
        reason, details = ("invalid_token", "invalid token") if token else ("missing_token", "no token")
        refusal = Refusal(grpc.StatusCode.UNAUTHENTICATED, details, reason)
        self.refusals.refused(refusal, path, web_client_address(remote), time.monotonic(), transport=WEB)


def request_token(authorization: str | None, cookie: str | None) -> str | None:
    """The bearer token of the Authorization header, else the sign-in cookie's."""
    from_header = bearer_token((("authorization", authorization),)) if authorization else None
    return from_header or (cookie.strip() if cookie and cookie.strip() else None)


def is_open(path: str) -> bool:
    return path == "/login" or path.startswith("/static/")


def safe_next(target: str) -> str:
    """Where to go after signing in: a path of this site only (no scheme, no host, no `//`)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or any(c < " " for c in target):
        return "/"
    return target


class FollowedCertificates:
    """A server SSLContext from the GRPC_TLS_* files (checked as the gRPC server checks them) that follows a
    rotation of the files: each handshake looks at them (three stats, `CertificateFiles.fetch`) and moves to a
    context with the new pair once the pair is complete and valid."""

    def __init__(self, config: TlsConfig) -> None:
        self.config = config
        self.files = CertificateFiles(config)  # validates the pair now: a bad pair stops start-up
        self.context = self._build()

    def _build(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.config.cert, self.config.key)
        if self.config.client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=self.config.client_ca)
        context.sni_callback = self._on_hello
        return context

    def _on_hello(self, sock: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        if self.files.fetch() is not None:  # the files changed and hold a valid pair
            try:
                self.context = self._build()
            except (ssl.SSLError, OSError) as exc:
                log.warning("web_tls_reload_failed", error=type(exc).__name__, keeping="previous certificate")
        if sock.context is not self.context:
            sock.context = self.context


def tls_context(config: TlsConfig) -> ssl.SSLContext:
    return FollowedCertificates(config).context


SECURITY = web.AppKey("security", WebSecurity)
