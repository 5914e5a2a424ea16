"""Evidence-driven deliberation through `orchestrator serve`: the fake LLM answers one correct and two subtly wrong
solutions with their tests, and the peers score the correct one lowest. The service runs every proposal's code in
the sandbox (as Ray tasks), ranks the correct one first, says why, and the wrong authors' revise prompts carried
their failing tests' output."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.testing.evidence_task import CORRECT_AUTHOR, PEERS_PREFER_WRONG, SCRIPTED, TASK
from orchestrator.testing.fake_llm import FakeLLMConfig, FakeLLMServer
from tests.e2e.conftest import ServeProcess, serving

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def scripted_llm() -> Iterator[FakeLLMServer]:
    config = FakeLLMConfig(scripted_proposals=SCRIPTED, score_markers=PEERS_PREFER_WRONG)
    with FakeLLMServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def evidence_serve(scripted_llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serving(scripted_llm, tmp_path_factory.mktemp("serve-evidence"), EARLY_STOP="false") as process:
        yield process


def test_the_correct_solution_wins_on_evidence_and_wrong_authors_see_their_failures(
    evidence_serve: ServeProcess, scripted_llm: FakeLLMServer
) -> None:
    with grpc.insecure_channel(evidence_serve.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV", num_agents=3), timeout=120)
        response = stub.Deliberate(
            pb.DeliberateRequest(task_id="evidence-e2e-1", task_description=TASK, role="DEV", rounds=1), timeout=240
        )
        status = stub.GetStatus(pb.GetStatusRequest(), timeout=30)
    assert response.status == pb.DELIBERATION_STATUS_COMPLETED, response.error_message
    assert "available" in status.sandbox_status and "unavailable" not in status.sandbox_status
    winner = response.results[0]
    assert response.winner_id == CORRECT_AUTHOR == winner.proposal.author_id
    # The evidence leaves it alone on top, so the peers (who prefer the others) are not asked.
    assert not [c for c in scripted_llm.calls() if c.stage == "score"]
    assert "passes 3/3 specification tests" in winner.rank_reason
    assert winner.evidence.spec_passed == winner.evidence.spec_total == 3
    assert response.rounds_run == 1 and response.stop_reason == "all 1 rounds ran"
    revise = {c.agent_id: c.prompt for c in scripted_llm.calls() if c.stage == "revise"}
    assert "expected 10, got 9" in revise["agent-dev-001"]
    assert "expected 0, got -3" in revise["agent-dev-003"]
    assert CORRECT_AUTHOR not in revise  # it failed nothing: kept as it is
