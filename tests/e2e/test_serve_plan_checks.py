"""A plan that checks itself, end to end: `orchestrator serve` with a real nats-server and its sandbox, the fake
LLM playing scripted DEV, QA and DEVOPS councils. QA's tests catch the DEV winner's bug; DEV's follow-up
deliberation fixes it; the cross-check runs again; GetPlan and the NATS events say so."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.application.plan_checks import follow_up_id
from orchestrator.domain.plans import deliberation_id
from orchestrator.testing.fake_llm import FakeLLMConfig, FakeLLMServer
from orchestrator.testing.plan_task import PEERS, SCRIPTED, plan_payload
from tests.e2e.conftest import ServeProcess, serving
from tests.e2e.test_serve_nats import enveloped, events, publish, wait_plan

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(store_dir=tmp_path_factory.mktemp("nats-checks")) as server:
        yield server


@pytest.fixture(scope="module")
def scripted_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(FakeLLMConfig(scripted_proposals=SCRIPTED, score_markers=PEERS)) as server:
        yield server


@pytest.fixture(scope="module")
def service(
    bus: NatsServer, scripted_llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    work = tmp_path_factory.mktemp("serve-plan-checks")
    with serving(scripted_llm, work, ENABLE_NATS="true", NATS_URL=bus.url, DEFAULT_AGENTS="2") as process:
        yield process


def test_qa_catches_the_dev_winner_and_the_follow_up_and_rerun_show_in_get_plan_and_events(
    service: ServeProcess, bus: NatsServer
) -> None:
    with grpc.insecure_channel(service.address) as ch:  # DEV's council has a third agent, whose module is wrong
        pb_grpc.OrchestratorServiceStub(ch).CreateCouncil(
            pb.CreateCouncilRequest(role="DEV", num_agents=3), timeout=120
        )
    publish(bus.url, enveloped(plan_payload("plan-e2e-checks"), "k-checks"))
    plan = wait_plan(service.address, "plan-e2e-checks", timeout_s=240)

    seen = [(c.summary, list(c.details)) for c in plan.cross_checks]
    assert plan.outcome == "checked", seen
    assert [(c.kind, c.status, c.passed, c.total, c.attempt) for c in plan.cross_checks] == [
        ("qa_on_dev", "failed", 2, 4, 1),
        ("dev_follow_up", "passed", 0, 0, 1),
        ("qa_on_dev", "passed", 4, 4, 2),
        ("devops_on_dev", "passed", 1, 1, 1),
    ], seen
    assert plan.cross_checks[0].summary.startswith("QA tests on the DEV winner: 2/4 passed")
    follow = plan.follow_up
    assert follow.deliberation_id == follow_up_id("plan-e2e-checks", "dev")
    assert (follow.state, follow.winner_id) == ("COMPLETED", "agent-dev-002")
    assert "test_empty_text_has_no_words" in follow.acceptance_tests
    dev = next(s for s in plan.subtasks if s.subtask_id == "dev")
    assert dev.winner_id == "agent-dev-001"  # DEV's own deliberation could not tell; the cross-check could

    mine = [e for e in events(bus.url) if e[2]["payload"].get("plan_id") == "plan-e2e-checks"]
    completed = [e[2]["payload"] for e in mine if e[0] == "orchestration.deliberation.completed"]
    dev_runs = sorted(p["task_id"] for p in completed if p["subtask_id"] == "dev")
    assert dev_runs == sorted([deliberation_id("plan-e2e-checks", "dev"), follow.deliberation_id])
    plan_done = [e for e in mine if e[0] == "orchestration.plan.completed"]
    assert len(plan_done) == 1 and plan_done[0][1] == "plan-e2e-checks:completed"
    payload = plan_done[0][2]["payload"]
    assert payload["outcome"] == "checked" and payload["follow_up"]["winner_id"] == "agent-dev-002"
    assert [c["summary"] for c in payload["cross_checks"]] == [c.summary for c in plan.cross_checks]
