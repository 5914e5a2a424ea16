"""A user's flow against `orchestrator serve`: set up councils, deliberate, restart, read the result back."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.testing.fake_llm import FakeLLMServer, FaultSpec
from tests.e2e.conftest import ROOT, ServeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

TASK = "Write a Python function that parses ISO-8601 timestamps into timezone-aware datetimes"
REQUIREMENTS = ["parse ISO-8601 timestamps", "return timezone-aware datetimes"]


def setup_script(address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/setup_all_councils.py", "--address", address, "--num-agents", "3", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def code_of(fn: object, request: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        fn(request, timeout=60)  # type: ignore[operator]
    return info.value.code()  # type: ignore[attr-defined,no-any-return]


def test_councils_deliberation_and_restart(serve: ServeProcess, fake_llm: FakeLLMServer) -> None:
    first = setup_script(serve.address)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == 5
    second = setup_script(serve.address)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already exists") == 5

    fake_llm.update_config(broken_python_agents=frozenset({"agent-dev-002"}))
    with grpc.insecure_channel(serve.address) as ch:
        stub = pb_grpc.OrchestratorServiceStub(ch)
        assert code_of(stub.CreateCouncil, pb.CreateCouncilRequest(role="DEV")) == grpc.StatusCode.ALREADY_EXISTS
        mock = pb.CreateCouncilRequest(role="DEV", config=pb.CouncilConfig(agent_type="MOCK"))
        assert code_of(stub.CreateCouncil, mock) == grpc.StatusCode.INVALID_ARGUMENT
        bad = pb.DeliberateRequest(task_description=TASK, role="DEV", rounds=9)
        assert code_of(stub.Deliberate, bad) == grpc.StatusCode.INVALID_ARGUMENT
        missing = pb.GetDeliberationResultRequest(task_id="never-ran")
        assert code_of(stub.GetDeliberationResult, missing) == grpc.StatusCode.NOT_FOUND

        request = pb.DeliberateRequest(
            task_id="e2e-dev-1",
            task_description=TASK,
            role="DEV",
            rounds=2,
            num_agents=3,
            constraints=pb.TaskConstraints(rubric="correctness, tests, clarity", requirements=REQUIREMENTS),
        )
        response = stub.Deliberate(request, timeout=120)
        councils_before = stub.ListCouncils(pb.ListCouncilsRequest(include_agents=True), timeout=30)

    assert response.status == pb.DELIBERATION_STATUS_COMPLETED
    assert [r.rank for r in response.results] == [1, 2, 3]
    assert response.winner_id == response.results[0].proposal.author_id
    assert len({r.score for r in response.results}) == 3
    revised = {r.proposal.author_id: len(r.proposal.revisions) for r in response.results}
    # The author of broken Python revises in both rounds; one with nothing to fix is kept as it is.
    assert revised["agent-dev-002"] == 2 and 0 in revised.values() and max(revised.values()) == 2
    assert response.rounds_run == 2
    for r in response.results:
        assert r.peer_scores and 0 <= r.peer_score <= 1
        assert r.score == pytest.approx(0.6 * r.peer_score + 0.4 * r.check_score, abs=1e-6)
    broken = next(r for r in response.results if r.proposal.author_id == "agent-dev-002")
    assert not broken.checks.lint.passed
    assert any("SyntaxError" in e for e in broken.checks.lint.errors)
    assert broken.rank == 3

    assert serve.restart() == 0
    with grpc.insecure_channel(serve.address) as ch:
        stub = pb_grpc.OrchestratorServiceStub(ch)
        stored = stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id="e2e-dev-1"), timeout=30)
        councils_after = stub.ListCouncils(pb.ListCouncilsRequest(include_agents=True), timeout=30)
        again = stub.Deliberate(request, timeout=60)  # same task_id: answered from the store, not re-run

    assert stored.status == pb.DELIBERATION_STATUS_COMPLETED
    assert list(stored.results) == list(response.results)
    assert stored.winner_id == response.winner_id
    assert councils_after == councils_before and len(councils_after.councils) == 5
    assert list(again.results) == list(response.results)


def test_one_always_failing_agent_is_named_and_the_others_ranked(serve: ServeProcess, fake_llm: FakeLLMServer) -> None:
    assert setup_script(serve.address).returncode == 0
    fake_llm.set_fault("agent-qa-003", FaultSpec("500"))
    with grpc.insecure_channel(serve.address) as ch:
        stub = pb_grpc.OrchestratorServiceStub(ch)
        response = stub.Deliberate(
            pb.DeliberateRequest(task_description="Design tests for a login form", role="QA", rounds=1), timeout=120
        )
    assert response.status == pb.DELIBERATION_STATUS_COMPLETED
    assert {r.proposal.author_id for r in response.results} == {"agent-qa-001", "agent-qa-002"}
    assert [f.agent_id for f in response.failed_agents] == ["agent-qa-003"]
    assert "http_500" in response.failed_agents[0].error


def test_a_failing_majority_ends_failed_with_a_clear_message(serve: ServeProcess, fake_llm: FakeLLMServer) -> None:
    assert setup_script(serve.address).returncode == 0
    fake_llm.set_fault("agent-devops-001", FaultSpec("500"))
    fake_llm.set_fault("agent-devops-002", FaultSpec("500"))
    with grpc.insecure_channel(serve.address) as ch:
        stub = pb_grpc.OrchestratorServiceStub(ch)
        response = stub.Deliberate(
            pb.DeliberateRequest(task_id="e2e-devops-fail", task_description="Write a CI pipeline", role="DEVOPS"),
            timeout=120,
        )
        stored = stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id="e2e-devops-fail"), timeout=30)
    assert response.status == pb.DELIBERATION_STATUS_FAILED
    assert stored.status == pb.DELIBERATION_STATUS_FAILED
    assert "quorum is 2" in stored.error_message
    assert "agent-devops-001" in stored.error_message and "agent-devops-002" in stored.error_message
    assert [r.proposal.author_id for r in stored.results] == ["agent-devops-003"]  # the finished work is kept


def test_a_429_with_retry_after_is_retried(serve: ServeProcess, fake_llm: FakeLLMServer) -> None:
    assert setup_script(serve.address).returncode == 0
    fake_llm.set_fault("agent-architect-001", FaultSpec("429", times=1, retry_after_s=1.0))
    with grpc.insecure_channel(serve.address) as ch:
        stub = pb_grpc.OrchestratorServiceStub(ch)
        response = stub.Deliberate(
            pb.DeliberateRequest(task_description="Propose a service boundary for billing", role="ARCHITECT"),
            timeout=120,
        )
    assert response.status == pb.DELIBERATION_STATUS_COMPLETED
    assert not response.failed_agents
    calls = [c for c in fake_llm.calls() if c.agent_id == "agent-architect-001" and c.stage == "propose"]
    assert [c.status_code for c in calls] == [429, 200]
    assert calls[1].started_at - calls[0].finished_at >= 0.9
