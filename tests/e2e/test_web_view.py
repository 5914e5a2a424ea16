"""The web view of `orchestrator serve`, used as a person uses it: over HTTP, and in a headless Chromium (Debian's
`chromium` and `chromium-driver`, driven by Selenium). The fake LLM answers the evidence task (one correct solution,
two subtly wrong ones, each with tests); one of the wrong proposals carries hostile HTML."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.testing import browser
from orchestrator.testing.evidence_task import CORRECT_AUTHOR, PEERS_PREFER_WRONG, SCRIPTED, TASK
from orchestrator.testing.fake_llm import FakeLLMConfig, FakeLLMServer
from tests.e2e.conftest import ServeProcess, free_port, serve_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

HOSTILE = (
    "\n<script>window.__pwned = 'script'; document.title = 'pwned'</script>\n"
    '<img src="x" onerror="window.__pwned = \'img\'">\n'
    '<a id="hostile-link" href="javascript:window.__pwned = \'link\'">open me</a> [md](javascript:alert(1))\n'
)
HOSTILE_AUTHOR = "agent-dev-003"
READ_TOKEN = "web-view-read-token"


def web_port(serve: ServeProcess) -> int:
    for line in serve.log_path.read_text(errors="replace").splitlines():
        if '"web_listening"' in line:
            return int(json.loads(line)["port"])
    raise AssertionError(f"no web_listening line:\n{serve.log_tail()}")


@pytest.fixture(scope="module")
def web_llm() -> Iterator[FakeLLMServer]:
    scripted = {**SCRIPTED, HOSTILE_AUTHOR: SCRIPTED[HOSTILE_AUTHOR] + HOSTILE}
    # Calls take a while, so a browser can watch a deliberation run (about 5 s with 3 agents and one round).
    config = FakeLLMConfig(scripted_proposals=scripted, score_markers=PEERS_PREFER_WRONG, latency_s=0.6)
    with FakeLLMServer(config) as server:
        yield server


def _serve(llm: FakeLLMServer, work: Path, **extra: str) -> ServeProcess:
    # A free port for the web view (WEB_PORT=0 would turn it off); the gRPC port is found from the log.
    env = serve_env(llm, work, EARLY_STOP="false", WEB_PORT=str(free_port()), **extra)
    process = ServeProcess(env, work / "serve.log")
    process.start()
    return process


@pytest.fixture(scope="module")
def open_serve(web_llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    process = _serve(web_llm, tmp_path_factory.mktemp("serve-web"))
    with grpc.insecure_channel(process.address) as channel:
        _stub(channel).CreateCouncil(pb.CreateCouncilRequest(role="DEV", num_agents=3), timeout=120)
    yield process
    process.stop(signal.SIGTERM)


@pytest.fixture(scope="module")
def token_serve(web_llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    work = tmp_path_factory.mktemp("serve-web-tokens")
    (work / "tokens").write_text(f"{READ_TOKEN} read\nweb-view-write-token write\n")
    process = _serve(web_llm, work, AUTH_TOKENS_FILE=str(work / "tokens"))
    yield process
    process.stop(signal.SIGTERM)


def _stub(channel: grpc.Channel) -> pb_grpc.OrchestratorServiceStub:
    return pb_grpc.OrchestratorServiceStub(channel)  # type: ignore[no-untyped-call]


def http(url: str, token: str = "") -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_pages_show_a_finished_deliberation_its_authors_tests_winner_and_reasons(open_serve: ServeProcess) -> None:
    with grpc.insecure_channel(open_serve.address) as channel:
        result = _stub(channel).Deliberate(
            pb.DeliberateRequest(task_id="web-e2e-1", task_description=TASK, role="DEV", rounds=1), timeout=240
        )
    assert result.status == pb.DELIBERATION_STATUS_COMPLETED, result.error_message
    base = f"http://127.0.0.1:{web_port(open_serve)}"
    status, listing = http(f"{base}/")
    assert status == 200 and 'href="/deliberations/web-e2e-1"' in listing
    status, page = http(f"{base}/deliberations/web-e2e-1")
    assert status == 200
    assert f'<dd id="winner">{result.winner_id}</dd>' in page and result.winner_id == CORRECT_AUTHOR
    for r in result.results:
        author = r.proposal.author_id
        assert '<article class="proposal' in page and f'data-author="{author}"' in page
        assert r.rank_reason.split("; ahead")[0] in page  # the reason in words (its first part, unescaped text)
        e = r.evidence
        row = page.split(f'<tr data-author="{author}"', 1)[1].split("</tr>", 1)[0]
        passed, total = e.spec_passed + e.agent_tests_passed, e.spec_total + e.agent_tests_total
        assert f"{passed}/{total}" in row, row
        assert row.count('class="cell pass"') == passed and row.count('class="cell fail"') == total - passed
    for test_id in ("example-1", "example-2", "example-3"):
        assert f'title="{test_id}"' in page


def _row_status(driver: Any, task_id: str) -> str:
    """The status badge of a row of the list, read in one step (the rows are replaced as updates arrive)."""
    script = (
        "const b = document.querySelector(`tr[data-task='${arguments[0]}'] .badge`); return b ? b.textContent : '';"
    )
    return str(driver.execute_script(script, task_id))


@pytest.mark.browser
def test_a_browser_watches_a_deliberation_run_to_the_end_and_opens_it(open_serve: ServeProcess) -> None:
    if why := browser.missing():
        pytest.fail(f"the browser test needs Chromium: {why}")
    from selenium.webdriver.common.by import By

    base = f"http://127.0.0.1:{web_port(open_serve)}"
    with browser.chromium() as driver:
        driver.get(f"{base}/")
        browser.wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live-mode") == "sse")
        driver.execute_script("window.__sameDocument = 'kept'")
        with grpc.insecure_channel(open_serve.address) as channel:
            _stub(channel).SubmitDeliberation(
                pb.DeliberateRequest(task_id="web-e2e-live", task_description=TASK, role="DEV", rounds=1), timeout=60
            )
        running = ("PENDING", "IN_PROGRESS")
        browser.wait_for(driver, lambda d: _row_status(d, "web-e2e-live") in running, 30)
        browser.wait_for(driver, lambda d: _row_status(d, "web-e2e-live") == "COMPLETED", 120)
        assert driver.execute_script("return window.__sameDocument") == "kept"  # no reload happened
        driver.find_element(By.CSS_SELECTOR, 'a[href="/deliberations/web-e2e-live"]').click()
        browser.wait_for(driver, lambda d: d.find_elements(By.ID, "matrix"))
        proposals = driver.find_elements(By.CSS_SELECTOR, "article.proposal")
        assert sorted(p.get_attribute("data-author") for p in proposals) == [
            "agent-dev-001",
            "agent-dev-002",
            "agent-dev-003",
        ]
        assert driver.find_element(By.ID, "winner").text == CORRECT_AUTHOR
        assert len(driver.find_elements(By.CSS_SELECTOR, "#matrix td.cell")) >= 3 * 3
        failing = driver.find_elements(By.CSS_SELECTOR, "#matrix td.cell.fail")
        assert failing, "the wrong solutions fail some tests"
        failing[0].click()
        detail = driver.find_element(By.ID, "failure-detail")
        assert detail.is_displayed() and "expected" in detail.text
        # The hostile proposal is shown as text, and none of it ran.
        hostile = driver.find_element(By.CSS_SELECTOR, f'article.proposal[data-author="{HOSTILE_AUTHOR}"]')
        assert "<script>window.__pwned" in hostile.text and "onerror=" in hostile.text
        assert not hostile.find_elements(By.TAG_NAME, "script") and not hostile.find_elements(By.TAG_NAME, "img")
        assert not driver.find_elements(By.CSS_SELECTOR, "a[href^='javascript:']")
        assert driver.execute_script("return window.__pwned") is None
        assert driver.title != "pwned"


@pytest.mark.browser
def test_with_tokens_a_browser_is_refused_until_it_signs_in(token_serve: ServeProcess) -> None:
    if why := browser.missing():
        pytest.fail(f"the browser test needs Chromium: {why}")
    from selenium.webdriver.common.by import By

    write = (("authorization", "Bearer web-view-write-token"),)
    with grpc.insecure_channel(token_serve.address) as channel:
        _stub(channel).CreateCouncil(pb.CreateCouncilRequest(role="DEV", num_agents=3), timeout=120, metadata=write)
        result = _stub(channel).Deliberate(
            pb.DeliberateRequest(task_id="web-e2e-secret", task_description=TASK, role="DEV", rounds=0),
            timeout=240,
            metadata=write,
        )
    assert result.status == pb.DELIBERATION_STATUS_COMPLETED
    base = f"http://127.0.0.1:{web_port(token_serve)}"
    status, body = http(f"{base}/deliberations/web-e2e-secret")
    assert status == 401 and "web-e2e-secret" not in body and "agent-dev" not in body
    assert http(f"{base}/deliberations/web-e2e-secret", "not-a-token")[0] == 401
    status, body = http(f"{base}/deliberations/web-e2e-secret", READ_TOKEN)
    assert status == 200 and CORRECT_AUTHOR in body
    with browser.chromium() as driver:
        driver.get(f"{base}/deliberations/web-e2e-secret")
        assert driver.find_elements(By.ID, "token") and not driver.find_elements(By.CSS_SELECTOR, "article.proposal")
        assert "web-e2e-secret" not in driver.find_element(By.TAG_NAME, "main").text
        driver.find_element(By.ID, "token").send_keys("wrong-token")
        driver.find_element(By.ID, "sign-in").click()
        browser.wait_for(driver, lambda d: d.find_elements(By.ID, "login-message"))
        driver.find_element(By.ID, "token").send_keys(READ_TOKEN)
        driver.find_element(By.ID, "sign-in").click()
        browser.wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "article.proposal"))
        assert driver.find_element(By.ID, "winner").text == CORRECT_AUTHOR
        cookie = driver.get_cookie("orchestrator_token")
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert driver.execute_script("return document.cookie") == ""  # not readable by scripts
        driver.get(f"{base}/")
        browser.wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-task="web-e2e-secret"]'))
