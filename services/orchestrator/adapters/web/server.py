"""The web view's HTTP server (aiohttp) on the service's own event loop: bound early, started once the application
is built, stopped with the service. Read-only: every route is a GET but signing in and out."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import structlog
from aiohttp import web

from orchestrator.adapters.grpc.auth import RefusalLog, TokenFile
from orchestrator.adapters.grpc.server import ServerSecurity
from orchestrator.adapters.web import live, pages
from orchestrator.adapters.web.rendering import environment, pygments_css, render
from orchestrator.adapters.web.security import COOKIE, SECURITY, WebSecurity, is_open, request_token, safe_next
from orchestrator.application.service import Orchestrator
from orchestrator.config import Settings
from orchestrator.domain.errors import (
    ConfigError,
    DependencyUnavailableError,
    InvalidArgumentError,
    NotFoundError,
    OrchestratorError,
)

log = structlog.get_logger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _static_dir() -> Path:
    return Path(str(resources.files("orchestrator.adapters.web").joinpath("static")))


def _refusal(request: web.Request, message: str) -> web.Response:
    """401 with nothing of the service's data: a sign-in form for browsers, one line for other clients."""
    headers = {"WWW-Authenticate": 'Bearer realm="orchestrator"'}
    if "text/html" in request.headers.get("Accept", "") and request.method == "GET":
        body = render(pages.holder(request).env, "login.html", message=message, next=safe_next(request.path_qs))
        return web.Response(text=body, status=401, content_type="text/html", headers=headers)
    return web.Response(text=f"401: {message}\n", status=401, headers=headers)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    security = request.app[SECURITY]
    if not is_open(request.path):
        token = request_token(request.headers.get("Authorization"), request.cookies.get(COOKIE))
        if not security.allows(token):
            security.refused(token, request.path, request.remote)
            response: web.StreamResponse = _refusal(
                request, "a valid token is required" if token else "sign in with a token"
            )
            response.headers.update(HEADERS)
            return response
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # aiohttp's own answers (no such route, method not allowed)
        exc.headers.update(HEADERS)
        raise
    except NotFoundError as exc:
        response = _error(request, 404, str(exc))
    except InvalidArgumentError as exc:
        response = _error(request, 400, str(exc))
    except DependencyUnavailableError as exc:
        response = _error(request, 503, str(exc))
    except OrchestratorError as exc:
        response = _error(request, 500, type(exc).__name__)
    if not response.prepared:
        response.headers.update(HEADERS)
    return response


def _error(request: web.Request, status: int, message: str) -> web.Response:
    body = render(pages.holder(request).env, "error.html", status=status, message=message)
    return web.Response(text=body, status=status, content_type="text/html")


def _see_other(target: str) -> web.Response:
    return web.Response(status=303, headers={"Location": target})


async def login_form(request: web.Request) -> web.Response:
    body = render(pages.holder(request).env, "login.html", message="", next=safe_next(request.query.get("next", "/")))
    return web.Response(text=body, content_type="text/html")


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token, target = str(form.get("token", "")).strip(), safe_next(str(form.get("next", "/")))
    security = request.app[SECURITY]
    if security.tokens is None:
        return _see_other(target)
    if not token or not security.allows(token):
        security.refused(token or None, request.path, request.remote)
        body = render(pages.holder(request).env, "login.html", message="that token is not valid", next=target)
        return web.Response(text=body, status=401, content_type="text/html")
    response = _see_other(target)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="Strict", secure=security.tls is not None, path="/", max_age=12 * 3600
    )
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    response = _see_other("/login")
    response.del_cookie(COOKIE, path="/")
    return response


async def styles(request: web.Request) -> web.Response:
    return web.Response(text=request.app[PYGMENTS_CSS], content_type="text/css")


PYGMENTS_CSS = web.AppKey("pygments_css", str)


def create_app(security: WebSecurity, orchestrator: Orchestrator, page_cache: int = 128) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app[pages.HOLDER] = pages.Holder(environment(), orchestrator, pages.PageCache(page_cache))
    app[SECURITY] = security
    app[live.STREAMS] = live.Streams()
    app[live.LIST_FEED] = live.ListFeed()
    app[PYGMENTS_CSS] = pygments_css()
    app.on_shutdown.append(live.close_streams)
    app.add_routes(
        [
            web.get("/", pages.index),
            web.get("/events", live.list_events),
            web.get("/deliberations/{task_id}", pages.deliberation),
            web.get("/deliberations/{task_id}/events", live.deliberation_events),
            web.get("/plans/{plan_id}", pages.plan),
            web.get("/councils", pages.councils),
            web.get("/login", login_form),
            web.post("/login", login),
            web.post("/logout", logout),
            web.get("/static/pygments.css", styles),
            web.static("/static", _static_dir(), append_version=False),
        ]
    )
    return app


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, taken before the slow start-up (Ray) so nothing else can take the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


@dataclass
class WebServer:
    """Bound by `create_web_server`; `start(orchestrator)` builds the pages over the application and serves them,
    `stop()` ends the streams and closes."""

    sock: socket.socket
    security: WebSecurity
    page_cache: int = 128
    """Rendered deliberation pages kept (0: none, every request renders)."""
    runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def url(self, host: str = "127.0.0.1") -> str:
        return f"{self.security.scheme}://{host}:{self.port}/"

    async def start(self, orchestrator: Orchestrator) -> None:
        app = create_app(self.security, orchestrator, self.page_cache)
        self.runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock, ssl_context=self.security.tls).start()

    async def stop(self) -> None:
        """Ends the open streams and closes; safe to call again."""
        runner, self.runner = self.runner, None
        if runner is not None:
            await asyncio.wait_for(runner.cleanup(), timeout=10)
        self.sock.close()


def create_web_server(host: str, port: int, security: WebSecurity, page_cache: int = 128) -> WebServer:
    return WebServer(bind(host, port), security, page_cache)


def open_web_view(
    settings: Settings, security: ServerSecurity, tokens: TokenFile | None = None, refusals: RefusalLog | None = None
) -> WebServer | None:
    """The web view's server, bound on GRPC_HOST:WEB_PORT with the gRPC server's TLS files, and its token file and
    refusal log when given (one token state, one rate-limited log); None when WEB_PORT is 0 or unset. A port that
    is taken stops start-up with one line."""
    if not settings.web_port:
        return None
    web_security = WebSecurity.from_server_security(security, tokens, refusals)
    try:
        return create_web_server(settings.grpc_host, settings.web_port, web_security)
    except OSError as exc:
        raise ConfigError(
            f"WEB_PORT {settings.web_port}: cannot listen on it ({exc.strerror or exc}); "
            "set another port, or 0 to turn the web view off"
        ) from None


def local_url(server: WebServer, host: str) -> str:
    """The URL to print: a wildcard listen address is reached on loopback from this machine."""
    return server.url("127.0.0.1" if host in ("", "0.0.0.0", "::") else host)
