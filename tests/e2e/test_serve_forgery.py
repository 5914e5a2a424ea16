"""Forged evidence through `orchestrator serve` over gRPC (the execution runs as Ray tasks in the sandbox): the fake
LLM answers one proposal that prints forged "passed" lines with the marker of the old harness and exits 0, one
whose test block kills the sandbox's supervisor, and the correct one; the peers score the correct one lowest. The
correct one wins on its specification tests, and neither attacker gets a specification test it fails."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import grpc
import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.testing.evidence_task import CORRECT, CORRECT_AUTHOR, TASK
from orchestrator.testing.fake_llm import FakeLLMConfig, FakeLLMServer
from tests.e2e.conftest import ServeProcess, serve_env
from tests.integration.test_evidence_forgery import HOSTILE_TESTS, SOLUTIONS, WRONG, proposal

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

SCRIPTED = {
    "agent-dev-001": proposal(SOLUTIONS["forge-by-stdout"]),
    CORRECT_AUTHOR: CORRECT,
    "agent-dev-003": proposal(WRONG, HOSTILE_TESTS["kills-the-supervisor"]),
}


@pytest.fixture(scope="module")
def scripted_llm() -> Iterator[FakeLLMServer]:
    config = FakeLLMConfig(scripted_proposals=SCRIPTED, score_markers={"return x": 10, "max(low, min(x, high))": 1})
    with FakeLLMServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def forgery_serve(scripted_llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    work = tmp_path_factory.mktemp("serve-forgery")
    process = ServeProcess(serve_env(scripted_llm, work, EARLY_STOP="false"), work / "serve.log")
    process.start()
    yield process
    process.stop(signal.SIGTERM)


def test_forged_results_and_a_peers_hostile_tests_do_not_change_the_winner(forgery_serve: ServeProcess) -> None:
    with grpc.insecure_channel(forgery_serve.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV", num_agents=3), timeout=120)
        response = stub.Deliberate(
            pb.DeliberateRequest(task_id="forgery-e2e-1", task_description=TASK, role="DEV", rounds=0), timeout=240
        )
    assert response.status == pb.DELIBERATION_STATUS_COMPLETED, response.error_message
    by_author = {r.proposal.author_id: r for r in response.results}
    assert response.winner_id == CORRECT_AUTHOR, [r.rank_reason for r in response.results]
    assert by_author[CORRECT_AUTHOR].evidence.spec_passed == by_author[CORRECT_AUTHOR].evidence.spec_total == 3
    for attacker in ("agent-dev-001", "agent-dev-003"):
        evidence = by_author[attacker].evidence
        assert evidence.spec_total == 3 and evidence.spec_passed <= 1, (attacker, evidence)
