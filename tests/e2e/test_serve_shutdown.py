"""SIGTERM with work in flight, and what a local Ray started by `orchestrator serve` leaves on the machine: the
process exits 0 within its grace, takes every process it started with it, binds only loopback, and a restart on
the same store finishes every interrupted run exactly once."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.testing.fake_llm import FakeLLMServer
from tests.e2e.conftest import ServeProcess, serve_env
from tests.e2e.test_serve_nats import events

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

GRACE_S = 3
TASK = "Write a Python function that merges two sorted lists"
Process = tuple[int, int]
"""(pid, start time in clock ticks): a pid the kernel hands out again is not the same process."""


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the state on; the name may hold spaces


def descendants(root: int) -> set[Process]:
    """Every live process below `root`, read from /proc."""
    children: dict[int, list[Process]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append((int(entry), int(fields[19])))
    found: set[Process] = set()
    frontier = [root]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child[0])
    return found


def running(process: Process) -> bool:
    fields = _stat(process[0])
    return fields is not None and fields[0] != "Z" and int(fields[19]) == process[1]


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


def listening_addresses(pids: set[int]) -> dict[str, str]:
    """Local address of every listening TCP socket the given processes hold -> the holder's command line."""
    inodes: dict[str, int] = {}
    for pid in pids:
        with_fds = Path(f"/proc/{pid}/fd")
        try:
            fds = list(with_fds.iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    found: dict[str, str] = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                found[_address(local)] = command(inodes[inode])
    return found


def _address(hex_address: str) -> str:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = ".".join(str(b) for b in reversed(raw))
    else:  # IPv6: four little-endian 32-bit words
        words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
        joined = b"".join(words)
        ip = ":".join(joined[i : i + 2].hex() for i in range(0, 16, 2))
    return f"{ip}:{int(port, 16)}"


def loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0]
    return (
        host.startswith("127.")
        or host
        in (
            "0000:0000:0000:0000:0000:0000:0000:0001",  # ::1
        )
        or host.startswith("0000:0000:0000:0000:0000:ffff:7f")
    )  # ::ffff:127.x.x.x


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """Ray's temporary root for this test alone, short enough for Ray's socket paths."""
    with tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp") as path:
        yield Path(path)


def start_serve(fake_llm: FakeLLMServer, work: Path, ray_tmp: Path, **extra: str) -> ServeProcess:
    env = serve_env(fake_llm, work, SHUTDOWN_GRACE=str(GRACE_S), RAY_TMPDIR=str(ray_tmp), **extra)
    process = ServeProcess(env, work / "serve.log")
    process.start()
    return process


def sessions(ray_tmp: Path) -> list[str]:
    """Ray's session directories (and its `session_latest` link to the newest)."""
    return sorted(p.name for p in (ray_tmp / "ray").glob("session_*"))


def log_events(log: Path, name: str) -> list[dict[str, object]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


def test_a_local_ray_binds_loopback_starts_quietly_and_leaves_nothing_behind(
    fake_llm: FakeLLMServer, tmp_path: Path, ray_tmp: Path
) -> None:
    process = start_serve(fake_llm, tmp_path, ray_tmp)
    try:
        assert process.proc is not None
        with grpc.insecure_channel(process.address) as ch:  # agents running: their workers listen too
            pb_grpc.OrchestratorServiceStub(ch).CreateCouncil(pb.CreateCouncilRequest(role="DEV"), timeout=120)
        started = descendants(process.proc.pid)
        listening = listening_addresses({process.proc.pid} | {pid for pid, _ in started})
        assert len(listening) > 3  # the gRPC port, Ray's GCS, raylet, workers, ...
        assert {a: c for a, c in listening.items() if not loopback(a)} == {}
        assert len(sessions(ray_tmp)) == 2  # this start's directory, and session_latest
    finally:
        code = process.stop(signal.SIGTERM)
    assert code == 0
    output = process.log_path.read_text(errors="replace")
    assert "fork_posix" not in output
    assert "SIGTERM handler is not set" not in output
    assert sessions(ray_tmp) == []


def test_sigterm_with_five_runs_in_flight_exits_cleanly_and_a_restart_finishes_each_once(
    fake_llm: FakeLLMServer, nats_server: NatsServer, tmp_path: Path, ray_tmp: Path
) -> None:
    fake_llm.set_latency(1.0)  # a run takes ~5 s: some finish within the grace, the others are interrupted
    process = start_serve(fake_llm, tmp_path, ray_tmp, ENABLE_NATS="true", NATS_URL=nats_server.url)
    assert process.proc is not None
    prefix = f"sd-{uuid.uuid4().hex[:6]}"
    task_ids = [f"{prefix}-{i}" for i in range(5)]
    with grpc.insecure_channel(process.address) as ch:
        stub = pb_grpc.OrchestratorServiceStub(ch)
        stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV", num_agents=3), timeout=120)
        for task_id in task_ids:
            request = pb.DeliberateRequest(task_id=task_id, task_description=TASK, role="DEV", rounds=1)
            stub.SubmitDeliberation(request, timeout=30)
    assert fake_llm.wait_for_calls(10, timeout=30)  # the runs are under way
    started = descendants(process.proc.pid)
    assert any("raylet" in command(pid) for pid, _ in started)

    sent = time.monotonic()
    process.proc.send_signal(signal.SIGTERM)
    code = process.proc.wait(GRACE_S + 5)
    took = time.monotonic() - sent

    assert code == 0, process.log_tail()
    assert took <= GRACE_S + 5
    output = process.log_path.read_text(errors="replace")
    assert "SIGTERM received" not in output  # no fatal-signal stack dump
    assert log_events(process.log_path, "stopped")
    deadline = time.monotonic() + 3  # processes that were killed are reaped by now, ones left run on
    while (left := [p for p in started if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [command(pid) for pid, _ in left] == []
    assert sessions(ray_tmp) == []

    process.start()
    try:
        with grpc.insecure_channel(process.address) as ch:
            stub = pb_grpc.OrchestratorServiceStub(ch)
            deadline = time.monotonic() + 90
            statuses: dict[str, int] = {}
            while time.monotonic() < deadline:
                statuses = {
                    t: stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id=t), timeout=10).status
                    for t in task_ids
                }
                if all(s == pb.DELIBERATION_STATUS_COMPLETED for s in statuses.values()):
                    break
                time.sleep(0.5)
        assert set(statuses.values()) == {pb.DELIBERATION_STATUS_COMPLETED}, statuses
    finally:
        assert process.stop(signal.SIGTERM) == 0
    finished = [e["deliberation_id"] for e in log_events(process.log_path, "deliberation_finished")]
    assert sorted(t for t in finished if str(t).startswith(prefix)) == task_ids  # each ran to its end once
    completed = [
        e[2]["payload"]["task_id"]
        for e in events(nats_server.url, "orchestration.deliberation.completed")
        if str(e[2]["payload"].get("task_id", "")).startswith(prefix)
    ]
    assert sorted(completed) == task_ids
