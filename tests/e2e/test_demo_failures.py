"""`orchestrator demo` when things go wrong: one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.testing.fake_llm import FakeLLMServer
from tests.e2e.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]


def demo(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "demo", "--report-dir", str(tmp_path / "reports"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,
    )


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


def test_an_unreadable_plan_file_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "plan.yaml"
    bad.write_text("- just\n- a list\n")
    done = demo(tmp_path, dict(os.environ), "--plan-file", str(bad))
    assert done.returncode == 2
    assert error_lines(done) == [f"error: --plan-file {bad}: the plan file must hold a mapping"]
    missing = demo(tmp_path, dict(os.environ), "--plan-file", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 2 and "No such file" in error_lines(missing)[0]


def test_a_plan_that_does_not_finish_in_time_ends_with_one_line(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.set_latency(2.0)  # the fake LLM stands in for the local model; the plan needs far longer than 3 s
    env = {**os.environ, "VLLM_URL": fake_llm.base_url, "VLLM_MODEL": "fake-llm", "RAY_ADDRESS": ""}
    done = demo(tmp_path, env, "--timeout", "3")
    assert done.returncode == 1, done.stderr[-2000:]
    lines = error_lines(done)
    assert len(lines) == 1 and "the demo did not finish: TimeoutError: plan" in lines[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").iterdir())
