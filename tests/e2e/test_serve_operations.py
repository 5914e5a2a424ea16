"""What an operator configures: councils from COUNCILS_FILE at start-up, and Prometheus /metrics on METRICS_PORT."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.testing.fake_llm import FakeLLMServer, FaultSpec
from tests.e2e.conftest import ROOT, free_port, serve_env, serving

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

COUNCILS = """
councils:
  - role: DEV
    num_agents: 2
    rounds: 1
    temperature: 0.4
  - role: qa
    num_agents: 3
    max_tokens: 512
"""

STAGES = ("propose", "critique", "revise", "score")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_councils_file_and_metrics(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    councils_file = tmp_path / "councils.yaml"
    councils_file.write_text(COUNCILS)
    metrics_port = free_port()
    with serving(fake_llm, tmp_path, COUNCILS_FILE=str(councils_file), METRICS_PORT=str(metrics_port)) as process:
        fake_llm.set_fault("agent-qa-003", FaultSpec("500"))
        with grpc.insecure_channel(process.address) as ch:
            stub = pb_grpc.OrchestratorServiceStub(ch)
            listed = stub.ListCouncils(pb.ListCouncilsRequest(include_agents=True), timeout=30)
            dev = stub.Deliberate(pb.DeliberateRequest(task_description="Write a slugify function", role="DEV"), 120)
            qa = stub.Deliberate(pb.DeliberateRequest(task_description="Test a login form", role="QA"), 120)
        assert {c.role: len(c.agents) for c in listed.councils} == {"DEV": 2, "QA": 3}
        assert dev.status == qa.status == pb.DELIBERATION_STATUS_COMPLETED

        m = scrape(metrics_port)
        assert m[("orchestrator_deliberations_total", (("role", "DEV"), ("status", "COMPLETED")))] == 1
        assert m[("orchestrator_deliberations_total", (("role", "QA"), ("status", "COMPLETED")))] == 1
        # DEV: 2 agents x (propose, score); in the council's 1 round one proposal has something to fix: its author
        # revises, critiqued by the other; the one with nothing to fix is kept and critiques nobody (no call).
        calls = {s: m[("orchestrator_llm_calls_total", (("role", "DEV"), ("stage", s)))] for s in STAGES}
        assert calls == {"propose": 2, "critique": 1, "revise": 1, "score": 2}
        assert m[("orchestrator_stage_duration_seconds_count", (("role", "DEV"), ("stage", "critique")))] == 1
        # QA: agent-qa-003 fails its proposal (after 2 retries the call counts once, as an error) and drops out
        assert m[("orchestrator_llm_errors_total", (("role", "QA"), ("stage", "propose")))] == 1
        assert m[("orchestrator_llm_calls_total", (("role", "QA"), ("stage", "propose")))] == 3
        assert dev.usage.completion_tokens > 0
        assert (
            m[("orchestrator_llm_tokens_total", (("kind", "completion"), ("role", "DEV")))]
            == dev.usage.completion_tokens
        )
        assert m[("orchestrator_llm_tokens_total", (("kind", "prompt"), ("role", "DEV")))] == dev.usage.prompt_tokens
        assert m[("orchestrator_deliberation_duration_seconds_count", (("role", "DEV"), ("status", "COMPLETED")))] == 1
        assert m[("orchestrator_queue_depth", ())] == 0

        # A restart keeps the councils (the file creates only missing ones) and serves metrics again.
        councils_file.write_text(COUNCILS.replace("num_agents: 2", "num_agents: 4"))
        assert process.restart() == 0
        with grpc.insecure_channel(process.address) as ch:
            stub = pb_grpc.OrchestratorServiceStub(ch)
            after = stub.ListCouncils(pb.ListCouncilsRequest(include_agents=True), timeout=30)
        assert {c.role: len(c.agents) for c in after.councils} == {"DEV": 2, "QA": 3}
        assert ("orchestrator_queue_depth", ()) in scrape(metrics_port)


def test_an_invalid_councils_file_stops_start_up_with_one_line(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    councils_file = tmp_path / "councils.yaml"
    councils_file.write_text("councils:\n  - role: TESTER\n    num_agents: 3\n")
    env = serve_env(fake_llm, tmp_path, COUNCILS_FILE=str(councils_file), GRPC_PORT="0")
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "serve"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "COUNCILS_FILE" in line]
    assert len(lines) == 1 and "councils.0.role" in lines[0] and "DEV" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
