"""The deployment's Ray cluster, run for real (issue 16): a head and two worker nodes of the pinned Ray in their own
virtualenv, token auth on, the service's code shipped in the runtime_env. A plan's three subtasks arrive over
NATS; the agents spread over both workers; one worker's raylet is SIGKILLed during a stage, as when its pod is
OOM-killed; the agents restart on the other worker, every subtask completes exactly once, and the monitor shows
the dead node and the restarting actors while it happens."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.domain.plans import deliberation_id
from orchestrator.testing.fake_llm import FakeLLMServer
from orchestrator.testing.ray_cluster import LocalRayCluster
from tests.e2e.conftest import ROOT, ServeProcess, serve_env
from tests.e2e.test_serve_nats import enveloped, events, plan_payload, publish, wait_plan

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayCluster]:
    with LocalRayCluster(workers=2) as running:
        yield running


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(store_dir=tmp_path_factory.mktemp("nats-ray")) as server:
        yield server


@pytest.fixture(scope="module")
def service(
    cluster: LocalRayCluster,
    bus: NatsServer,
    fake_llm_server: FakeLLMServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServeProcess]:
    work = tmp_path_factory.mktemp("serve-ray")
    env = serve_env(
        fake_llm_server, work, ENABLE_NATS="true", NATS_URL=bus.url, DEFAULT_AGENTS="2", **cluster.client_env()
    )
    process = ServeProcess(env, work / "serve.log")
    process.start(timeout_s=300)
    yield process
    process.stop(signal.SIGTERM)


def ray_status(address: str) -> pb.RayClusterSummary:
    with grpc.insecure_channel(address) as ch:
        status = pb_grpc.OrchestratorServiceStub(ch).GetStatus(pb.GetStatusRequest(include_stats=True), timeout=10)
    return status.ray


def workers(ray: pb.RayClusterSummary) -> dict[str, pb.RayNodeSummary]:
    return {n.labels["fleet/node-name"]: n for n in ray.node_list if not n.head}


def monitor_once(address: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "monitor", "--once", "--address", address],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "services")},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_worker_lost_mid_stage_costs_no_subtask(
    cluster: LocalRayCluster, service: ServeProcess, bus: NatsServer, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_latency(1.0)
    payload = plan_payload("plan-ray")
    for subtask in payload["subtasks"]:
        subtask["depends_on"] = []  # all three at once: the lost node hits every council mid-stage
    publish(bus.url, enveloped(payload, "k-ray"))

    # Agents observed on both workers and none on the head, with calls in flight.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ray = ray_status(service.address)
        on = workers(ray)
        if len(on) == 2 and all(n.agents_alive > 0 for n in on.values()) and fake_llm.count(stage="critique") >= 1:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"agents never ran on both workers: {ray}")
    assert [n.agents_alive for n in ray.node_list if n.head] == [0]
    assert sum(n.agents_alive for n in on.values()) == ray.actors_alive == 6
    assert sum(n.calls_in_flight for n in on.values()) > 0

    cluster.kill_raylet("worker-1")

    # The monitor during the outage: worker-1 DEAD, its agents restarting.
    seen = ""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        seen = monitor_once(service.address)
        if "DEAD" in seen and re.search(r"\+[1-9]\d* restarting", seen):
            break
    else:
        pytest.fail(f"the monitor never showed the dead node with restarting agents:\n{seen}")
    assert re.search(r"worker-1 .*DEAD", seen), seen

    plan = wait_plan(service.address, "plan-ray", timeout_s=240)
    assert [s.state for s in plan.subtasks] == ["COMPLETED"] * 3
    mine = [e for e in events(bus.url) if e[2]["payload"].get("plan_id") == "plan-ray"]
    completed = [e[2]["payload"]["subtask_id"] for e in mine if e[0] == "orchestration.deliberation.completed"]
    assert sorted(completed) == ["dev", "ops", "qa"]  # each exactly once
    with grpc.insecure_channel(service.address) as ch:
        stub = pb_grpc.OrchestratorServiceStub(ch)
        listing = stub.ListDeliberations(pb.ListDeliberationsRequest(page_size=100), timeout=10).deliberations
        for subtask in ("dev", "qa", "ops"):
            run = stub.GetDeliberationResult(
                pb.GetDeliberationResultRequest(task_id=deliberation_id("plan-ray", subtask)), timeout=10
            )
            assert run.status == pb.DELIBERATION_STATUS_COMPLETED
            assert len(run.results) == 2  # every agent made it, none dropped out
    assert len([d.task_id for d in listing]) == len({d.task_id for d in listing}) == 3
    assert not [d for d in listing if d.status in (pb.DELIBERATION_STATUS_IN_PROGRESS, pb.DELIBERATION_STATUS_PENDING)]

    after = ray_status(service.address)
    survivors = workers(after)
    assert not survivors["worker-1"].alive and survivors["worker-2"].alive
    assert survivors["worker-2"].agents_alive == after.actors_alive == 6
    assert after.actor_restarts >= 3 and after.nodes_dead == 1
