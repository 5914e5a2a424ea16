"""Execution checks: every proposal's Python solution run, in the sandbox, against the task's examples, the client's
acceptance tests and every agent's own tests; then CodeT-style agreement over the agents' tests.

A proposal is split leniently into its solution and its tests (small models mix them): a Python block whose info
string says `test`, or whose top-level code is only tests (asserts, `def test_*`, imports), is tests; top-level
asserts and `test_*` functions inside the solution block are moved to the tests; the rest is the solution.

Verdicts are decided outside the code under test (docs/evidence.md). One sandbox run per distinct solution (the same
code against the same units runs once, and is not run again while its verdicts are kept: verdicts.py) runs a trusted
supervisor (`sandbox_supervisor.py`) that never loads the solution: it runs each unit in a fresh child process of
its own (the task's imports, the solution, the unit), the specification's units first, then each agent's test block.
A child's output goes nowhere; it reports on a private pipe; the supervisor relays each unit's result on stdout
framed by a per-run key that no code under test can read. For a value unit (`f(x) == 10`, `assert A op B`) only the
set-up and the computed operands run in the sandbox, their values come back as builtin values, and the comparison
runs here (`unit_values.py`): the expected value never enters the sandbox. A unit without a completed report (exit
at import, `os._exit`, crash, kill, time-out) fails.

Probes (`Specification.probes`, calls a test designer wrote) run the same way, as a source of their own: only the
call runs in the sandbox, its value comes back as builtin values and is kept here as a canonical text
(`UnitOutcome.value`); solutions are then grouped by behaviour (domain/evidence.behaviour_groups). Each solution is
also checked for parsing and for defining what the task names (`ProposalEvidence.defines_task`).

When a unit's code ends the supervisor itself (same uid, so it can), the run stops: the unit that was running
fails, and so do the rest of its source's units; the units of other sources not yet run go to a new run. So a
test block can cost only its own units, never a peer's specification units or another block's; a solution that
does it fails its own units.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from orchestrator.adapters.checks.code_blocks import PYTHON, extract_code_blocks
from orchestrator.adapters.checks.sandbox_supervisor import KEY_BYTES
from orchestrator.adapters.checks.unit_values import (
    Check,
    MalformedValue,
    Operand,
    UnitPlan,
    decode,
    job_unit,
    judge,
    parse_report,
    plan_unit,
)
from orchestrator.adapters.checks.verdicts import MAX_RUNS_KEPT, Verdicts, run_key
from orchestrator.application.ports import Sandbox
from orchestrator.domain.evidence import (
    UNPARSABLE,
    CheckUnit,
    ProposalEvidence,
    Specification,
    UnitOutcome,
    UnitSource,
    agent_units,
    agreement,
    behaviour_groups,
    defined_names,
    parses,
    trim,
    void_agent_tests,
    without_tests,
)
from orchestrator.domain.execution import Execution, SandboxAvailability, SandboxLimits

UNIT_TIMEOUT_S = 3.0
_TESTS_COMMENT = re.compile(r"#\s*(?:unit\s+|the\s+)?tests?\b", re.IGNORECASE)
RUN_LIMITS = SandboxLimits(cpu_seconds=20, wall_seconds=30, max_processes=32, max_output_bytes=1024 * 1024)
SUPERVISOR = Path(__file__).with_name("sandbox_supervisor.py").read_text(encoding="utf-8")
_BLOCK_ENDED = "not run: an earlier test of its block ended the run"
PARALLEL_UNITS = 4
"""Units of one source a run has in flight at once, each in a process of its own (fewer hand-offs per run)."""
MAX_RERUNS = 12
"""Runs after the first for one solution, each caused by a test block that ended its run (one per block)."""
SUPERVISOR_COMMAND = ("python3", "-I", "-S", "supervisor.py")
MAX_WARM = 16
"""Runs at most kept started ahead of their job (each a sandbox and an idle interpreter, about 10 MiB)."""
WARM_TTL_S = 120.0
"""How long a run started ahead waits for a job before it is closed."""


class StartedRun(Protocol):
    """A sandbox run started up to its command, which waits for its stdin (`BwrapSandbox.start`)."""

    @property
    def alive(self) -> bool: ...

    async def run(self, stdin: bytes = b"") -> Execution: ...

    async def close(self) -> None: ...


@runtime_checkable
class StartingSandbox(Protocol):
    """A sandbox that can start a run ahead of its input."""

    async def start(
        self, files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits
    ) -> StartedRun: ...


class WarmRuns:
    """Supervisor runs started ahead of their job: the sandbox set up, the interpreter started and the
    supervisor's imports done, waiting for the key and the job on stdin. Nothing of the job, and no code under
    test, has been in one before it is taken; each is taken once, and its units then run exactly as in a run
    started for them (the supervisor forks a fresh process per unit). The verify stage takes them and `fill`s the
    pool again for the next stage while the agents' model calls are in flight; one left unused for
    `ttl_s` is closed (its processes killed, its cgroup removed)."""

    def __init__(
        self, sandbox: StartingSandbox, limits: SandboxLimits, *, cap: int = MAX_WARM, ttl_s: float = WARM_TTL_S
    ) -> None:
        self._sandbox = sandbox
        self._limits = limits
        self._cap = cap
        self._ttl_s = ttl_s
        self._ready: dict[StartedRun, asyncio.TimerHandle] = {}
        self._starting: set[asyncio.Task[None]] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self.started = 0
        """Runs started ahead so far (a measure for tests and the benchmark)."""
        self.taken = 0
        """Runs started ahead that were given a job."""

    @property
    def ready(self) -> int:
        return len(self._ready)

    def take(self) -> StartedRun | None:
        """A run waiting for its job, or None (none ready)."""
        while self._ready:
            started, timer = next(iter(self._ready.items()))
            del self._ready[started]
            timer.cancel()
            if started.alive:
                self.taken += 1
                return started
            self._close_later(started)
        return None

    def fill(self, count: int) -> None:
        """Starts runs in the background until `count` (at most the cap) are ready or starting."""
        wanted = min(count, self._cap) - len(self._ready) - len(self._starting)
        for _ in range(max(0, wanted)):
            task = asyncio.create_task(self._start_one())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def settled(self) -> None:
        """Until the runs being started are ready (or could not start)."""
        while self._starting:
            await asyncio.gather(*self._starting, return_exceptions=True)

    async def _start_one(self) -> None:
        started = await self._sandbox.start({"supervisor.py": SUPERVISOR}, SUPERVISOR_COMMAND, self._limits)
        self.started += 1
        if not started.alive:  # it could not start: the next stage starts its runs as they are needed
            await started.close()
            return
        timer = asyncio.get_running_loop().call_later(self._ttl_s, self._expire, started)
        self._ready[started] = timer

    def _expire(self, started: StartedRun) -> None:
        if self._ready.pop(started, None) is not None:
            self._close_later(started)

    def _close_later(self, started: StartedRun) -> None:
        task = asyncio.create_task(started.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Closes every run waiting for a job and stops those still starting."""
        for task in list(self._starting):
            task.cancel()
        await asyncio.gather(*self._starting, return_exceptions=True)
        ready, self._ready = self._ready, {}
        for timer in ready.values():
            timer.cancel()
        await asyncio.gather(*(started.close() for started in ready), *self._closing, return_exceptions=True)


@dataclass(frozen=True)
class SplitProposal:
    solution: str
    tests: str


def _only_tests(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except UNPARSABLE:
        return False
    kinds = [_test_node(node) for node in tree.body if not isinstance(node, ast.Import | ast.ImportFrom)]
    return bool(kinds) and all(kinds)


def _test_node(node: ast.stmt) -> bool:
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):  # test_x() calls, print(...)
        return True
    return isinstance(node, ast.If) and "__main__" in ast.dump(node.test)


def _separate(code: str) -> tuple[str, str]:
    """Moves top-level asserts and `test_*` functions out of a solution block and drops a `__main__` block and
    top-level demonstration calls (`test_x()`, `print(f(3))`, `unittest.main()`): a module's import must define
    the solution, not run the author's demonstration of it."""
    try:
        tree = ast.parse(code)
    except UNPARSABLE:
        return code, ""
    keep: list[str] = []
    tests: list[str] = []
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    for node in tree.body:
        text = ast.get_source_segment(code, node) or ""
        is_test = (
            isinstance(node, ast.Assert)
            or (isinstance(node, ast.FunctionDef) and node.name.startswith("test"))
            or (isinstance(node, ast.ClassDef) and node.name.startswith("Test"))
        )
        if is_test:
            tests.append(text)
        elif not (_main_block(node) or _demonstration(node, defined)):
            keep.append(text)
    return "\n\n".join(keep), "\n\n".join(tests)


def _main_block(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__main__" in ast.dump(node.test)


def _demonstration(node: ast.stmt, defined: set[str]) -> bool:
    """A bare top-level call of `print`, of a function the block defines, of a `test*`/`check*` name, or of
    `<module>.main()`; set-up calls such as `sys.setrecursionlimit(...)` stay."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    func = node.value.func
    if isinstance(func, ast.Name):
        return func.id == "print" or func.id in defined or func.id.startswith(("test", "check"))
    return isinstance(func, ast.Attribute) and func.attr == "main"


def _parsable_prefix(code: str) -> str:
    """The block itself, or, when it does not parse (an answer cut off at `max_tokens` mid-test), its longest
    prefix ending before a top-level statement that does; the block unchanged when none does."""
    if parses(code):
        return code
    lines = code.splitlines()
    starts = [i for i, line in enumerate(lines) if line[:1] not in ("", " ", "\t", "#", ")", "]", "}")]
    prefixes = ("\n".join(lines[:cut]).rstrip() for cut in reversed(starts[1:]))
    return next((prefix for prefix in prefixes if parses(prefix)), code)


def split_proposal(content: str) -> SplitProposal:
    """The Python solution and the Python tests of a proposal (either may be empty; both, for a proposal whose
    code is nested too deeply to take apart)."""
    try:
        return _split_proposal(content)
    except (RecursionError, MemoryError):
        return SplitProposal("", "")


def _split_proposal(content: str) -> SplitProposal:
    solution: list[str] = []
    tests: list[str] = []
    for block in extract_code_blocks(content):
        if block.language != PYTHON and not (block.language == "" and _looks_python(block.code)):
            continue
        whole = _parsable_prefix(block.code)
        if _marked_as_tests(block.tag, whole) or _only_tests(whole):
            tests.append(whole)
            continue
        code, moved = _separate(whole)
        solution.append(code)
        if moved:
            tests.append(moved)
    return SplitProposal("\n\n".join(s for s in solution if s.strip()), "\n\n".join(tests))


def _marked_as_tests(tag: str, code: str) -> bool:
    """A block tagged `pytest`/`python-test`, or whose first line is a comment about tests (`# tests`)."""
    if "test" in tag.lower():
        return True
    first = next((line.strip() for line in code.splitlines() if line.strip()), "")
    return _TESTS_COMMENT.match(first) is not None


def _looks_python(code: str) -> bool:
    return parses(code) and any(word in code for word in ("def ", "import ", "assert "))


class ExecutionVerifier:
    """Runs the execution checks of one round on the given sandbox; one sandbox run per distinct solution not run
    against the same units before (`verdicts`: at most that many runs' outcomes kept; 0 keeps none), concurrently.

    With `warm`, where the sandbox can start runs ahead of their input (`StartingSandbox`: bubblewrap in this
    process, not Ray's tasks), each verify stage ends by starting as many runs as it used (`WarmRuns`), so the next
    stage finds its sandboxes up and its supervisors' imports done while its model calls were in flight. Whoever
    turns it on closes the verifier (`aclose()`) before its event loop ends: a run still starting when the loop is
    torn down can hold the loop's shutdown."""

    def __init__(
        self, sandbox: Sandbox, limits: SandboxLimits = RUN_LIMITS, *, warm: bool = False, verdicts: int = MAX_RUNS_KEPT
    ) -> None:
        self._sandbox = sandbox
        self._limits = limits
        self.warm = WarmRuns(sandbox, limits) if warm and isinstance(sandbox, StartingSandbox) else None
        self.verdicts = Verdicts(verdicts)

    async def aclose(self) -> None:
        if self.warm is not None:
            await self.warm.aclose()

    def availability(self) -> SandboxAvailability:
        return self._sandbox.availability()

    async def verify(
        self, spec: Specification, proposals: Mapping[str, str], round_: int
    ) -> dict[str, ProposalEvidence]:
        """`proposals` maps author ids to proposal texts; returns each author's evidence for this round."""
        split = {author: split_proposal(text) for author, text in proposals.items()}
        units = [*spec.units, *spec.probes, *agent_units({a: s.tests for a, s in split.items() if s.tests})]
        if not self._sandbox.availability().available:
            reason = self._sandbox.availability().summary
            return {a: ProposalEvidence(a, round_, skipped=reason) for a in proposals}
        authors = sorted(split)
        # Everything parsed here is parsed before the first await (see verification.verify: Python 3.11 before
        # 3.11.8 can fail ast.parse with "AST constructor recursion depth mismatch" when threads parse at once).
        plans = {u.test_id: _plan_of(u) for u in units}  # once for all solutions
        defining = {a: defines(split[a].solution, spec.names) for a in authors}
        ran = await self._runs({a: split[a].solution for a in authors}, units, spec.preamble, plans)
        agent_ids = {u.test_id for u in units if u.source is UnitSource.AGENT}
        void = void_agent_tests({a: ran[a] for a in authors if split[a].solution}, agent_ids)
        outcomes = {a: without_tests(ran[a], void) for a in authors}
        passed = {
            a: frozenset(o.test_id for o in outcomes[a] if o.passed and o.test_id in agent_ids)
            for a in authors
            if split[a].solution
        }
        groups = agreement(passed)
        alike = behaviour_groups({a: outcomes[a] for a in authors if split[a].solution}, spec.probes)
        return {
            a: ProposalEvidence(
                a,
                round_,
                tuple(outcomes[a]),
                skipped="" if split[a].solution else "no Python solution in the proposal",
                solution_found=bool(split[a].solution),
                agreement=groups.get(a, (0, ()))[0],
                group=groups.get(a, (0, ()))[1],
                behaviour_group=alike.get(a, ((), ()))[0],
                split_by=alike.get(a, ((), ()))[1],
                defines_task=defining[a],
            )
            for a in authors
        }

    async def _runs(
        self,
        solutions: Mapping[str, str],
        units: Sequence[CheckUnit],
        preamble: Sequence[str],
        plans: Mapping[str, UnitPlan],
    ) -> dict[str, list[UnitOutcome]]:
        """Each author's outcomes: one run per distinct solution not already run against these units (verdicts.py)."""
        keys = {a: run_key(s, preamble, units, self._limits) for a, s in solutions.items() if s}
        known = {k: outcomes for k in set(keys.values()) if (outcomes := self.verdicts.get(k)) is not None}
        to_run = {k: solutions[a] for a, k in keys.items() if k not in known}
        try:
            runs = await asyncio.gather(*(self._run(s, units, preamble, plans) for s in to_run.values()))
        finally:
            if self.warm is not None:  # for the next stage, while its model calls are in flight
                self.warm.fill(len(to_run))
        for key, outcomes in zip(to_run, runs, strict=True):
            self.verdicts.keep(key, outcomes)
            known[key] = outcomes
        none = [UnitOutcome(u.test_id, False, "no Python solution") for u in units]
        return {a: list(known[keys[a]]) if a in keys else list(none) for a in solutions}

    async def _run(
        self, solution: str, units: Sequence[CheckUnit], preamble: Sequence[str], plans: Mapping[str, UnitPlan]
    ) -> list[UnitOutcome]:
        if not units:
            return []
        sweep = not self._sandbox.availability().unsafe
        return await run_units(
            self._sandbox, solution, units, self._limits, preamble, sweep=sweep, warm=self.warm, plans=plans
        )


def defines(solution: str, names: Sequence[str]) -> bool:
    """The solution parses and defines every function and class the task names."""
    return parses(solution) and bool(solution.strip()) and set(names) <= defined_names(solution)


_ORDER = {UnitSource.EXAMPLE: 0, UnitSource.ACCEPTANCE: 0, UnitSource.PROBE: 1, UnitSource.AGENT: 2}


def _plan_of(unit: CheckUnit) -> UnitPlan:
    """A probe's plan: its call's value, computed in the sandbox, kept here; any other unit's, as unit_values says."""
    if unit.source is UnitSource.PROBE:
        return UnitPlan((Check("value", (Operand(unit.code, None, unit.code),)),), True)
    return plan_unit(unit.code)


async def run_units(
    sandbox: Sandbox,
    solution: str,
    units: Sequence[CheckUnit],
    limits: SandboxLimits = RUN_LIMITS,
    preamble: Sequence[str] = (),
    *,
    sweep: bool = True,
    warm: WarmRuns | None = None,
    plans: Mapping[str, UnitPlan] | None = None,
) -> list[UnitOutcome]:
    """`solution`, after the task's `preamble` statements, against every unit: the specification's units first,
    each unit in a process of its own, the verdicts decided here. `sweep`: the supervisor kills every other process
    of its sandbox after each source (only in a PID namespace of its own; off without a sandbox). `warm`: runs
    started ahead, taken while there are any. `plans`: the units' plans, when already made."""
    ordered = sorted(units, key=lambda u: _ORDER[u.source])
    if plans is None:
        plans = {u.test_id: _plan_of(u) for u in ordered}
    results: dict[str, UnitOutcome] = {}
    pending = list(ordered)
    for _ in range(MAX_RERUNS + 1):
        frames, execution = await _one_run(sandbox, solution, pending, plans, limits, preamble, sweep, warm)
        running, ended, fatal = _read_frames(frames, plans, results)
        pending = [u for u in pending if u.test_id not in results]
        if ended:
            results |= {u.test_id: UnitOutcome(u.test_id, False, "no result for this test") for u in pending}
            pending = []
        if not pending:
            break
        pending = _blame(pending, running, fatal, execution, results)
        if not pending:
            break
    results |= {u.test_id: UnitOutcome(u.test_id, False, "not run: the run was ended too many times") for u in pending}
    return [results[u.test_id] for u in units]


def _read_frames(
    frames: Sequence[Mapping[str, Any]], plans: Mapping[str, UnitPlan], results: dict[str, UnitOutcome]
) -> tuple[set[str], bool, str]:
    """Records the verdict of every unit with a result in `results`; returns (the units begun without a result,
    whether the run reached its end, why the supervisor refused to run units)."""
    running: set[str] = set()
    ended, fatal = False, ""
    for frame in frames:
        if "fatal" in frame:
            fatal = f"not run: {frame['fatal']}"
        elif "begin" in frame:
            running.add(str(frame["begin"]))
        elif "id" in frame and str(frame["id"]) in running and str(frame["id"]) in plans:
            test_id = str(frame["id"])
            results[test_id] = _outcome(test_id, plans[test_id], frame)
            running.discard(test_id)
        elif frame.get("end") is True:
            ended = True
    return running, ended, fatal


def _blame(
    pending: list[CheckUnit], running: set[str], fatal: str, execution: Execution, results: dict[str, UnitOutcome]
) -> list[CheckUnit]:
    """A run that ended early: fails the units its end is blamed on and returns those to run again. The units
    running when it ended are all of one source (the supervisor runs one source at a time)."""
    culprit = next((u for u in pending if u.test_id in running), None)
    if culprit is None or culprit.source not in (UnitSource.AGENT, UnitSource.PROBE):
        # Nothing began (the run did not start), or a specification unit (trusted test code: the solution did
        # it) ended the run: the remaining units fail with the reason.
        reason = fatal or (_why_ended(execution) if culprit is None else _ended_by(culprit, execution))
        results |= {u.test_id: UnitOutcome(u.test_id, False, reason) for u in pending}
        return []
    # A test block (or the probes) ended the run: its own remaining units fail; the other sources' units run again.
    ended = _ended_by(culprit, execution)
    results[culprit.test_id] = UnitOutcome(culprit.test_id, False, ended, _probe_failure(culprit, ended))
    for unit in pending:
        if _source(unit) == _source(culprit) and unit.test_id not in results:
            results[unit.test_id] = UnitOutcome(unit.test_id, False, _BLOCK_ENDED, _probe_failure(unit, "not run"))
    return [u for u in pending if u.test_id not in results]


async def _one_run(
    sandbox: Sandbox,
    solution: str,
    units: Sequence[CheckUnit],
    plans: Mapping[str, UnitPlan],
    limits: SandboxLimits,
    preamble: Sequence[str],
    sweep: bool,
    warm: WarmRuns | None = None,
) -> tuple[list[dict[str, Any]], Execution]:
    key = secrets.token_hex(KEY_BYTES // 2)
    job = {
        "solution": solution,
        "preamble": list(preamble),
        "imports": _imported_modules(preamble),
        "unit_timeout": UNIT_TIMEOUT_S,
        "sweep": sweep,
        "parallel": PARALLEL_UNITS,
        "units": [job_unit(u.test_id, _source(u), plans[u.test_id]) for u in units],
    }
    started = warm.take() if warm is not None else None
    if started is not None:  # the same supervisor, given the key and the job on stdin instead of in files
        execution = await started.run(key.encode() + json.dumps(job).encode())
    else:
        files = {"supervisor.py": SUPERVISOR, "job.json": json.dumps(job), "key": key}
        execution = await sandbox.run(files, SUPERVISOR_COMMAND, limits)
    return frames_of(execution.stdout, key), execution


def _source(unit: CheckUnit) -> str:
    """Units of one source run together in the sandbox: the specification's, the probes, or one agent's block."""
    if unit.source is UnitSource.AGENT:
        return f"agent:{unit.author_id}"
    return "probes" if unit.source is UnitSource.PROBE else "specification"


def _probe_failure(unit: CheckUnit, why: str) -> str:
    return f"no value: {why}"[:80] if unit.source is UnitSource.PROBE else ""


def frames_of(stdout: str, key: str) -> list[dict[str, Any]]:
    """The supervisor's frames: each follows the key, up to the end of its line. Anything else on stdout (which no
    unit's process can write to, but a run could still carry) is ignored."""
    frames: list[dict[str, Any]] = []
    for chunk in stdout.split(key)[1:]:
        line = chunk.split("\n", 1)[0]
        try:
            frame = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(frame, dict):
            frames.append(frame)
    return frames


MAX_VALUE_CHARS = 200


def canonical(value: Any) -> str:
    """A value as text that is the same for equal values whatever their order of iteration (sets, dicts) and for
    floats equal to 9 decimals; long texts are cut and end with their hash."""
    text = _canonical(value)
    if len(text) <= MAX_VALUE_CHARS:
        return text
    return text[: MAX_VALUE_CHARS - 17] + "…#" + hashlib.sha256(text.encode()).hexdigest()[:15]


def _canonical(value: Any) -> str:
    if isinstance(value, float):
        return repr(round(value, 9))
    if isinstance(value, list | tuple):
        inner = ", ".join(_canonical(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(sorted(_canonical(v) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(sorted(f"{_canonical(k)}: {_canonical(v)}" for k, v in value.items())) + "}"
    return repr(value)


def _probe_outcome(test_id: str, report: Any) -> UnitOutcome:
    """A probe's value: what the call gave, or which exception it raised."""
    if not isinstance(report, dict):
        return UnitOutcome(test_id, False, "no report", "no value")
    if report.get("ok") is not True:
        failure = str(report.get("failure", ""))
        return UnitOutcome(test_id, False, trim(failure), "raises " + failure.split(":", 1)[0].split(" ", 1)[0][:60])
    raw = report.get("values")
    try:
        if not isinstance(raw, list) or len(raw) != 1:
            raise MalformedValue("one value expected")
        return UnitOutcome(test_id, True, "", canonical(decode(raw[0])))
    except (MalformedValue, RecursionError):
        return UnitOutcome(test_id, False, "a malformed value", "malformed value")


def _outcome(test_id: str, plan: UnitPlan, frame: Mapping[str, Any]) -> UnitOutcome:
    probe = bool(plan.checks) and plan.checks[0].op == "value"
    if frame.get("result") != "report":
        failure = trim(str(frame.get("failure", "no result")))
        return UnitOutcome(test_id, False, failure, f"no value: {failure}"[:80] if probe else "")
    if probe:
        return _probe_outcome(test_id, parse_report(frame.get("report")))
    passed, failure = judge(plan, parse_report(frame.get("report")))
    return UnitOutcome(test_id, passed, trim(failure))


def _imported_modules(preamble: Sequence[str]) -> list[str]:
    """The absolute module names the task's import lines name (the supervisor imports them once, so each unit's
    process finds them loaded)."""
    names: list[str] = []
    for statement in preamble:
        try:
            tree = ast.parse(statement)
        except UNPARSABLE:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    return names


def _ended_by(unit: CheckUnit, execution: Execution) -> str:
    return f"the run was ended during this test ({_how(execution)})"


def _how(execution: Execution) -> str:
    if execution.timed_out:
        return "its time limit"
    if execution.outcome.value == "output_limit":
        return "its output limit"
    return f"{execution.outcome.value}, exit {execution.exit_code}"


def _why_ended(execution: Execution) -> str:
    if execution.skipped:
        return f"not run: {execution.detail}"
    if execution.timed_out:
        return "the run hit its time limit before this test"
    tail = trim(execution.stderr, 200)
    return f"the run ended ({execution.outcome.value}, exit {execution.exit_code}) before this test: {tail}"
