"""The trusted supervisor of one execution run, inside the sandbox (`python3 -I -S sandbox_supervisor.py`).

It never loads the code under test. It reads the job (the solution, the task's import lines, the units) and a
per-run key from the work dir, deletes both files, makes itself non-dumpable (so processes of the same uid cannot
read its memory or open its file descriptors through /proc), and then runs the units one at a time, each in a
child process of its own:

- the child zeroes its copy of the key, points stdin/stdout/stderr at /dev/null, closes every other descriptor but
  a private report pipe, runs the task's imports, loads the solution as module `solution`, then runs the unit's
  steps: code to run, and expressions whose values it sends back serialised as plain builtin values (the asserts
  on them are decided by the service, never here); it writes one report on its pipe and exits 0;
- the supervisor reads the report (bounded), waits for the child's end (bounded by the unit's time), then kills
  every process of the sandbox but itself and PID 1 (`kill(-1, SIGKILL)`, so no process of this unit lives on into
  the next), and only then writes the unit's result to stdout, framed by the key. Before forking it writes a
  `begin` frame, so when a unit's code kills the supervisor the service knows which unit was running.

A report counts only when the child also exited 0 after writing it: an `os._exit` before the report, a crash, a
kill, a timeout all leave the unit without a result, which the service counts as failed.
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
    """`value` as JSON made of builtin values only: None, bool, int, float and str as themselves, containers
    tagged (`{"t": "list", "v": [...]}`). Subclasses of builtin types are reduced to their builtin value through
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
    if issubclass(kind, bool):  # pragma: no cover - bool cannot be subclassed
        raise Unserialisable("bool subclass")
    if issubclass(kind, int):
        return {"t": "int", "v": int.__repr__(value)}
    if issubclass(kind, float):
        return {"t": "float", "v": float.__repr__(value)}
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
    def __init__(self, test_id: str, steps: list[tuple[str, list[types.CodeType]]], error: str) -> None:
        self.test_id = test_id
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
        units.append(PreparedUnit(str(unit["id"]), steps, failure))
    return Prepared(preamble, solution, error), units


def _child(prepared: Prepared, solution: types.CodeType, unit: PreparedUnit, report: int, key: bytearray) -> None:
    """Runs in the forked child; never returns."""
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
        if len(data) > MAX_REPORT_BYTES:
            data = dumps({"ok": False, "failure": "the report is too large"}).encode()
        view = memoryview(data)
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
        send({"ok": False, "load": True, "failure": "the solution does not load: " + _describe(exc)})
        exit_(0)
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
        for unit in units:
            self.frame({"begin": unit.test_id})
            self.frame({"id": unit.test_id, **self.run_unit(prepared, unit)})
        self.frame({"end": True})

    def run_unit(self, prepared: Prepared, unit: PreparedUnit) -> dict[str, Any]:
        if prepared.solution is None:
            failure = "the solution does not load: " + prepared.solution_error
            return {"result": "report", "report": {"ok": False, "load": True, "failure": failure}}
        if unit.error:
            return {"result": "report", "report": {"ok": False, "failure": unit.error}}
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read)
                _child(prepared, prepared.solution, unit, write, self._key)
            finally:
                os._exit(3)
        os.close(write)
        timeout = float(self._job["unit_timeout"])
        data, status, timed_out = self._collect(pid, read, time.monotonic() + timeout)
        self.sweep()
        os.close(read)
        if timed_out:
            return {"result": "timeout", "failure": f"timed out after {timeout:g}s"}
        if status is None or not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            how = _ended(status)
            return {"result": "ended", "failure": f"the test's process ended ({how}) before it finished"}
        try:
            report = json.loads(data.decode())
        except (ValueError, UnicodeDecodeError):
            return {"result": "ended", "failure": "the test's process ended without a report"}
        return {"result": "report", "report": report}

    def _collect(self, pid: int, read: int, deadline: float) -> tuple[bytes, int | None, bool]:
        """The child's report and exit status; (b"", None, True) when it passed its deadline (it is killed). Waits
        on the report pipe and on a pidfd of the child together: no polling."""
        chunks: list[bytes] = []
        reading = True
        try:
            exited: int | None = os.pidfd_open(pid)
        except (OSError, AttributeError):
            exited = None  # an old kernel: poll the child instead
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    try:  # noqa: SIM105 - contextlib costs a run's start-up time
                        os.kill(pid, signal.SIGKILL)
                    except OSError:  # already gone
                        pass
                    self.sweep()
                    try:  # noqa: SIM105 - contextlib costs a run's start-up time
                        os.waitpid(pid, 0)
                    except ChildProcessError:
                        pass
                    return b"", None, True
                watched = ([read] if reading else []) + ([exited] if exited is not None else [])
                wait = left if exited is not None else min(left, 0.005)
                ready = select.select(watched, [], [], wait)[0] if watched else []
                if not watched:
                    time.sleep(wait)
                if read in ready:
                    reading = self._take(read, chunks)
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    while reading and select.select([read], [], [], 0)[0]:  # what is there; a descendant may hold it
                        reading = self._take(read, chunks)
                    return b"".join(chunks), status, False
        finally:
            if exited is not None:
                os.close(exited)

    @staticmethod
    def _take(read: int, chunks: list[bytes]) -> bool:
        chunk = os.read(read, 65536)
        if not chunk:
            return False
        if sum(map(len, chunks)) + len(chunk) > MAX_REPORT_BYTES:
            chunks[:] = [b"{}"]
            return False
        chunks.append(chunk)
        return True


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
