"""Runs started ahead of their job (`BwrapSandbox.start`, `execution.WarmRuns`), in the real bubblewrap sandbox: a
job given to one runs exactly as in a run started for it, nothing of a run started ahead outlives it, used or
not, and the verifier starts the next stage's runs and takes them."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from orchestrator.adapters.checks.execution import RUN_LIMITS, ExecutionVerifier, WarmRuns, run_units
from orchestrator.adapters.sandbox import BwrapSandbox
from orchestrator.adapters.sandbox.bwrap import StartedRun
from orchestrator.domain.evidence import CheckUnit, UnitSource, specification
from orchestrator.domain.execution import SandboxLimits
from orchestrator.testing.evidence_task import CORRECT, NO_LOWER, OFF_BY_ONE, TASK
from orchestrator.testing.sandbox_required import CountingSandbox, working_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]

ECHO = {"echo.py": "import sys\nsys.stdout.write(sys.stdin.read())\n"}
COMMAND = ["python3", "-I", "-S", "echo.py"]
LIMITS = SandboxLimits(cpu_seconds=5, wall_seconds=10, max_processes=16)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[BwrapSandbox]:
    yield await working_sandbox()


def _held(started: object) -> tuple[asyncio.subprocess.Process, list[Path]]:
    """bwrap's process and the run's cgroup directories."""
    assert isinstance(started, StartedRun)
    launched = started._launched
    assert launched is not None
    return launched.proc, list(launched.cgroup.dirs) if launched.cgroup is not None else []


def _gone(started: object) -> bool:
    """bwrap has exited and, within a second (the kernel lists a process that is exiting a moment longer), no
    process is left in the run's cgroup (removed, or left empty for the next run's sweep)."""
    proc, dirs = _held(started)
    deadline = time.monotonic() + 1.0
    while any(_members(d) for d in dirs) and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc.returncode is not None and not any(_members(d) for d in dirs)


def _members(directory: Path) -> list[str]:
    try:
        return (directory / "cgroup.procs").read_text().split()
    except FileNotFoundError:
        return []


async def test_a_started_run_gets_the_stdin_it_is_given_and_a_plain_run_an_empty_one(sandbox: BwrapSandbox) -> None:
    started = await sandbox.start(ECHO, COMMAND, LIMITS)
    assert started.alive
    execution = await started.run(b"the job")
    assert execution.passed and execution.stdout == "the job", execution
    assert not started.alive and _gone(started)
    with pytest.raises(RuntimeError):
        await started.run(b"again")
    plain = await sandbox.run(ECHO, COMMAND, LIMITS)
    assert plain.passed and plain.stdout == ""


async def test_a_started_run_never_used_is_closed_with_all_it_held(sandbox: BwrapSandbox) -> None:
    started = await sandbox.start(ECHO, COMMAND, LIMITS)
    proc, dirs = _held(started)
    assert proc.returncode is None and all(d.exists() for d in dirs)
    await started.close()
    assert _gone(started)
    await started.close()  # a second close does nothing


async def test_the_wall_limit_counts_from_the_job_not_from_the_start(sandbox: BwrapSandbox) -> None:
    limits = SandboxLimits(cpu_seconds=5, wall_seconds=1, max_processes=16)
    started = await sandbox.start(ECHO, COMMAND, limits)
    await asyncio.sleep(1.5)
    execution = await started.run(b"late")
    assert execution.passed and execution.stdout == "late", execution


SOLUTION = "def clamp(x, low, high):\n    return max(low, min(x, high))\n"
UNITS = [
    CheckUnit("example-1", UnitSource.EXAMPLE, "assert clamp(5, 0, 10) == 5"),
    CheckUnit("example-2", UnitSource.EXAMPLE, "assert clamp(12, 0, 10) == 11"),
    CheckUnit("acceptance-1", UnitSource.ACCEPTANCE, "import os\nos._exit(0)\nassert clamp(1, 0, 2) == 1"),
    # The supervisor's stdin carried the key: a unit finds neither its own stdin nor the supervisor's readable.
    CheckUnit(
        "acceptance-2",
        UnitSource.ACCEPTANCE,
        "import os, sys\n"
        "def _peek(path):\n    try:\n        return open(path, 'rb').read()\n    except OSError:\n        return b''\n"
        "assert sys.stdin.read() == '' and _peek(f'/proc/{os.getppid()}/fd/0') == b''",
    ),
    # A block that kills its supervisor (alone in its block: a unit of the same block running beside it could
    # report before the kill or not, by timing alone).
    CheckUnit("a:test-1", UnitSource.AGENT, "import os\n_ = os.kill(os.getppid(), 9)\nassert 1", "a"),
    CheckUnit("d:test-1", UnitSource.AGENT, "assert clamp(1, 0, 2) == 1", "d"),
    CheckUnit("b:test-1", UnitSource.AGENT, "import builtins\nbuiltins.max = min\nassert clamp(0, 0, 10) == 0", "b"),
    CheckUnit("c:test-1", UnitSource.AGENT, "assert clamp(-3, 0, 10) == 0", "c"),
]


async def test_a_job_runs_in_a_run_started_ahead_exactly_as_in_one_started_for_it(sandbox: BwrapSandbox) -> None:
    cold = await run_units(sandbox, SOLUTION, UNITS)
    pool = WarmRuns(sandbox, RUN_LIMITS)
    pool.fill(3)
    await pool.settled()
    assert pool.ready == 3
    try:
        warm = await run_units(sandbox, SOLUTION, UNITS, warm=pool)
    finally:
        await pool.aclose()
    assert pool.taken == 2  # the block that killed its supervisor cost one more run, itself started ahead
    assert [(o.test_id, o.passed, o.failure) for o in warm] == [(o.test_id, o.passed, o.failure) for o in cold]
    passed = {o.test_id: o.passed for o in warm}
    expected = {"example-1": True, "example-2": False, "acceptance-1": False, "acceptance-2": True}
    assert passed == expected | {"a:test-1": False, "d:test-1": True, "b:test-1": True, "c:test-1": True}


async def test_runs_left_unused_expire_and_are_closed(sandbox: BwrapSandbox) -> None:
    pool = WarmRuns(sandbox, RUN_LIMITS, ttl_s=0.3)
    pool.fill(2)
    await pool.settled()
    runs = list(pool._ready)
    assert pool.ready == 2 and not any(_gone(r) for r in runs)
    await asyncio.sleep(0.6)
    assert pool.ready == 0 and pool.take() is None
    await pool.aclose()  # waits for the closing
    assert all(_gone(r) for r in runs)


async def test_a_run_whose_sandbox_ended_is_never_taken(sandbox: BwrapSandbox) -> None:
    pool = WarmRuns(sandbox, RUN_LIMITS)
    pool.fill(1)
    await pool.settled()
    (run,) = list(pool._ready)
    proc, _ = _held(run)
    os.killpg(proc.pid, 9)
    await asyncio.wait_for(proc.wait(), 10)
    assert pool.take() is None
    await pool.aclose()
    assert _gone(run)


async def test_closing_the_pool_stops_the_runs_starting_and_closes_the_ready_ones(sandbox: BwrapSandbox) -> None:
    pool = WarmRuns(sandbox, RUN_LIMITS)
    pool.fill(2)
    await pool.settled()
    ready = list(pool._ready)
    pool.fill(4)  # two more, still starting when the pool closes
    await pool.aclose()
    assert pool.ready == 0 and all(_gone(r) for r in ready)
    assert not _children_named(b"bwrap")


def _children_named(name: bytes) -> list[int]:
    """This process's children whose command is `name` (bwrap is started directly by the sandbox)."""
    found = []
    for task in os.listdir("/proc/self/task"):
        for pid in Path(f"/proc/self/task/{task}/children").read_text().split():
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(name):
                    found.append(int(pid))
            except OSError:
                continue
    return found


async def test_the_verifier_starts_the_next_stages_runs_and_takes_them(sandbox: BwrapSandbox) -> None:
    verifier = ExecutionVerifier(sandbox, warm=True, verdicts=0)  # the same proposals twice: run them again
    assert verifier.warm is not None
    spec = specification(TASK, "", "")
    proposals = {"agent-1": OFF_BY_ONE, "agent-2": CORRECT, "agent-3": NO_LOWER}
    try:
        first = await verifier.verify(spec, proposals, 0)
        assert verifier.warm.taken == 0
        await verifier.warm.settled()
        assert verifier.warm.ready == 3
        second = await verifier.verify(spec, proposals, 1)
        assert verifier.warm.taken == 3
    finally:
        await verifier.aclose()
    assert verifier.warm.ready == 0
    for author in proposals:
        assert [(o.test_id, o.passed) for o in second[author].outcomes] == [
            (o.test_id, o.passed) for o in first[author].outcomes
        ]
    assert first["agent-2"].outcomes and all(o.passed for o in first["agent-2"].outcomes)


async def test_a_sandbox_that_cannot_start_ahead_runs_each_job_as_before(sandbox: BwrapSandbox) -> None:
    verifier = ExecutionVerifier(CountingSandbox(sandbox), warm=True)
    assert verifier.warm is None
    found = await verifier.verify(specification(TASK, "", ""), {"agent-2": CORRECT}, 0)
    assert found["agent-2"].outcomes and all(o.passed for o in found["agent-2"].outcomes)
    assert ExecutionVerifier(sandbox).warm is None  # off unless asked for
