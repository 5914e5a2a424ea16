"""Asynchronous deliberations against `orchestrator serve`: submit, watch, cancel, deadlines, admission, monitor."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.testing.fake_llm import FakeLLMServer, FaultSpec
from tests.e2e.conftest import ROOT, ServeProcess, serving

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

TASK = "Write a Python function that deduplicates a list while keeping order"
MAX_RUNNING, MAX_QUEUED = 3, 1


@pytest.fixture(scope="module")
def limited(fake_llm_server: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serving(
        fake_llm_server,
        tmp_path_factory.mktemp("serve-async"),
        councils={"DEV": None, "QA": None},
        MAX_CONCURRENT_DELIBERATIONS=str(MAX_RUNNING),
        DELIBERATION_QUEUE_SIZE=str(MAX_QUEUED),
    ) as process:
        yield process


@pytest.fixture
def stub(limited: ServeProcess) -> Iterator[pb_grpc.OrchestratorServiceStub]:
    with grpc.insecure_channel(limited.address) as ch:
        yield pb_grpc.OrchestratorServiceStub(ch)


def submit(stub: pb_grpc.OrchestratorServiceStub, **fields: object) -> str:
    request = pb.DeliberateRequest(task_id=f"a-{uuid.uuid4().hex[:8]}", task_description=TASK, role="DEV", **fields)
    response = stub.SubmitDeliberation(request, timeout=30)
    assert response.status == pb.DELIBERATION_STATUS_PENDING and not response.existing
    return response.task_id


def wait_status(stub: pb_grpc.OrchestratorServiceStub, task_id: str, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id=task_id), timeout=10).status
        if status >= pb.DELIBERATION_STATUS_COMPLETED:
            return status
        time.sleep(0.2)
    raise TimeoutError(task_id)


def test_a_submitted_deliberation_streams_its_stages_in_order(
    stub: pb_grpc.OrchestratorServiceStub, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_latency(0.3)
    task_id = submit(stub, rounds=1)
    again = stub.SubmitDeliberation(pb.DeliberateRequest(task_id=task_id, task_description=TASK, role="DEV"))
    assert again.existing
    updates = list(stub.WatchDeliberation(pb.WatchDeliberationRequest(task_id=task_id), timeout=60))
    steps = list(dict.fromkeys(u.current_step for u in updates if u.stage))
    assert steps == ["propose", "verify", "critique r1", "revise r1", "verify r1", "score"]
    agent_updates = [u for u in updates if u.current_agent]
    assert len(agent_updates) == 3 * 4  # one per agent per stage
    assert all(u.partial_result.proposal.author_id == u.current_agent for u in agent_updates if u.stage != "score")
    percents = [u.progress_percent for u in updates]
    assert percents == sorted(percents) and percents[-1] == 100
    final = updates[-1]
    assert final.status_code == pb.DELIBERATION_STATUS_COMPLETED and final.winner_id and len(final.results) == 3


def test_a_late_watcher_first_gets_the_current_state(
    stub: pb_grpc.OrchestratorServiceStub, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_latency(0.5)
    task_id = submit(stub, rounds=1)
    assert fake_llm.wait_for_calls(1, stage="critique", timeout=30)  # propose done, critique under way
    live = stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id=task_id), timeout=10)
    assert live.status == pb.DELIBERATION_STATUS_IN_PROGRESS and live.current_stage in ("critique", "revise")
    assert {r.proposal.author_id for r in live.results} == {"agent-dev-001", "agent-dev-002", "agent-dev-003"}
    stream = stub.WatchDeliberation(pb.WatchDeliberationRequest(task_id=task_id), timeout=60)
    first = next(stream)
    assert first.status == "IN_PROGRESS" and first.current_step != "propose" and first.progress_percent > 0
    rest = list(stream)
    assert rest[-1].status == "COMPLETED"
    late = list(stub.WatchDeliberation(pb.WatchDeliberationRequest(task_id=task_id), timeout=10))
    assert len(late) == 1 and late[0].status == "COMPLETED"  # a finished one answers with its final state


def test_cancel_during_a_stage_ends_cancelled_and_closes_the_requests(
    stub: pb_grpc.OrchestratorServiceStub, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_latency(0.3)
    fake_llm.set_fault("agent-dev-001", FaultSpec("hang", stage="critique"))
    task_id = submit(stub, rounds=1)
    assert fake_llm.wait_for_calls(2, stage="critique", timeout=20)
    time.sleep(0.5)
    started = time.monotonic()
    response = stub.CancelDeliberation(pb.CancelDeliberationRequest(task_id=task_id), timeout=10)
    assert response.cancelled and response.status == pb.DELIBERATION_STATUS_CANCELLED
    assert wait_status(stub, task_id, 2) == pb.DELIBERATION_STATUS_CANCELLED
    assert time.monotonic() - started < 2.0
    result = stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id=task_id), timeout=10)
    assert len(result.results) == 3 and "cancelled" in result.error_message  # the proposals are kept
    assert fake_llm.wait_for_calls(1, agent_id="agent-dev-001", stage="critique", timeout=30)
    hung = [c for c in fake_llm.calls() if c.agent_id == "agent-dev-001" and c.stage == "critique"]
    assert hung and all(c.disconnected for c in hung)
    again = stub.CancelDeliberation(pb.CancelDeliberationRequest(task_id=task_id), timeout=10)
    assert not again.cancelled and "already finished" in again.message
    with pytest.raises(grpc.RpcError) as info:
        stub.CancelDeliberation(pb.CancelDeliberationRequest(task_id="no-such-task"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_past_its_deadline_a_deliberation_ends_timeout_keeping_finished_proposals(
    stub: pb_grpc.OrchestratorServiceStub, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_fault("agent-qa-002", FaultSpec("hang", stage="revise"))
    request = pb.DeliberateRequest(
        task_id=f"t-{uuid.uuid4().hex[:8]}",
        task_description="Test plan for a password reset flow",
        role="QA",
        rounds=1,
        constraints=pb.TaskConstraints(timeout_seconds=3),
    )
    stub.SubmitDeliberation(request, timeout=10)
    assert wait_status(stub, request.task_id, 30) == pb.DELIBERATION_STATUS_TIMEOUT
    result = stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id=request.task_id), timeout=10)
    assert "deadline" in result.error_message and result.current_stage == "revise"
    assert len(result.results) == 3 and result.winner_id
    revised = {r.proposal.author_id: len(r.proposal.revisions) for r in result.results}
    assert revised == {"agent-qa-001": 1, "agent-qa-002": 0, "agent-qa-003": 1}


def test_an_over_full_queue_is_resource_exhausted(
    stub: pb_grpc.OrchestratorServiceStub, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_latency(1.0)
    ids = [submit(stub, rounds=0) for _ in range(MAX_RUNNING + MAX_QUEUED)]
    status = stub.GetStatus(pb.GetStatusRequest(include_stats=True), timeout=10)
    assert status.queue_depth == MAX_QUEUED and status.running_deliberations == MAX_RUNNING
    with pytest.raises(grpc.RpcError) as info:
        submit(stub)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "queued" in info.value.details()
    assert all(wait_status(stub, t) == pb.DELIBERATION_STATUS_COMPLETED for t in ids)
    submit(stub, rounds=0)  # room again


def test_status_summarises_deliberations_and_the_ray_cluster(stub: pb_grpc.OrchestratorServiceStub) -> None:
    status = stub.GetStatus(pb.GetStatusRequest(include_stats=True), timeout=10)
    assert status.ray.connected and status.ray.nodes == 1 and status.ray.cpus >= 1
    assert status.ray.actors_alive == 6 and status.ray.actors_dead == 0
    listing = stub.ListDeliberations(pb.ListDeliberationsRequest(page_size=2, role_filter="DEV"), timeout=10)
    assert len(listing.deliberations) == 2 and listing.next_page_token
    created = [d.created_at_ms for d in listing.deliberations]
    assert created == sorted(created, reverse=True)
    done = stub.ListDeliberations(
        pb.ListDeliberationsRequest(status_filter=pb.DELIBERATION_STATUS_CANCELLED), timeout=10
    )
    assert done.deliberations and all(d.status == pb.DELIBERATION_STATUS_CANCELLED for d in done.deliberations)


@pytest.mark.skipif(
    shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed (CI installs it)"
)
def test_the_monitor_shows_deliberations_progressing_in_a_real_terminal(
    limited: ServeProcess, stub: pb_grpc.OrchestratorServiceStub, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_latency(2.0)  # each stage outlasts a few monitor refreshes, even on a loaded machine
    session = f"monitor-{uuid.uuid4().hex[:6]}"
    command = (
        f"env -u COLUMNS -u LINES {sys.executable} -m orchestrator monitor"
        f" --address {limited.address} --interval 0.5 --limit 5"
    )
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40", command], check=True, cwd=ROOT)
    try:
        # the monitor must be drawing before the run starts: on a loaded machine its start-up alone can
        # outlast the propose stage
        deadline = time.monotonic() + 60
        while "SERVING" not in capture(session) and time.monotonic() < deadline:
            time.sleep(0.2)
        task_id = submit(stub, rounds=1)
        screens = []
        watcher = threading.Thread(target=lambda: wait_status(stub, task_id, 60))
        watcher.start()
        while watcher.is_alive():
            screens.append(capture(session))
            time.sleep(0.5)
        time.sleep(1.5)
        screens.append(capture(session))
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    rows = [line for screen in screens for line in screen.splitlines() if task_id in line]
    assert any("IN_PROGRESS" in r and "propose" in r for r in rows), "\n".join(screens[-3:])
    assert any("IN_PROGRESS" in r and ("critique r1" in r or "revise r1" in r) for r in rows)
    assert "COMPLETED" in next(line for line in screens[-1].splitlines() if task_id in line)
    assert "agents alive 6" in screens[-1]


def capture(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True
    ).stdout


def test_the_monitor_explains_a_service_that_is_not_there() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "monitor", "--once", "--address", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "cannot reach the orchestrator at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr
