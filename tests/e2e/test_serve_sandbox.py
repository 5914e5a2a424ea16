"""`orchestrator serve` without a working sandbox: it refuses to start, saying why and how to run degraded; with
SANDBOX_DEGRADED_OK=true it starts and says NOT EXECUTED in GetStatus and in every result. The sandbox is broken
on purpose by naming an interpreter that does not exist (SANDBOX_PYTHON)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.testing.evidence_task import TASK
from orchestrator.testing.fake_llm import FakeLLMServer
from tests.e2e.conftest import ServeProcess, serve_env, serving

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

BROKEN = "/nonexistent/python3"


def test_serve_refuses_to_start_without_a_working_sandbox(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    process = ServeProcess(serve_env(fake_llm, tmp_path, SANDBOX_PYTHON=BROKEN), tmp_path / "serve.log")

    with pytest.raises(RuntimeError, match="serve did not start") as refused:
        process.start(timeout_s=150)

    assert process.proc is not None and process.proc.returncode not in (0, None)
    assert "no working sandbox" in str(refused.value)
    assert "/nonexistent/python3" in str(refused.value)
    assert "SANDBOX_DEGRADED_OK=true" in str(refused.value)


def test_serve_in_degraded_mode_says_not_executed_everywhere(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    with serving(fake_llm, tmp_path, SANDBOX_DEGRADED_OK="true", SANDBOX_PYTHON=BROKEN) as process:
        with grpc.insecure_channel(process.address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV", num_agents=3), timeout=120)
            response = stub.Deliberate(
                pb.DeliberateRequest(task_id="degraded-1", task_description=TASK, role="DEV", rounds=0), timeout=240
            )
            status = stub.GetStatus(pb.GetStatusRequest(), timeout=30)
        log = process.log_tail(400)

    assert status.sandbox_status.startswith("NOT EXECUTED: no working sandbox"), status.sandbox_status
    assert response.status == pb.DELIBERATION_STATUS_COMPLETED, response.error_message
    for result in response.results:
        assert "NOT EXECUTED" in result.evidence.skipped, result.evidence
    assert "sandbox_unavailable_degraded" in log
