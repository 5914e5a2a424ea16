"""The web view over real HTTP on loopback, reading an application composed with in-memory fakes: pages, escaping
of hostile text, the security headers, tokens and the sign-in cookie, TLS from the gRPC files, live streams."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from cryptography import x509
from multidict import CIMultiDictProxy
from structlog.testing import capture_logs

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.grpc.server import ServerSecurity, bind_server
from orchestrator.adapters.grpc.tls import TlsConfig
from orchestrator.adapters.metrics.prometheus import DeliberationMetrics, RefusedCallsCollector
from orchestrator.adapters.web.security import COOKIE, WebSecurity
from orchestrator.adapters.web.server import WebServer, create_web_server, open_web_view
from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.application.service import Orchestrator
from orchestrator.compose import Options, compose
from orchestrator.config import load_settings
from orchestrator.domain.cross_checks import CheckKind, CheckStatus, CrossCheck, FollowUp, PlanOutcome
from orchestrator.domain.model import Role
from orchestrator.domain.plans import ApprovedPlan, PlanDispatch, PlanSubtask, SubtaskRecord, SubtaskState
from orchestrator.testing.fakes import FakeGateway, InMemoryDeliberationStore, fake_ports
from orchestrator.testing.web_records import ranked_deliberation
from tests.certs import Authority

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HOSTILE = (
    '<script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2"> '
    '<a href="javascript:window.__pwned=3">click</a> [md](javascript:alert(1))'
)


async def make_app(gateway: FakeGateway | None = None) -> tuple[Orchestrator, InMemoryDeliberationStore]:
    records = InMemoryDeliberationStore()
    ports = fake_ports(gateway or FakeGateway(), records=records)
    app = compose(ports, Options(CouncilDefaults("fake-llm", 0.7, 256), plans=True)).orchestrator
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    return app, records


async def serving(app: Orchestrator, security: WebSecurity | None = None) -> WebServer:
    server = create_web_server("127.0.0.1", 0, security or WebSecurity())
    await server.start(app)
    return server


@pytest.fixture
async def finished() -> AsyncIterator[tuple[WebServer, str]]:
    app, records = await make_app()
    record = ranked_deliberation("web-finished-1", agents=3, tests=12, hostile=HOSTILE)
    await records.create(record)
    server = await serving(app)
    yield server, server.url().rstrip("/")
    await server.stop()


async def get(url: str, **kwargs: Any) -> tuple[int, str, CIMultiDictProxy[str]]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as response:
        return response.status, await response.text(), response.headers


async def test_the_list_shows_a_finished_deliberation_with_its_winner(finished: tuple[WebServer, str]) -> None:
    _, base = finished
    status, body, headers = await get(f"{base}/")
    assert status == 200
    assert 'href="/deliberations/web-finished-1"' in body
    assert "COMPLETED" in body and "agent-dev-001" in body
    assert headers["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self'")
    status, body, _ = await get(f"{base}/?status=FAILED")
    assert status == 200 and "web-finished-1" not in body
    status, _, _ = await get(f"{base}/?status=NOPE")
    assert status == 400


async def test_a_deliberation_page_shows_authors_every_test_the_winner_and_rank_reasons(
    finished: tuple[WebServer, str],
) -> None:
    _, base = finished
    status, body, _ = await get(f"{base}/deliberations/web-finished-1")
    assert status == 200
    record = ranked_deliberation("web-finished-1", agents=3, tests=12, hostile=HOSTILE)
    for r in record.results:
        assert f'data-author="{r.proposal.author_id}"' in body
        assert r.rank_reason.split(" <", 1)[0] in body  # the reason, up to the hostile text (escaped below)
        assert r.evidence is not None
        for outcome in r.evidence.outcomes:
            assert f'title="{outcome.test_id}"' in body
    cells = body.count('<td class="cell pass"') + body.count('<td class="cell fail"')
    assert cells == 3 * 12
    assert body.count('<td class="cell fail"') == sum(
        not o.passed for r in record.results if r.evidence for o in r.evidence.outcomes
    )
    assert '<dd id="winner">agent-dev-001</dd>' in body
    assert "Why <strong>agent-dev-001</strong> won" in body
    assert "tests by agent-dev-002" in body and "task examples" in body and "acceptance tests" in body


async def test_hostile_text_in_proposals_is_escaped_everywhere(finished: tuple[WebServer, str]) -> None:
    _, base = finished
    _, body, _ = await get(f"{base}/deliberations/web-finished-1")
    assert "<script>window.__pwned" not in body
    assert "<img src=x" not in body
    assert 'href="javascript:' not in body
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in body
    assert body.count("<script") == 1  # the page's own script, from /static


async def test_unknown_pages_answer_404_with_the_security_headers(finished: tuple[WebServer, str]) -> None:
    _, base = finished
    for path in ("/deliberations/missing", "/plans/missing", "/no-such-page"):
        status, _, headers = await get(f"{base}{path}")
        assert status == 404, path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


async def test_a_plan_page_draws_its_subtasks_and_links_each_to_its_deliberation() -> None:
    app, records = await make_app()
    await records.create(ranked_deliberation("d-design"))
    plan = ApprovedPlan("plan-web-1", "story-1", "ann", (Role.DEV,), "now", title="<b>bold</b> plan")
    subtasks = (
        SubtaskRecord(
            PlanSubtask("design", Role.DEV, "Design", "d"), "d-design", SubtaskState.COMPLETED, "agent-dev-001"
        ),
        SubtaskRecord(PlanSubtask("build", Role.DEV, "Build", "b", depends_on=("design",)), "d-build"),
    )
    await records.create_dispatch(PlanDispatch(plan, subtasks, 0))
    server = await serving(app)
    try:
        status, body, _ = await get(f"{server.url()}plans/plan-web-1")
    finally:
        await server.stop()
    assert status == 200
    assert 'href="/deliberations/d-design"' in body and 'href="/deliberations/d-build"' not in body  # not started
    assert body.count('class="edge"') == 1 and 'data-subtask="build"' in body
    assert "&lt;b&gt;bold&lt;/b&gt; plan" in body and "winner agent-dev-001" in body


async def test_a_plan_page_shows_its_outcome_each_cross_check_and_the_follow_up_escaped() -> None:
    app, records = await make_app()
    await records.create(ranked_deliberation("d-follow"))
    plan = ApprovedPlan("plan-web-2", "story-1", "ann", (Role.DEV,), "now")
    subtasks = (
        SubtaskRecord(PlanSubtask("dev", Role.DEV, "Dev", "d"), "d-dev", SubtaskState.COMPLETED, "agent-dev-001"),
        SubtaskRecord(
            PlanSubtask("qa", Role.QA, "QA", "q", depends_on=("dev",)), "d-qa", SubtaskState.COMPLETED, "agent-qa-001"
        ),
    )
    checks = (
        CrossCheck(
            CheckKind.QA_ON_DEV,
            "qa",
            "dev",
            CheckStatus.FAILED,
            7,
            8,
            "QA tests on the DEV winner: 7/8 passed",
            (f"fails agent-qa-001:test-3: {HOSTILE}",),
        ),
        CrossCheck(CheckKind.DEV_FOLLOW_UP, "dev", "qa", CheckStatus.PASSED, summary="DEV follow-up: new winner"),
        CrossCheck(
            CheckKind.QA_ON_DEV,
            "qa",
            "dev",
            CheckStatus.PASSED,
            8,
            8,
            "QA tests on the DEV winner: 8/8 passed",
            attempt=2,
        ),
    )
    follow = FollowUp("dev", "d-follow", "assert True", "COMPLETED", "agent-dev-002")
    await records.create_dispatch(PlanDispatch(plan, subtasks, 0, checks, follow, PlanOutcome.CHECKED))
    server = await serving(app)
    try:
        status, body, _ = await get(f"{server.url()}plans/plan-web-2")
    finally:
        await server.stop()
    assert status == 200
    assert 'id="plan-outcome">checked<' in body and body.count("QA tests on the DEV winner") == 2
    assert "7/8" in body and "8/8" in body and "(attempt 2)" in body
    assert 'href="/deliberations/d-follow"' in body and "winner agent-dev-002" in body
    assert "<script>window.__pwned" not in body and "&lt;script&gt;window.__pwned" in body


async def test_councils_page_lists_agents_and_models(finished: tuple[WebServer, str]) -> None:
    _, base = finished
    status, body, _ = await get(f"{base}/councils")
    assert status == 200
    assert 'data-role="DEV"' in body and "agent-dev-003" in body and "fake-llm" in body


async def test_with_tokens_every_page_and_stream_needs_one(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("reader-token read\nwriter-token write\n")
    app, records = await make_app()
    await records.create(ranked_deliberation("web-secret-1"))
    security = WebSecurity.from_server_security(ServerSecurity(tokens_file=tokens))
    server = await serving(app, security)
    base = server.url().rstrip("/")
    try:
        for path in ("/", "/deliberations/web-secret-1", "/councils", "/events", "/deliberations/web-secret-1/events"):
            status, body, headers = await get(f"{base}{path}")
            assert status == 401, path
            assert "web-secret-1" not in body and "agent-dev" not in body
            assert headers["WWW-Authenticate"].startswith("Bearer")
            status, _, _ = await get(f"{base}{path}", headers={"Authorization": "Bearer wrong"})
            assert status == 401
        for token in ("reader-token", "writer-token"):
            status, body, _ = await get(
                f"{base}/deliberations/web-secret-1", headers={"Authorization": f"Bearer {token}"}
            )
            assert status == 200 and "agent-dev-001" in body
        status, body, _ = await get(f"{base}/", headers={"Accept": "text/html"})
        assert status == 401 and 'action="/login"' in body and "web-secret-1" not in body
        status, _, _ = await get(f"{base}/static/web.js")
        assert status == 200  # the service's own assets are open: no data in them
    finally:
        await server.stop()


async def test_signing_in_sets_an_httponly_strict_cookie_that_opens_the_pages(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("reader-token read\n")
    app, records = await make_app()
    await records.create(ranked_deliberation("web-cookie-1"))
    server = await serving(app, WebSecurity.from_server_security(ServerSecurity(tokens_file=tokens)))
    base = server.url().rstrip("/")
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:  # 127.0.0.1
            form = {"token": "nope", "next": "/deliberations/web-cookie-1"}
            async with session.post(f"{base}/login", data=form, allow_redirects=False) as r:
                assert r.status == 401 and COOKIE not in r.cookies
            form = {"token": "reader-token", "next": "https://elsewhere.example/"}
            async with session.post(f"{base}/login", data=form, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/"  # never off the site
                cookie = r.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
            async with session.get(f"{base}/deliberations/web-cookie-1") as r:
                assert r.status == 200 and "agent-dev-001" in await r.text()
            tokens.write_text("other-token read\n")  # the token leaves the file: the cookie stops working
            await asyncio.sleep(1.1)
            async with session.get(f"{base}/deliberations/web-cookie-1") as r:
                assert r.status == 401
    finally:
        await server.stop()


async def test_tls_from_the_grpc_files_serves_https(tmp_path: Path) -> None:
    ca = Authority("web-test-ca")
    ca.issue("localhost", server=True).write(tmp_path / "cert.pem", tmp_path / "key.pem")
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    app, records = await make_app()
    await records.create(ranked_deliberation("web-tls-1"))
    tls = TlsConfig(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = await serving(app, WebSecurity.from_server_security(ServerSecurity(tls=tls)))
    try:
        assert server.url().startswith("https://")
        client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        status, body, _ = await get(f"https://localhost:{server.port}/deliberations/web-tls-1", ssl=client)
        assert status == 200 and "agent-dev-001" in body
        with pytest.raises(aiohttp.ClientError):
            await get(f"http://127.0.0.1:{server.port}/")
    finally:
        await server.stop()


async def read_events(response: aiohttp.ClientResponse, until: str, limit_s: float = 20.0) -> list[str]:
    names = []
    async with asyncio.timeout(limit_s):
        async for raw in response.content:
            line = raw.decode().strip()
            if line.startswith("event: "):
                names.append(line.removeprefix("event: "))
                if names[-1] == until:
                    return names
    return names


async def test_a_running_deliberation_streams_updates_then_done() -> None:
    app, _ = await make_app(FakeGateway(latency_s=0.3))
    server = await serving(app)
    base = server.url().rstrip("/")
    try:
        await app.submit(Deliberate("Write a Python function that adds two numbers", "DEV", task_id="web-live-1"))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/deliberations/web-live-1/events") as response:
                assert response.headers["Content-Type"].startswith("text/event-stream")
                names = await read_events(response, "done")
            assert names[0] == "update" and names[-1] == "done"
            async with session.get(f"{base}/deliberations/web-live-1?partial=1") as r:
                body = await r.text()
        assert 'data-status="COMPLETED"' in body and "<html" not in body
        # Each revision is diffed against the proposal before it (the first proposal is in the run's checkpoints).
        assert body.count("against the proposal") == 3 and 'class="add"' in body
    finally:
        await server.stop()


async def test_the_list_stream_says_when_a_deliberation_starts_and_ends() -> None:
    app, _ = await make_app(FakeGateway(latency_s=0.6))  # a run of ~2.5 s: longer than a look of the feed
    server = await serving(app)
    base = server.url().rstrip("/")
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{base}/events") as response:
            await app.submit(Deliberate("Write a Python function that adds two numbers", "DEV", task_id="web-live-2"))
            said: list[str] = []
            async with asyncio.timeout(20):
                async for raw in response.content:
                    line = raw.decode().strip()
                    if line.startswith("data: "):
                        said.append(json.loads(line.removeprefix("data: "))["status"])
                        if said[-1] == "finished":
                            break
        assert "IN_PROGRESS" in said and said[-1] == "finished"  # coalesced: the newest state of each moment
    finally:
        await server.stop()


async def test_stopping_the_server_ends_open_streams() -> None:
    app, _ = await make_app(FakeGateway(latency_s=5))
    server = await serving(app)
    await app.submit(Deliberate("Write a Python function that adds two numbers", "DEV", task_id="web-live-3"))
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"{server.url()}deliberations/web-live-3/events")
        async with asyncio.timeout(15):
            await server.stop()
        response.close()
    await app.cancel("web-live-3")


def _served_serial(port: int, ca: Path, client: tuple[Path, Path] | None = None) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(*client)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        if client is not None:  # mTLS: the server checks the certificate after the handshake on TLS 1.3
            tls.sendall(b"GET /static/web.js HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert tls.recv(12).startswith(b"HTTP/1.1 200")
    return x509.load_der_x509_certificate(der).serial_number


async def test_the_certificate_files_are_followed_when_they_rotate(tmp_path: Path) -> None:
    ca = Authority("web-rotation-ca")
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    first = ca.issue("localhost", server=True)
    first.write(tmp_path / "cert.pem", tmp_path / "key.pem")
    app, _ = await make_app()
    tls = TlsConfig(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = await serving(app, WebSecurity.from_server_security(ServerSecurity(tls=tls)))
    try:
        assert await asyncio.to_thread(_served_serial, server.port, tmp_path / "ca.pem") == first.serial
        second = ca.issue("localhost", server=True)
        second.write(tmp_path / "cert.pem", tmp_path / "key.pem")
        assert await asyncio.to_thread(_served_serial, server.port, tmp_path / "ca.pem") == second.serial
    finally:
        await server.stop()


async def test_with_a_client_ca_the_view_asks_for_a_client_certificate(tmp_path: Path) -> None:
    ca = Authority("web-mtls-ca")
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    ca.issue("localhost", server=True).write(tmp_path / "cert.pem", tmp_path / "key.pem")
    ca.issue("browser", server=False).write(tmp_path / "client.pem", tmp_path / "client.key")
    app, _ = await make_app()
    tls = TlsConfig(tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem")
    server = await serving(app, WebSecurity.from_server_security(ServerSecurity(tls=tls)))
    try:
        client = (tmp_path / "client.pem", tmp_path / "client.key")
        assert await asyncio.to_thread(_served_serial, server.port, tmp_path / "ca.pem", client)
        try:
            answer = await asyncio.to_thread(_request_without_client_cert, server.port, tmp_path / "ca.pem")
        except (ssl.SSLError, ConnectionError):
            answer = b""
        assert answer == b"", "a client without a certificate got an answer"
    finally:
        await server.stop()


def _request_without_client_cert(port: int, ca: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET /static/web.js HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return tls.recv(12)


async def test_a_flood_of_refused_requests_is_counted_in_full_and_logged_once_per_client(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("reader-token read\n")
    app, _ = await make_app()
    security = WebSecurity.from_server_security(ServerSecurity(tokens_file=tokens))
    metrics = DeliberationMetrics()
    RefusedCallsCollector(
        security.refusals.snapshot, registry=metrics.registry, web_counts=security.refusals.web_snapshot
    )
    server = await serving(app, security)
    base = server.url().rstrip("/")
    try:
        with capture_logs() as logs:
            async with aiohttp.ClientSession() as session:
                for batch in range(5):  # 500 requests, 100 at a time, without a token or with a wrong one
                    headers = {"Authorization": "Bearer wrong"} if batch % 2 else {}
                    statuses = await asyncio.gather(*(_status(session, f"{base}/", headers) for _ in range(100)))
                    assert statuses == [401] * 100
                async with session.post(f"{base}/login", data={"token": "guess", "next": "/"}) as r:
                    assert r.status == 401
    finally:
        await server.stop()
    lines = [entry for entry in logs if entry["event"] == "web_refused"]
    assert len(lines) == 1 and lines[0]["client"] == "ipv4:127.0.0.1" and lines[0]["path"] == "/"
    assert [entry for entry in logs if entry["event"] == "rpc_refused"] == []
    for reason, count in (("missing_token", 300), ("invalid_token", 201)):
        sample = metrics.registry.get_sample_value("orchestrator_web_refused_requests_total", {"reason": reason})
        assert sample == count, reason
    assert security.refusals.snapshot() == {}  # the gRPC metric counts gRPC calls only


async def _status(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    async with session.get(url, headers=headers) as response:
        return response.status


async def test_the_service_gives_the_web_view_the_grpc_servers_tokens_and_refusal_log(tmp_path: Path) -> None:
    """One token state: a tokens-file problem is logged once, and a client refused on the gRPC port gets no
    second line for the web port within the interval."""
    tokens = tmp_path / "tokens"
    tokens.write_text("reader-token read\n")
    security = ServerSecurity(tokens_file=tokens)
    grpc_server = bind_server("127.0.0.1", 0, security=security)
    web_server = open_web_view(load_settings(web_port=free_port()), security, grpc_server.tokens, grpc_server.refusals)
    assert web_server is not None and grpc_server.tokens is not None and grpc_server.refusals is not None
    assert web_server.security.tokens is grpc_server.tokens and web_server.security.refusals is grpc_server.refusals
    app, _ = await make_app()
    grpc_server.register(app)
    await grpc_server.start()
    await web_server.start(app)
    base = web_server.url().rstrip("/")
    try:
        with capture_logs() as logs:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
                with pytest.raises(grpc.aio.AioRpcError):
                    stub = pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]
                    await stub.GetStatus(pb.GetStatusRequest())
            assert (await get(f"{base}/"))[0] == 401
            tokens.unlink()
            await asyncio.sleep(1.1)  # the file is looked at once a second
            assert (await get(f"{base}/", headers={"Authorization": "Bearer reader-token"}))[0] == 200
            assert grpc_server.warnings()[0].startswith(f"AUTH_TOKENS_FILE {tokens}: the file is gone")
    finally:
        await web_server.stop()
        await grpc_server.stop(0)
    assert [e["event"] for e in logs if e["event"].endswith("_refused")] == ["rpc_refused"]
    assert [e["event"] for e in logs if e["event"] == "auth_tokens_file_problem"] == ["auth_tokens_file_problem"]
    assert grpc_server.refusals.web_snapshot() == {("UNAUTHENTICATED", "missing_token"): 1}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
