"""The deployment's Ray cluster, run for real (issue 16): a head and two worker nodes of the pinned Ray in their own
virtualenv, token auth on, the service's code shipped in the runtime_env. A plan's three subtasks arrive over
NATS; the agents spread over both workers; one worker's raylet is SIGKILLed during a stage, as when its pod is
OOM-killed; the agents restart on the other worker, every subtask completes exactly once, and the monitor shows
the dead node and the restarting actors while it happens. A sandbox run (bubblewrap in a Ray task) whose worker node
is killed mid-run is run again on the other worker; one whose last worker is killed is reported as skipped."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import ray
from ray._private.authentication_test_utils import reset_auth_token_state

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.adapters.ray.agents import agent_runtime_env
from orchestrator.adapters.ray.sandbox import RaySandbox
from orchestrator.domain.execution import Execution, SandboxLimits
from orchestrator.domain.plans import deliberation_id
from orchestrator.testing.fake_llm import FakeLLMServer
from orchestrator.testing.ray_cluster import LocalRayCluster
from tests.e2e.conftest import ROOT, ServeProcess, serving
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
    env = dict(ENABLE_NATS="true", NATS_URL=bus.url, DEFAULT_AGENTS="2", **cluster.client_env())
    with serving(fake_llm_server, work, start_timeout_s=300, **env) as process:
        yield process


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


SLOW = "import sys, time\ntime.sleep(float(sys.argv[1]))\nprint('result', sys.argv[2])\n"
"""Sleeps, then prints what it was given: the run's token, also on its command line, where /proc shows it."""
LIMITS = SandboxLimits(cpu_seconds=10, wall_seconds=90)


@pytest.fixture
def ray_driver(cluster: LocalRayCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process as a Ray Client driver of the cluster, the service's code shipped as `serve` ships it."""
    assert not ray.is_initialized(), "a Ray of another test is still connected in this process"
    for key, value in cluster.client_env().items():
        monkeypatch.setenv(key, value)
    # Ray reads RAY_AUTH_* once, when it is imported (a service has them from its start): read them again.
    reset_auth_token_state()
    for attempt in (1, 2, 3):
        try:
            with warnings.catch_warnings():  # Ray Client warns as it gives up; a busy head is tried again
                warnings.simplefilter("ignore", UserWarning)
                ray.init(
                    cluster.address, namespace="sandbox-failover", runtime_env=agent_runtime_env(), log_to_driver=False
                )
            break
        except ConnectionError:
            ray.shutdown()
            if attempt == 3:
                raise
    yield
    ray.shutdown()
    monkeypatch.undo()
    reset_auth_token_state()


def nodes_running(cluster: LocalRayCluster, token: str) -> set[str]:
    """The alive worker nodes with a process of the run marked `token` (bwrap, the program) in their trees."""
    marked = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    marked.add(int(entry.name))
            except OSError:
                continue
    return {node.name for node in cluster.alive_workers() if marked & set(node.pids())}


async def node_running(cluster: LocalRayCluster, token: str, run: asyncio.Task[Execution]) -> str:
    """The worker node the run is running on, once it runs (fails if the run ends first)."""
    deadline = time.monotonic() + 240  # a node's first run of this job sets up its runtime_env (pip) first
    while time.monotonic() < deadline and not run.done():
        found = nodes_running(cluster, token)
        if found:
            assert len(found) == 1, f"one run, on several nodes at once: {found}"
            return found.pop()
        await asyncio.sleep(0.2)
    pytest.fail(f"the run never ran on a worker: {run.result() if run.done() else 'still waiting'}")


def start_run(sandbox: RaySandbox, token: str, sleep_s: float) -> asyncio.Task[Execution]:
    return asyncio.create_task(sandbox.run({"slow.py": SLOW}, ["python3", "slow.py", str(sleep_s), token], LIMITS))


async def test_a_sandbox_run_whose_node_dies_runs_again_elsewhere_and_none_left_is_a_skip(
    cluster: LocalRayCluster, ray_driver: None
) -> None:
    while len(cluster.alive_workers()) < 2:  # the agents' test above lost worker-1: its replacement joins
        await asyncio.to_thread(cluster.add_worker, f"worker-{len(cluster.nodes)}")
    sandbox = RaySandbox(no_worker_grace_s=5)
    assert (await sandbox.probe()).available, sandbox.availability().summary  # bubblewrap works on the workers

    # Its node killed mid-run: Ray runs it again on the other worker, and the real result comes back.
    token = uuid.uuid4().hex
    run = start_run(sandbox, token, 8)
    first = await node_running(cluster, token, run)
    await asyncio.to_thread(cluster.kill_node, first)
    second = await node_running(cluster, token, run)
    execution = await asyncio.wait_for(run, 120)
    assert second != first
    assert execution.passed and execution.stdout == f"result {token}\n", execution

    # Its last worker killed: the retry waits for a node that never comes; skipped with the reason, not a pass.
    lost = uuid.uuid4().hex
    run = start_run(sandbox, lost, 30)
    assert await node_running(cluster, lost, run) == second
    await asyncio.to_thread(cluster.kill_node, second)
    execution = await asyncio.wait_for(run, 90)
    assert execution.skipped and not execution.passed, execution
    assert "no alive Ray worker node offered CPU for 5 s" in execution.detail, execution.detail

    # The driver keeps working: a worker joins, as KubeRay replaces a lost pod, and runs go through again; the
    # run that was given up is not run there behind our back.
    await asyncio.to_thread(cluster.add_worker, f"worker-{len(cluster.nodes)}")
    token = uuid.uuid4().hex
    execution = await asyncio.wait_for(start_run(sandbox, token, 0), 240)
    assert execution.passed and execution.stdout == f"result {token}\n", execution
    assert not nodes_running(cluster, lost)
