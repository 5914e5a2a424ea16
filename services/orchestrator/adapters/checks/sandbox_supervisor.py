"""The trusted supervisor of one execution run, inside the sandbox (`python3 -I -S sandbox_supervisor.py`).

It never loads the code under test. It makes itself non-dumpable (so processes of the same uid can neither read
its memory nor open its file descriptors through /proc), reads a per-run key and the job (the solution, the task's
import lines, the units) from the work dir's `key` and `job.json`, deleting both, or, when there are none (a run
started ahead of its job, waiting with its imports done), from stdin up to its end, and compiles the job's code
(compiling runs none of it). Then, source by source (the specification's units, then each agent's test block), it
forks a child:

- the child zeroes its copy of the key, points stdin/stdout/stderr at /dev/null, closes every other descriptor but
  a private report pipe, runs the task's imports, loads the solution as module `solution`, runs its unit's steps
  (code to run, and expressions whose values it serialises as plain builtin values: the asserts on them are
  decided by the service, never here) and writes one report line on its pipe;
- the supervisor relays the report as the unit's result on stdout, framed by the key, after a `begin` frame for
  each unit it starts, so when code kills the supervisor the service knows which units (so which source) were
  running. A child that ends before its report (exit, crash, kill) or passes its time fails its unit.

Up to `parallel` units of one source run at once (they can only affect each other). When a source is done, every
process of the sandbox but this one and PID 1 is killed (`kill(-1, SIGKILL)`), so nothing of one source lives on
into the next. A unit without a report line fails.
"""

from __future__ import annotations

import builtins
import gc
import json
import os
import select
import signal
import sys
import time
import types

# Only what a run needs is imported (it starts once per solution and round): no typing, dataclasses, contextlib.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KEY_BYTES = 32
MAX_REPORT_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_ITEMS = 10_000
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4


class Unserialisable(Exception):
    """A value that is not made of builtin values."""


def encode(value: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    """`value` as JSON made of builtin values only: None, bool, int, float and str as themselves, other values
    tagged (`{"t": "tuple", "v": [...]}`). Subclasses of builtin types are reduced to their builtin value through
    the base type's own methods, so nothing of a subclass (an `__eq__` that always answers True) survives; any
    other object raises Unserialisable."""
    budget = budget if budget is not None else [MAX_ITEMS]
    budget[0] -= 1
    if budget[0] < 0:
        raise Unserialisable("the value is too large to compare")
    if depth > MAX_DEPTH:
        raise Unserialisable("the value is nested too deeply to compare")
    kind = type(value)
    if value is None or kind is bool:
        return value
    if issubclass(kind, int):
        return int(int.__repr__(value))
    if issubclass(kind, float):
        return float(float.__repr__(value))
    if issubclass(kind, str):
        return str.__str__(value)
    if issubclass(kind, bytes):
        return {"t": "bytes", "v": bytes.hex(value)}
    if issubclass(kind, list):
        return {"t": "list", "v": [encode(v, depth + 1, budget) for v in list.__iter__(value)]}
    if issubclass(kind, tuple):
        return {"t": "tuple", "v": [encode(v, depth + 1, budget) for v in tuple.__iter__(value)]}
    if issubclass(kind, dict):
        items = [[encode(k, depth + 1, budget), encode(v, depth + 1, budget)] for k, v in dict.items(value)]
        return {"t": "dict", "v": items}
    if issubclass(kind, frozenset):
        return {"t": "frozenset", "v": [encode(v, depth + 1, budget) for v in frozenset.__iter__(value)]}
    if issubclass(kind, set):
        return {"t": "set", "v": [encode(v, depth + 1, budget) for v in set.__iter__(value)]}
    if kind is complex:
        return {"t": "complex", "v": [value.real, value.imag]}
    stdlib = _stdlib_value(kind, value)
    if stdlib is not None:
        return stdlib
    raise Unserialisable(f"a {_type_name(kind)} is not a builtin value (only those can be compared)")


def _stdlib_value(kind: type, value: Any) -> dict[str, Any] | None:
    """Values of a few standard-library types that tests compare (dates, decimals, fractions), as text the
    service turns back into the same types; only for those exact classes of modules already loaded."""
    datetime, decimal, fractions = (sys.modules.get(name) for name in ("datetime", "decimal", "fractions"))
    if datetime is not None and kind in (datetime.date, datetime.datetime, datetime.time):
        return {"t": "datetime." + kind.__name__, "v": value.isoformat()}
    if datetime is not None and kind is datetime.timedelta:
        return {"t": "datetime.timedelta", "v": [value.days, value.seconds, value.microseconds]}
    if decimal is not None and kind is decimal.Decimal:
        return {"t": "decimal", "v": str(value)}
    if fractions is not None and kind is fractions.Fraction:
        return {"t": "fraction", "v": [int(value.numerator), int(value.denominator)]}
    return None


def _type_name(kind: type) -> str:
    name = type.__dict__["__name__"].__get__(kind)
    return name if isinstance(name, str) else "object"


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except BaseException:
        text = ""
    name = _type_name(type(exc))
    return f"{name}: {text}"[:600] if text else f"{name} (no message)"


class Prepared:
    """The job's code, compiled by the supervisor once (compiling runs none of it): each child only executes."""

    def __init__(self, preamble: list[types.CodeType], solution: types.CodeType | None, solution_error: str) -> None:
        self.preamble = preamble
        self.solution = solution
        self.solution_error = solution_error


class PreparedUnit:
    def __init__(self, test_id: str, source: str, steps: list[tuple[str, list[types.CodeType]]], error: str) -> None:
        self.test_id = test_id
        self.source = source
        self.steps = steps
        """("run", [code]) or ("values", [code per expression]), in order."""
        self.error = error


def _compiled(source: str, name: str, mode: str) -> tuple[types.CodeType | None, str]:
    try:
        return compile(source, name, mode, dont_inherit=True), ""
    except BaseException as exc:  # SyntaxError, and what a hostile source makes the compiler raise
        return None, _describe(exc)


def prepare(job: dict[str, Any]) -> tuple[Prepared, list[PreparedUnit]]:
    preamble = [code for code, _ in (_compiled(s, "<task>", "exec") for s in job["preamble"]) if code is not None]
    solution, error = _compiled(job["solution"], "solution.py", "exec")
    units: list[PreparedUnit] = []
    for unit in job["units"]:
        name = "<" + str(unit["id"]) + ">"
        steps: list[tuple[str, list[types.CodeType]]] = []
        failure = ""
        for step in unit["steps"]:
            kind = "run" if "run" in step else "values"
            sources = [step["run"]] if kind == "run" else list(step["values"])
            codes = [_compiled(source, name, "exec" if kind == "run" else "eval") for source in sources]
            failure = failure or next((e for c, e in codes if c is None), "")
            steps.append((kind, [c for c, _ in codes if c is not None]))
        units.append(PreparedUnit(str(unit["id"]), str(unit.get("source", "")), steps, failure))
    return Prepared(preamble, solution, error), units


def _child(
    prepared: Prepared, solution: types.CodeType, units: list[PreparedUnit], report: int, key: bytearray
) -> None:
    """Runs in the forked child: loads the solution once, then runs `units` in order, each in a fresh copy of the
    solution's namespace, writing one report line per unit. Never returns."""
    key[:] = bytes(len(key))
    _isolate(report)
    # Taken before the solution runs, so patching builtins or modules changes none of them.
    dumps, write, exit_ = json.dumps, os.write, os._exit
    run, evaluate, encode_, run_unit = builtins.exec, builtins.eval, encode, _run_unit

    def send(payload: dict[str, Any]) -> None:
        data = dumps(payload).encode()
        if len(data) >= MAX_REPORT_BYTES:
            data = dumps({"ok": False, "failure": "the report is too large"}).encode()
        view = memoryview(data + b"\n")
        while view:
            view = view[write(report, view) :]

    module = types.ModuleType("solution")
    namespace = module.__dict__
    namespace["__builtins__"] = builtins
    sys.modules["solution"] = module
    for code in prepared.preamble:
        try:  # noqa: SIM105 - contextlib costs a run's start-up time
            run(code, namespace)
        except BaseException:  # an import the sandbox lacks is skipped: the solution may not need it
            pass
    try:
        run(solution, namespace)
    except BaseException as exc:  # whatever the solution raises is its failure
        failure = "the solution does not load: " + _describe(exc)
        for _ in units:
            send({"ok": False, "load": True, "failure": failure})
        exit_(0)
    loaded = dict(builtins.__dict__)  # as the solution left them: each unit starts from these
    for unit in units:
        builtins.__dict__.clear()
        builtins.__dict__.update(loaded)
        send(run_unit(unit, dict(namespace), run, evaluate, encode_))
    exit_(0)


def _isolate(report: int) -> None:
    """Nothing the unit prints goes anywhere; no descriptor but the report pipe stays open."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, report)
        os.closerange(report + 1, 65536)
        os.chdir("/tmp")
    except OSError:
        os._exit(3)


def _run_unit(unit: PreparedUnit, scope: dict[str, Any], run: Any, evaluate: Any, encode_: Any) -> dict[str, Any]:
    """One unit's report: its steps run in `scope`, the values of its checks' operands serialised."""
    if unit.error:
        return {"ok": False, "failure": unit.error}
    values: list[Any] = []
    try:
        for kind, codes in unit.steps:
            for code in codes:
                if kind == "run":
                    run(code, scope)
                else:
                    values.append(encode_(evaluate(code, scope)))
    except BaseException as exc:  # a failing unit
        return {"ok": False, "failure": _describe(exc)}
    return {"ok": True, "values": values}


class Supervisor:
    def __init__(self, key: bytearray, job: dict[str, Any]) -> None:
        self._key = key
        self._job = job
        self._sweep = bool(job.get("sweep")) and os.getpid() <= 3  # only in a PID namespace of its own
        self._parallel = max(1, int(job.get("parallel", 1)))
        # A unit's process gets the unit's time plus as much again for the task's imports and loading the solution.
        self._timeout = 2 * float(job["unit_timeout"])

    def frame(self, payload: dict[str, Any]) -> None:
        data = (json.dumps(payload) + "\n").encode()
        os.writev(1, [self._key, data])

    def sweep(self) -> None:
        """Kills every process of the sandbox but this one and PID 1."""
        if self._sweep:
            try:  # noqa: SIM105 - contextlib costs a run's start-up time
                os.kill(-1, signal.SIGKILL)
            except OSError:  # nothing else to kill
                pass

    def run(self) -> None:
        for name in self._job.get("imports", ()):
            try:  # noqa: SIM105 - contextlib costs a run's start-up time
                __import__(name)
            except BaseException:  # the child's own import says what is missing
                pass
        prepared, units = prepare(self._job)
        gc.freeze()  # what exists now stays untouched by the children's collections: fewer pages copied per fork
        sources: dict[str, list[PreparedUnit]] = {}
        for unit in units:
            sources.setdefault(unit.source, []).append(unit)
        for queue in sources.values():
            self.run_source(prepared, queue)
        self.frame({"end": True})

    def run_source(self, prepared: Prepared, queue: list[PreparedUnit]) -> None:
        """The units of one source (the specification, or one agent's test block), each in a child of its own, up
        to `parallel` at once. A unit's result is its child's report line; a child that ends without one (exit,
        crash, kill) or passes its time fails its unit. When the source is done every process of the sandbox but
        this one and PID 1 is killed, so nothing of one source lives on into the next."""
        if prepared.solution is None:
            failure = json.dumps({"ok": False, "failure": "the solution does not load: " + prepared.solution_error})
            for unit in queue:
                self.frame({"begin": unit.test_id})
                self.frame({"id": unit.test_id, "result": "report", "report": failure})
            return
        pending = list(queue)
        running: list[Child] = []
        try:
            while pending or running:
                while pending and len(running) < self._parallel:
                    unit = pending.pop(0)
                    self.frame({"begin": unit.test_id})
                    running.append(self._start(prepared, prepared.solution, unit))
                self._wait(running)
                for child in [c for c in running if c.over()]:
                    running.remove(child)
                    self._finish(child)
        finally:
            for child in running:
                child.close()
            self.sweep()

    def _start(self, prepared: Prepared, solution: types.CodeType, unit: PreparedUnit) -> Child:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read)
                _child(prepared, solution, [unit], write, self._key)
            finally:
                os._exit(3)
        os.close(write)
        return Child(unit, pid, read, time.monotonic() + self._timeout)

    def _wait(self, running: list[Child]) -> None:
        """Until some child has something to say, ends, or passes its deadline."""
        now = time.monotonic()
        left = max(0.0, min(c.deadline for c in running) - now)
        watched = [fd for c in running for fd in c.watched()]
        polling = any(c.exited is None for c in running)  # an old kernel without pidfds
        ready = select.select(watched, [], [], min(left, 0.005) if polling else left)[0]
        for child in running:
            if child.read in ready:
                child.take()

    def _finish(self, child: Child) -> None:
        if child.report is not None:
            self.frame({"id": child.unit.test_id, "result": "report", "report": child.report})
        elif child.timed_out:
            failure = f"timed out after {self._timeout:g}s (loading the solution and running the test)"
            self.frame({"id": child.unit.test_id, "result": "timeout", "failure": failure})
        else:
            failure = f"the test's process ended ({_ended(child.status)}) before it finished"
            self.frame({"id": child.unit.test_id, "result": "ended", "failure": failure})


class Child:
    """One unit's process, as the supervisor follows it."""

    def __init__(self, unit: PreparedUnit, pid: int, read: int, deadline: float) -> None:
        self.unit = unit
        self.pid = pid
        self.read = read
        self.deadline = deadline
        self.buffer = b""
        self.reading = True
        self.report: str | None = None
        self.status: int | None = None
        self.reaped = False
        self.timed_out = False
        try:
            self.exited: int | None = os.pidfd_open(pid)
        except (OSError, AttributeError):
            self.exited = None

    def watched(self) -> list[int]:
        return ([self.read] if self.reading else []) + ([self.exited] if self.exited is not None else [])

    def take(self) -> None:
        """Reads what the pipe holds; the first complete line is the report. A report too large, or anything
        after it, ends the child."""
        chunk = os.read(self.read, 65536)
        if not chunk:
            self.reading = False
            return
        self.buffer += chunk
        if self.report is None and b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.report = line.decode("utf-8", "replace")
        if len(self.buffer) > MAX_REPORT_BYTES or (self.report is not None and self.buffer):
            self._kill()

    def over(self) -> bool:
        """Whether the child is gone (reaped), killing it first once it has passed its deadline."""
        if not self.reaped:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status, self.reaped = status, True
                self._drain()
            elif time.monotonic() >= self.deadline:
                self.timed_out = self.report is None
                self._kill()
            else:
                return False
        self.close()
        return True

    def _drain(self) -> None:
        """Takes what the pipe still holds: a child can write its report and exit between the wait for its pipe
        and the check that it exited (on a busy host it does). Never blocks: a process the unit left behind may
        hold the pipe open with nothing to say."""
        while self.reading and select.select([self.read], [], [], 0)[0]:
            self.take()

    def _kill(self) -> None:
        try:  # noqa: SIM105 - contextlib costs a run's start-up time
            os.kill(self.pid, signal.SIGKILL)
        except OSError:  # already gone
            pass
        if not self.reaped:
            try:
                _, self.status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                self.status = None
            self.reaped = True

    def close(self) -> None:
        for fd in (self.read, self.exited):
            if fd is not None:
                try:  # noqa: SIM105 - contextlib costs a run's start-up time
                    os.close(fd)
                except OSError:  # closed already
                    pass
        self.exited = None
        self.reading = False


def _ended(status: int | None) -> str:
    if status is None:
        return "no status"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else "unknown"


def _non_dumpable() -> bool:
    """Makes this process non-dumpable: processes of the same uid can then neither read its memory (the key) nor
    open its file descriptors (the result channel) through /proc, nor ptrace it. True when it took."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        return int(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError, ImportError):
        return False


def _read_key(fd: int) -> bytearray:
    """The key, read straight into the buffer each child zeroes (no other copy of it in memory)."""
    key = bytearray(KEY_BYTES)
    view, got = memoryview(key), 0
    while got < KEY_BYTES:
        n = os.readv(fd, [view[got:]])
        if not n:
            break
        got += n
    view.release()
    return key


def _job_from_stdin() -> tuple[bytearray, dict[str, Any]]:
    """A run started ahead of its job (the sandbox's `start`): the key, then the job, on stdin up to its end;
    stdin then points at /dev/null."""
    key = _read_key(0)
    data = b""
    while chunk := os.read(0, 1 << 16):
        data += chunk
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return key, json.loads(data)


def _job_from_files() -> tuple[bytearray, dict[str, Any]]:
    """The key and the job from the work dir's `key` and `job.json`, both deleted once read."""
    fd = os.open("key", os.O_RDONLY)
    key = _read_key(fd)
    os.close(fd)
    os.unlink("key")
    with open("job.json", encoding="utf-8") as handle:
        job = json.load(handle)
    os.unlink("job.json")
    return key, job


def main() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # Before the job is read: a run started ahead waits here with its imports done and its memory closed.
    private = _non_dumpable()
    key, job = _job_from_files() if os.path.exists("key") else _job_from_stdin()
    supervisor = Supervisor(key, job)
    if not private:
        supervisor.frame({"fatal": "the supervisor cannot make itself non-dumpable: no unit was run"})
        return
    supervisor.run()


if __name__ == "__main__":
    main()
