"""`orchestrator demo` on a plan that checks itself, the fake LLM standing in for the local model: the report opens
with the Cross-checks section (the outcome, QA's tests on the DEV winner as N/M, DEV's follow-up, the check run
again), then the winners and why they won."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator.testing.fake_llm import FakeLLMConfig, FakeLLMServer
from orchestrator.testing.plan_task import PEERS, SCRIPTED, plan_payload
from tests.e2e.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def scripted_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(FakeLLMConfig(scripted_proposals=SCRIPTED, score_markers=PEERS)) as server:
        yield server


def test_the_demo_report_opens_with_the_cross_checks_then_the_winners(
    scripted_llm: FakeLLMServer, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(plan_payload("plan-demo-checks")))
    env = {
        **os.environ,
        "VLLM_URL": scripted_llm.base_url,
        "VLLM_MODEL": "fake-llm",
        "RAY_ADDRESS": "",
        "WEB_PORT": "0",
    }
    command = [sys.executable, "-m", "orchestrator", "demo", "--agents", "3", "--plan-file", str(plan_file)]
    command += ["--report-dir", str(tmp_path / "reports"), "--timeout", "240"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "QA tests on the DEV winner: 2/4 passed" in done.stdout  # printed at the end as well
    # DEV deliberates with its rounds; QA and DEVOPS are best of N by their checks (--review-rounds 0).
    assert re.search(r"DEV\s+created, 1 critique/revise round\b", done.stdout)
    assert re.search(r"QA\s+created, 0 critique/revise rounds", done.stdout)
    (report,) = (tmp_path / "reports").glob("report-plan-demo-checks-*.md")
    text = report.read_text()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[:2] == ["## Cross-checks", "## Winners"]
    checks = text.split("## Cross-checks", 1)[1].split("## Winners", 1)[0]
    assert "Outcome: **checked**" in checks
    lines = [line for line in checks.splitlines() if line.startswith("- ")]
    assert lines[0].startswith("- QA tests on the DEV winner: 2/4 passed (agent-qa-001's tests on agent-dev-001)")
    assert lines[1].startswith("- DEV follow-up: dev deliberated again with the 2 failing QA test(s)")
    assert lines[2].startswith("- QA tests on the DEV winner: 4/4 passed (agent-qa-001's tests on agent-dev-002")
    assert lines[3].startswith("- DEVOPS manifests on the DEV module: 1/1 references match")
    winners = text.split("## Winners", 1)[1].split("## Subtasks", 1)[0]
    assert "| dev | DEV | COMPLETED | agent-dev-001 |" in winners and "specification tests" in winners
    assert "## DEV follow-up of dev" in text
