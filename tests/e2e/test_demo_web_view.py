"""`orchestrator demo --keep`: the demo prints its web view's URL, and after the plan has finished it keeps serving
(gRPC and the web view) until Ctrl-C, then exits cleanly. The fake LLM stands in for the local model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from orchestrator.testing.fake_llm import FakeLLMServer
from tests.e2e.conftest import ROOT, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]


def test_demo_keep_prints_the_web_view_and_serves_it_until_ctrl_c(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "VLLM_URL": fake_llm.base_url,
        "VLLM_MODEL": "fake-llm",
        "RAY_ADDRESS": "",
        "WEB_PORT": str(port),
    }
    out = (tmp_path / "demo.out").open("w")
    command = [sys.executable, "-m", "orchestrator", "demo", "--agents", "2", "--rounds", "0", "--keep"]
    command += ["--plan-file", str(ROOT / "docs" / "web-plan.yaml"), "--report-dir", str(tmp_path / "reports")]
    demo = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while "serving until Ctrl-C" not in (text := (tmp_path / "demo.out").read_text()):
            assert demo.poll() is None, text[-3000:]
            assert time.monotonic() < deadline, text[-3000:]
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/"
        assert f"web view: {url}" in text
        assert "report:" in text  # the plan finished and its report was written before it kept serving
        time.sleep(1.0)  # still serving a moment later
        with urllib.request.urlopen(url, timeout=30) as response:
            listing = response.read().decode()
        assert response.status == 200 and listing.count('href="/deliberations/plan-') == 2
        demo.send_signal(signal.SIGINT)
        assert demo.wait(90) == 0, (tmp_path / "demo.out").read_text()[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
        out.close()
