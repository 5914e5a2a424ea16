"""The bubblewrap sandbox against the real kernel: code that does its job, and code that tries to get out.
Every escape attempt must be contained; the whole file runs in well under a minute."""

from __future__ import annotations

import ast
import asyncio
import os
import signal
import socket
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from orchestrator.adapters.sandbox import BwrapConfig, BwrapSandbox, UnsandboxedRunner, open_sandbox
from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.execution import Execution, ExecutionOutcome, SandboxLimits
from orchestrator.testing.sandbox_required import sandbox_missing

# A loop of its own: tasks that other modules leave on the session loop (a consumer retrying a closed NATS
# connection, say) must not share it with the kill-and-reap timing checked here.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="module")]

QUICK = SandboxLimits(cpu_seconds=2, wall_seconds=5, memory_bytes=256 * 1024 * 1024, max_processes=32)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[BwrapSandbox]:
    sandbox = BwrapSandbox()
    availability = await sandbox.probe()
    if not availability.available:
        sandbox_missing(availability.reason)
    yield sandbox


SLEEPER = (
    "import os, sys\nos.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(1000)', *sys.argv[1:]])\n"
)
"""A process that sleeps with its arguments (a marker) on its command line: `python3 sleeper.py MARKER`."""


async def python(sandbox: BwrapSandbox, code: str, limits: SandboxLimits = QUICK, *args: str) -> Execution:
    return await sandbox.run({"main.py": textwrap.dedent(code)}, ["python3", "main.py", *args], limits)


def processes_with(marker: str) -> list[int]:
    """Host PIDs whose command line contains `marker` (the host sees the sandbox's processes too)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry))
    return found


# --- what it is for ---------------------------------------------------------------------------------------


async def test_python_runs_a_file_and_its_stdout_and_exit_code_come_back(sandbox: BwrapSandbox) -> None:
    execution = await python(sandbox, "import os; print('hello from', os.getcwd()); raise SystemExit(3)")

    assert execution.outcome is ExecutionOutcome.EXITED
    assert execution.exit_code == 3
    assert execution.stdout == "hello from /work\n"
    assert not execution.passed and not execution.truncated


async def test_a_failing_test_reports_its_traceback_on_stderr(sandbox: BwrapSandbox) -> None:
    files = {"solution.py": "def add(a, b):\n    return a - b\n", "tests/test_add.py": "from solution import add\n"}
    files["tests/test_add.py"] += "assert add(2, 2) == 4, 'add is wrong'\n"

    execution = await sandbox.run(files, ["python3", "-c", "import runpy; runpy.run_path('tests/test_add.py')"], QUICK)

    assert execution.exit_code == 1
    assert "AssertionError: add is wrong" in execution.stderr


async def test_passing_code_passes_and_bytes_files_arrive_unchanged(sandbox: BwrapSandbox) -> None:
    data = bytes(range(256)) * 100
    check = "data = open('blob.bin', 'rb').read()\nassert data == bytes(range(256)) * 100, len(data)\n"
    files: dict[str, str | bytes] = {"blob.bin": data, "check.py": check}

    execution = await sandbox.run(files, ["python3", "check.py"], QUICK)

    assert execution.passed, execution.stderr


async def test_stdin_is_empty(sandbox: BwrapSandbox) -> None:
    execution = await python(sandbox, "import sys; print(repr(sys.stdin.read()))")

    assert execution.stdout == "''\n"


async def test_a_file_larger_than_the_file_size_limit_cannot_be_written(sandbox: BwrapSandbox) -> None:
    limits = SandboxLimits(wall_seconds=5, max_file_bytes=1024 * 1024)
    code = """
        try:
            with open('big', 'wb') as f:
                f.write(b'x' * (2 * 1024 * 1024))
            print('wrote it')
        except OSError as exc:
            print('refused', exc.errno)
    """
    execution = await python(sandbox, code, limits)

    assert execution.stdout.startswith("refused 27"), execution  # EFBIG
    assert execution.passed


async def test_paths_outside_the_work_dir_are_refused(sandbox: BwrapSandbox) -> None:
    for name in ("../escape.py", "/etc/escape.py", ""):
        with pytest.raises(InvalidArgumentError, match="work dir"):
            await sandbox.run({name: "x"}, ["true"], QUICK)


# --- escape attempts --------------------------------------------------------------------------------------


async def test_network_connections_to_a_server_on_the_host_fail(sandbox: BwrapSandbox) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        code = f"""
            import socket
            for host in ('127.0.0.1', 'localhost', '10.0.0.1', '1.1.1.1'):
                try:
                    socket.create_connection((host, {port}), timeout=2).close()
                    print('CONNECTED', host)
                except OSError as exc:
                    print('blocked', host, type(exc).__name__)
        """
        execution = await python(sandbox, code)

        assert "CONNECTED" not in execution.stdout
        assert execution.stdout.count("blocked") == 4, execution
        with pytest.raises(BlockingIOError):
            server.accept()


async def test_writes_outside_the_work_dir_fail_or_never_reach_the_host(sandbox: BwrapSandbox, tmp_path: Path) -> None:
    marker = f"escape-{uuid.uuid4().hex}"
    read_only = ["/etc", "/usr", "/root", "/", "/var/tmp"]
    elsewhere = [str(tmp_path), str(Path.cwd()), "/tmp"]
    code = f"""
        import os, sys
        for folder in sys.argv[1:]:
            path = os.path.join(folder, {marker!r})
            try:
                os.makedirs(folder, exist_ok=True)
                with open(path, 'w') as f:
                    f.write('escaped')
                print('wrote', folder)
            except OSError as exc:
                print('refused', folder, exc.strerror)
    """
    execution = await python(sandbox, code, QUICK, *read_only, *elsewhere)

    for folder in read_only:
        assert f"refused {folder} " in execution.stdout, execution.stdout
    for folder in read_only + elsewhere:
        assert not (Path(folder) / marker).exists(), folder


async def test_the_services_environment_is_not_visible_inside(
    sandbox: BwrapSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = f"canary-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("ORCHESTRATOR_TEST_CANARY", canary)
    monkeypatch.setenv("VLLM_API_KEY", canary)
    code = """
        import os, sys
        print(sorted(os.environ))
        print(dict(os.environ))
        for pid in [p for p in os.listdir('/proc') if p.isdigit()] + [sys.argv[1], sys.argv[2]]:
            try:
                print(pid, open(f'/proc/{pid}/environ', 'rb').read())
            except OSError as exc:
                print(pid, 'unreadable', exc.strerror)
    """
    execution = await python(sandbox, code, QUICK, str(os.getpid()), str(os.getppid()))

    assert canary not in execution.stdout + execution.stderr
    assert execution.stdout.splitlines()[0] == "['HOME', 'LANG', 'PATH', 'PWD']"
    assert execution.passed, execution.stderr


async def test_host_processes_are_not_visible_inside(sandbox: BwrapSandbox) -> None:
    execution = await python(sandbox, "import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")

    assert max(ast.literal_eval(execution.stdout)) < 10  # its own few: bwrap's init and the command


async def test_a_fork_bomb_is_stopped_by_the_process_limit(sandbox: BwrapSandbox) -> None:
    code = """
        import os, time
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(3)
                    os._exit(0)
                children += 1
        except OSError as exc:
            print('stopped after', children, exc.strerror)
    """
    limits = SandboxLimits(wall_seconds=5, max_processes=16)
    execution = await python(sandbox, code, limits)

    assert execution.stdout.startswith("stopped after"), execution
    assert int(execution.stdout.split()[2]) < 16


async def test_a_fork_bomb_that_never_stops_ends_and_leaves_nothing_behind(sandbox: BwrapSandbox) -> None:
    marker = f"forkbomb-{uuid.uuid4().hex}"
    limits = SandboxLimits(wall_seconds=3, max_processes=32)
    started = time.monotonic()
    code = """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """

    execution = await python(sandbox, code, limits, marker)

    assert time.monotonic() - started < 8
    assert execution.outcome in {ExecutionOutcome.TIMED_OUT, ExecutionOutcome.KILLED}, execution
    assert processes_with(marker) == []


async def test_a_memory_bomb_fails_with_memory_error(sandbox: BwrapSandbox) -> None:
    code = """
        hoard = []
        while True:
            hoard.append(bytearray(16 * 1024 * 1024))
    """
    execution = await python(sandbox, code, SandboxLimits(wall_seconds=10, memory_bytes=128 * 1024 * 1024))

    assert execution.exit_code == 1
    assert "MemoryError" in execution.stderr


async def test_an_infinite_loop_is_stopped_at_the_cpu_limit(sandbox: BwrapSandbox) -> None:
    execution = await python(sandbox, "while True: pass", SandboxLimits(cpu_seconds=1, wall_seconds=10))

    assert execution.timed_out
    assert execution.killed_by_signal == signal.SIGXCPU
    assert execution.wall_ms < 8000  # 1 s of CPU; the rest is a busy shared CI machine


async def test_a_sleeping_run_is_killed_at_the_wall_deadline(sandbox: BwrapSandbox) -> None:
    execution = await python(
        sandbox, "import time; print('waiting', flush=True); time.sleep(60)", SandboxLimits(wall_seconds=2)
    )
    fast = await python(sandbox, "import time; time.sleep(60)", SandboxLimits(wall_seconds=1))

    assert execution.timed_out and execution.stdout == "waiting\n"
    assert fast.timed_out and fast.exit_code is None
    assert 900 < fast.wall_ms < 4000


async def test_a_flood_of_output_is_capped_and_marked_truncated(sandbox: BwrapSandbox) -> None:
    code = """
        import sys
        while True:
            sys.stdout.write('flood ' * 1000)
            sys.stderr.write('err ' * 1000)
    """
    execution = await python(sandbox, code, SandboxLimits(wall_seconds=10, max_output_bytes=10_000))

    assert execution.outcome is ExecutionOutcome.OUTPUT_LIMIT
    assert execution.truncated
    assert len(execution.stdout) <= 10_000 and len(execution.stderr) <= 10_000
    assert execution.wall_ms < 5000


async def test_children_left_behind_are_gone_when_run_returns(sandbox: BwrapSandbox) -> None:
    marker = f"left-behind-{uuid.uuid4().hex}"
    script = """
        import os, signal, subprocess, sys, time
        marker = sys.argv[1]
        sleeper = [sys.executable, "sleeper.py"]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        ignore_hup = lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)
        subprocess.Popen([*sleeper, marker + "-nohup"], preexec_fn=ignore_hup, **quiet)
        subprocess.Popen([*sleeper, marker + "-setsid"], start_new_session=True, **quiet)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [*sleeper, marker + "-double-fork"])
            os._exit(0)
        time.sleep(1.5)
    """
    files = {"run.py": textwrap.dedent(script), "sleeper.py": SLEEPER}
    run = asyncio.create_task(sandbox.run(files, ["python3", "run.py", marker], QUICK))
    seen: set[int] = set()
    while not run.done():
        seen.update(processes_with(marker))
        await asyncio.sleep(0.05)
    execution = await run

    assert execution.passed, execution
    assert len(seen) >= 3, "the check must see the sleepers while the run is alive"
    assert processes_with(marker) == []


async def test_children_left_behind_are_gone_after_a_timeout(sandbox: BwrapSandbox) -> None:
    marker = f"timed-out-{uuid.uuid4().hex}"
    script = """
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "sleeper.py", sys.argv[1]], start_new_session=True)
        subprocess.Popen([sys.executable, "sleeper.py", sys.argv[1]])
        time.sleep(100)
    """
    files = {"run.py": textwrap.dedent(script), "sleeper.py": SLEEPER}

    execution = await sandbox.run(files, ["python3", "run.py", marker], SandboxLimits(wall_seconds=2))

    assert execution.timed_out, execution
    assert processes_with(marker) == []


async def test_cancelling_a_run_leaves_nothing_behind(sandbox: BwrapSandbox) -> None:
    marker = f"cancelled-{uuid.uuid4().hex}"
    run = asyncio.create_task(sandbox.run({"sleeper.py": SLEEPER}, ["python3", "sleeper.py", marker], QUICK))
    for _ in range(100):
        if processes_with(marker):
            break
        await asyncio.sleep(0.05)
    assert processes_with(marker), "the sleeper must be running before the run is cancelled"
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, 15)  # a cancelled run must end at once; never wait out the test timeout

    for _ in range(200):  # the group is killed at once; on a loaded machine the kernel may take a few seconds to reap
        if not processes_with(marker):
            break
        await asyncio.sleep(0.05)
    assert processes_with(marker) == []


async def test_cancelling_a_run_while_its_process_is_being_started_leaves_nothing_behind(
    sandbox: BwrapSandbox,
) -> None:
    """The cancellation lands inside asyncio's process creation (bwrap is forked, its pipes not yet connected):
    the run still ends at once and the sandbox it had started is killed, not left running."""
    marker = f"cancelled-early-{uuid.uuid4().hex}"
    run = asyncio.create_task(sandbox.run({"sleeper.py": SLEEPER}, ["python3", "sleeper.py", marker], QUICK))
    for _ in range(3):
        await asyncio.sleep(0)  # the run forks bwrap and waits for its pipes
    time.sleep(2)  # noqa: ASYNC251 - a busy loop: bwrap runs on before asyncio has connected the pipes
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, 15)

    await asyncio.sleep(3)  # what was started has had time to exec the command, had it survived
    for _ in range(200):
        if not processes_with(marker):
            break
        await asyncio.sleep(0.05)
    assert processes_with(marker) == []


async def test_concurrent_runs_each_get_their_own_process_limit(sandbox: BwrapSandbox) -> None:
    bomb = """
        import os, time
        while True:
            try:
                os.fork() or time.sleep(2)
            except OSError:
                break
    """
    limits = SandboxLimits(wall_seconds=5, max_processes=16)

    results = await asyncio.gather(
        python(sandbox, bomb, limits),
        python(sandbox, "import subprocess, sys; subprocess.run([sys.executable, '-c', 'pass'], check=True)"),
    )

    assert results[1].passed, results[1]


# --- no sandbox -------------------------------------------------------------------------------------------


async def test_a_bwrap_that_cannot_create_namespaces_makes_the_probe_say_unavailable(tmp_path: Path) -> None:
    refusing = tmp_path / "bwrap"
    refusing.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    refusing.chmod(0o755)
    broken = BwrapSandbox(BwrapConfig(bwrap=str(refusing), run_as_uid=None))

    availability = await broken.probe()
    execution = await broken.run({"main.py": "print(1)"}, ["python3", "main.py"], QUICK)

    assert not availability.available
    assert "No permissions to create new namespace" in availability.reason
    assert execution.skipped and "No permissions" in execution.detail


async def test_bin_false_as_bwrap_is_reported_unavailable_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    broken = BwrapSandbox(BwrapConfig(bwrap="/bin/false"))

    availability = await broken.probe()
    execution = await broken.run({}, ["touch", str(marker)], QUICK)

    assert not availability.available and "exit 1" in availability.reason
    assert execution.outcome is ExecutionOutcome.SKIPPED
    assert not marker.exists()


async def test_a_missing_bwrap_binary_is_reported_unavailable() -> None:
    availability = await BwrapSandbox(BwrapConfig(bwrap="/nonexistent/bwrap")).probe()

    assert not availability.available and "not found" in availability.reason


async def test_without_a_sandbox_runs_are_skipped_unless_the_unsafe_setting_is_on() -> None:
    broken = BwrapConfig(bwrap="/bin/false")

    safe = await open_sandbox(config=broken)
    unsafe = await open_sandbox(config=broken, allow_unsandboxed=True)
    skipped = await safe.run({"main.py": "print('ran')"}, ["python3", "main.py"], QUICK)
    ran = await unsafe.run({"main.py": "print('ran')"}, ["python3", "main.py"], QUICK)

    assert not safe.availability().available and skipped.skipped
    assert isinstance(unsafe, UnsandboxedRunner) and unsafe.availability().unsafe
    assert ran.passed and ran.stdout == "ran\n"


async def test_the_unsafe_runner_still_enforces_the_deadline_and_the_output_cap() -> None:
    runner = UnsandboxedRunner("test")

    slow = await runner.run({}, ["sleep", "30"], SandboxLimits(wall_seconds=0.5))
    loud = await runner.run({}, ["yes"], SandboxLimits(wall_seconds=5, max_output_bytes=1000))

    assert slow.timed_out and loud.outcome is ExecutionOutcome.OUTPUT_LIMIT and len(loud.stdout) == 1000
