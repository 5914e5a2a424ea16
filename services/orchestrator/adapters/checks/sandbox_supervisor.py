"""The trusted supervisor of one execution run, inside the sandbox (`python3 -I -S sandbox_supervisor.py`).

It never loads the code under test. It reads the job (the solution, the task's import lines, the units) and a
per-run key from the work dir, deletes both files, makes itself non-dumpable (so processes of the same uid can
neither read its memory nor open its file descriptors through /proc), and compiles the job's code (compiling runs
none of it). Then, source by source (the specification's units, then each agent's test block), it forks a child:

- the child zeroes its copy of the key, points stdin/stdout/stderr at /dev/null, closes every other descriptor but
  a private report pipe, runs the task's imports and loads the solution as module `solution`; then, for each unit
  of the source in order and in a fresh copy of the solution's namespace, it runs the unit's steps (code to run,
  and expressions whose values it serialises as plain builtin values: the asserts on them are decided by the
  service, never here) and writes one report line on its pipe;
- the supervisor relays each report as the unit's result on stdout, framed by the key, and a `begin` frame for
  the unit that runs next, so when code kills the supervisor the service knows which unit (so which source) was
  running. When the child ends before its last report (exit, crash, kill) or a unit passes its time, the unit it
  was on fails and a fresh child takes the source's remaining units. After each child, every process of the
  sandbox but this one and PID 1 is killed (`kill(-1, SIGKILL)`), so nothing of one child lives on into the next.

By default each child runs one unit (`units_per_process` 1): every unit in a fresh process. A larger batch lets
units of one source share a child (they could then only affect each other, never another source's units). A unit
without a report line fails.
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
    raise Unserialisable(f"a {_type_name(kind)} is not a builtin value (only those can be compared)")


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
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, report)
        os.closerange(report + 1, 65536)
        os.chdir("/tmp")
    except OSError:
        os._exit(3)

    # Taken before the solution runs, so patching builtins or modules changes none of them.
    dumps, write, exit_ = json.dumps, os.write, os._exit
    run, evaluate, encode_ = builtins.exec, builtins.eval, encode

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
        if unit.error:
            send({"ok": False, "failure": unit.error})
            continue
        builtins.__dict__.clear()
        builtins.__dict__.update(loaded)
        scope = dict(namespace)
        values: list[Any] = []
        try:
            for kind, codes in unit.steps:
                for code in codes:
                    if kind == "run":
                        run(code, scope)
                    else:
                        values.append(encode_(evaluate(code, scope)))
        except BaseException as exc:  # a failing unit
            send({"ok": False, "failure": _describe(exc)})
        else:
            send({"ok": True, "values": values})
    exit_(0)


class Supervisor:
    def __init__(self, key: bytearray, job: dict[str, Any]) -> None:
        self._key = key
        self._job = job
        self._sweep = bool(job.get("sweep")) and os.getpid() <= 3  # only in a PID namespace of its own
        self._batch = max(1, int(job.get("units_per_process", 1)))

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
        """The units of one source (the specification, or one agent's test block), in children of their own, each
        running the next `units_per_process` units in order (1: every unit in a fresh process); when a child ends
        early (exit, crash, kill, time-out) the unit it was on fails and a fresh child takes the rest. Every
        process of a child is gone before the next starts."""
        timeout = float(self._job["unit_timeout"])
        while queue:
            self.frame({"begin": queue[0].test_id})
            if prepared.solution is None:
                failure = "the solution does not load: " + prepared.solution_error
                self.frame(
                    {"id": queue.pop(0).test_id, "result": "report", "report": {"ok": False, "failure": failure}}
                )
                continue
            batch = queue[: self._batch]
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(read)
                    _child(prepared, prepared.solution, batch, write, self._key)
                finally:
                    os._exit(3)
            os.close(write)
            try:
                status, timed_out, reported = self._follow(pid, read, queue, len(batch), timeout)
            finally:
                self.sweep()
                os.close(read)
            if reported == len(batch):
                continue
            if timed_out:
                ended = {"result": "timeout", "failure": f"timed out after {timeout:g}s"}
            else:
                how = _ended(status)
                ended = {"result": "ended", "failure": f"the test's process ended ({how}) before it finished"}
            self.frame({"id": queue.pop(0).test_id, **ended})

    def _follow(
        self, pid: int, read: int, queue: list[PreparedUnit], given: int, timeout: float
    ) -> tuple[int | None, bool, int]:
        """Relays the child's report lines, one per unit it was `given` (the first of `queue`, popping each), until
        the child ends or the unit it is on passes `timeout`; returns (its exit status, whether it timed out, the
        reports relayed). Waits on the pipe and on a pidfd of the child together: no polling."""
        buffer = b""
        reported = 0
        reading = True
        deadline = time.monotonic() + timeout
        try:
            exited: int | None = os.pidfd_open(pid)
        except (OSError, AttributeError):
            exited = None  # an old kernel: poll the child instead
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._kill(pid)
                    return None, True, reported
                watched = ([read] if reading else []) + ([exited] if exited is not None else [])
                wait = left if exited is not None else min(left, 0.005)
                ready = select.select(watched, [], [], wait)[0] if watched else []
                if not watched:
                    time.sleep(wait)
                while reading and read in ready:
                    chunk = os.read(read, 65536)
                    if not chunk:
                        reading = False
                        break
                    buffer += chunk
                    while b"\n" in buffer and reported < given:
                        line, buffer = buffer.split(b"\n", 1)
                        self._relay(queue.pop(0), line)
                        reported += 1
                        if queue:
                            self.frame({"begin": queue[0].test_id})
                        deadline = time.monotonic() + timeout
                    if len(buffer) > MAX_REPORT_BYTES or (buffer and reported == given):
                        self._kill(pid)  # a report too large, or more reports than units
                        return None, False, reported
                    ready = select.select([read], [], [], 0)[0]
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return status, False, reported
        finally:
            if exited is not None:
                os.close(exited)

    def _relay(self, unit: PreparedUnit, line: bytes) -> None:
        """The child's report line, passed on as text: the service parses it (the supervisor never does)."""
        self.frame({"id": unit.test_id, "result": "report", "report": line.decode("utf-8", "replace")})

    def _kill(self, pid: int) -> None:
        try:  # noqa: SIM105 - contextlib costs a run's start-up time
            os.kill(pid, signal.SIGKILL)
        except OSError:  # already gone
            pass
        self.sweep()
        try:  # noqa: SIM105 - contextlib costs a run's start-up time
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _ended(status: int | None) -> str:
    if status is None:
        return "no status"
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
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


def main() -> None:
    key = bytearray(KEY_BYTES)
    fd = os.open("key", os.O_RDONLY)
    os.readv(fd, [key])
    os.close(fd)
    os.unlink("key")
    with open("job.json", encoding="utf-8") as handle:
        job = json.load(handle)
    os.unlink("job.json")
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    supervisor = Supervisor(key, job)
    if not _non_dumpable():
        supervisor.frame({"fatal": "the supervisor cannot make itself non-dumpable: no unit was run"})
        return
    supervisor.run()


if __name__ == "__main__":
    main()
