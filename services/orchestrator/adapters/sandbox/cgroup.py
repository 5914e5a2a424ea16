"""A bound on each run's memory and processes taken together, whatever they fork.

Where the host lets the service create cgroups, every run gets its own: cgroup v2 (`memory.max`,
`memory.swap.max` = 0, `pids.max`, `memory.oom.group` = 1 so an out-of-memory kill takes the whole run) or, on a
host still on the v1 hierarchies, the `memory` and `pids` controllers (`memory.limit_in_bytes`, and
`memory.memsw.limit_in_bytes` where swap accounting exists, `pids.max`). bwrap has no cgroup option: the sandbox
moves bwrap into the run's cgroup before bwrap has read its arguments (it blocks on them), so every process of the
run starts inside. The run's cgroups sit in one parent, by default `orchestrator-sandbox` next to the service's
own cgroup (v2: a sibling, as a cgroup with processes cannot hand controllers to children; v1: a child), or the
directory `SANDBOX_CGROUP` names (a delegated, writable cgroup). They are removed after the run.

Where none can be created (no write access to the hierarchy, a v2 tree without the memory or pids controller),
`Accounting` polls the run instead: the resident memory of all its processes, summed every `POLL_S`, and the
run is killed once the sum passes the bound. The process count then rests on RLIMIT_NPROC, which the kernel
counts per run (its own user namespace). Polling can be outrun by an allocation faster than `POLL_S` (each
process stays capped by RLIMIT_AS): a real cgroup is the bound to deploy with.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT_NAME = "orchestrator-sandbox"
POLL_S = 0.05
RMDIR_WAIT_S = 2.0
PAGE = os.sysconf("SC_PAGE_SIZE")
_counter = itertools.count()


@dataclass(frozen=True)
class RunCgroup:
    """One run's cgroup(s): the run's processes are put in `procs` files; `memory_dir` holds its memory stats."""

    procs: tuple[Path, ...]
    memory_dir: Path
    version: int
    dirs: tuple[Path, ...]

    def attach(self, pid: int) -> None:
        for procs in self.procs:
            procs.write_text(f"{pid}\n")

    def peak_bytes(self) -> int | None:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        return _read_int(self.memory_dir / name)

    def oom_killed(self) -> bool:
        if self.version == 2:
            events = _read_keyed(self.memory_dir / "memory.events")
            return events.get("oom_kill", 0) > 0 or events.get("oom_group_kill", 0) > 0
        control = _read_keyed(self.memory_dir / "memory.oom_control")
        return control.get("oom_kill", 0) > 0

    def close(self, wait_s: float = RMDIR_WAIT_S) -> list[Path]:
        """Kills what is left in the run's cgroups (nothing, normally: the PID namespace is gone) and removes them;
        returns those still busy after `wait_s` (processes not yet reaped), for a later sweep."""
        left = []
        for directory in self.dirs:
            if self.version == 2:
                with contextlib.suppress(OSError):
                    (directory / "cgroup.kill").write_text("1\n")
            for pid in _pids(directory):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if not _rmdir(directory, wait_s):
                left.append(directory)
        return left


class Cgroups:
    """Creates a cgroup per run under a parent it sets up once; `available` says whether this host lets it."""

    def __init__(self, parent: str = "") -> None:
        self.reason = ""
        self.version = 0
        self._parents: dict[str, Path] = {}
        self._stale: list[Path] = []
        try:
            self._setup(parent)
            if self.available:
                self.create(64 * 1024 * 1024, 8).close()  # a trial: the parent may exist but not be ours
                self.sweep()
        except OSError as exc:
            self.reason = f"cannot set up cgroups ({exc.strerror or exc}: {exc.filename or ''})".replace(": )", ")")
            self.version = 0

    @property
    def available(self) -> bool:
        return self.version != 0

    def describe(self) -> str:
        if not self.available:
            return f"no cgroup ({self.reason}); per-run accounting instead"
        where = ", ".join(str(p) for p in self._parents.values())
        return f"cgroup v{self.version} under {where}"

    def release(self, run: RunCgroup) -> None:
        """Removes a run's cgroups; any still busy are retried at the next run."""
        self._stale = [d for d in self._stale if not _rmdir(d, 0)] + run.close(wait_s=0)

    def sweep(self) -> None:
        """Removes run cgroups left empty by runs of processes that no longer exist (a crash, a kill -9)."""
        for parent in self._parents.values():
            with contextlib.suppress(OSError):
                for child in parent.iterdir():
                    owner = child.name.split("-")
                    ours = child.is_dir() and len(owner) > 1 and owner[0] == "run" and owner[1].isdigit()
                    if ours and not _alive(int(owner[1])) and not _pids(child):
                        _rmdir(child, 0)

    def create(self, memory_bytes: int, max_processes: int) -> RunCgroup:
        name = f"run-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:8]}"
        if self.version == 2:
            run = self._parents["unified"] / name
            run.mkdir()
            try:
                _write(run / "memory.max", memory_bytes)
                _write(run / "memory.swap.max", 0, optional=True)
                _write(run / "memory.oom.group", 1, optional=True)
                _write(run / "pids.max", max_processes)
            except OSError:
                RunCgroup((), run, 2, (run,)).close()
                raise
            return RunCgroup((run / "cgroup.procs",), run, 2, (run,))
        memory, pids = self._parents["memory"] / name, self._parents["pids"] / name
        made: list[Path] = []
        try:
            for directory in (memory, pids):
                directory.mkdir()
                made.append(directory)
            _write(memory / "memory.limit_in_bytes", memory_bytes)
            _write(memory / "memory.memsw.limit_in_bytes", memory_bytes, optional=True)
            _write(memory / "memory.swappiness", 0, optional=True)
            _write(pids / "pids.max", max_processes)
        except OSError:
            RunCgroup((), memory, 1, tuple(made)).close()
            raise
        return RunCgroup((memory / "cgroup.procs", pids / "cgroup.procs"), memory, 1, (memory, pids))

    def _setup(self, configured: str) -> None:
        own = _own_cgroups()
        unified = CGROUP_ROOT / "cgroup.controllers"
        if unified.exists():
            controllers = unified.read_text().split()
            if "memory" in controllers and "pids" in controllers:
                self._setup_v2(configured, own.get("", "/"))
                return
            self.reason = "cgroup v2 without the memory and pids controllers"
            return
        if (CGROUP_ROOT / "memory").is_dir() and (CGROUP_ROOT / "pids").is_dir():
            for controller in ("memory", "pids"):
                base = (
                    Path(configured.replace("%c", controller))
                    if configured
                    else CGROUP_ROOT / controller / own.get(controller, "/").lstrip("/") / PARENT_NAME
                )
                base.mkdir(exist_ok=True)
                self._parents[controller] = base
            self.version = 1
            return
        self.reason = "no cgroup hierarchy with memory and pids at /sys/fs/cgroup"

    def _setup_v2(self, configured: str, own: str) -> None:
        if configured:
            parent = Path(configured)
        else:
            mine = CGROUP_ROOT / own.lstrip("/")
            parent = (mine.parent if mine != CGROUP_ROOT else mine) / PARENT_NAME
        parent.mkdir(exist_ok=True)
        available = (parent / "cgroup.controllers").read_text().split()
        if "memory" not in available or "pids" not in available:
            self.reason = f"{parent} is not offered the memory and pids controllers (only: {' '.join(available)})"
            return
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        missing = [f"+{c}" for c in ("memory", "pids") if c not in enabled]
        if missing:
            (parent / "cgroup.subtree_control").write_text(" ".join(missing) + "\n")
        self._parents["unified"] = parent
        self.version = 2


class Accounting:
    """The fallback bound: sums the resident memory of a run's processes (the sandbox's PID 1 and its
    descendants) every POLL_S and calls `kill()` once it passes `memory_bytes`."""

    def __init__(self, memory_bytes: int) -> None:
        self.memory_bytes = memory_bytes
        self.peak_bytes = 0
        self.exceeded = False

    async def watch(self, root_pid: Callable[[], int | None], kill: Callable[[], object]) -> None:
        while True:
            pid = root_pid()
            if pid is not None:
                used = await asyncio.to_thread(resident_bytes, pid)
                self.peak_bytes = max(self.peak_bytes, used)
                if used > self.memory_bytes:
                    self.exceeded = True
                    kill()
                    return
            await asyncio.sleep(POLL_S)


def resident_bytes(root: int) -> int:
    """Resident memory of `root` and all its descendants (threads share their process's)."""
    total, seen, pending = 0, set(), [root]
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            for task in os.listdir(f"/proc/{pid}/task"):
                children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                pending.extend(int(c) for c in children)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return total


def _own_cgroups() -> dict[str, str]:
    """controller -> this process's cgroup path ("" for the v2 hierarchy)."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                found[controller] = path
    return found


def _rmdir(directory: Path, wait_s: float) -> bool:
    """Whether `directory` is gone (removed now, or already), retrying while it is busy for up to `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            directory.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pids(directory: Path) -> list[int]:
    try:
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _write(path: Path, value: int, *, optional: bool = False) -> None:
    try:
        path.write_text(f"{value}\n")
    except FileNotFoundError:
        if not optional:
            raise
    except OSError:
        if not optional:
            raise


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _read_keyed(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                values[key] = int(value)
    return values
