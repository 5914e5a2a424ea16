"""Execution checks: every proposal's Python solution run, in the sandbox, against the task's examples, the client's
acceptance tests and every agent's own tests; then CodeT-style agreement over the agents' tests.

A proposal is split leniently into its solution and its tests (small models mix them): a Python block whose info
string says `test`, or whose top-level code is only tests (asserts, `def test_*`, imports), is tests; top-level
asserts and `test_*` functions inside the solution block are moved to the tests; the rest is the solution.

One sandbox run per solution executes a small harness: it runs the task's own import statements (a stub's `from
typing import List`; one that fails is skipped), loads the solution in their namespace, then runs each test unit in
a copy of the solution's namespace under a per-unit alarm, printing one result line per unit behind a per-run random
marker. A run that dies or hits a limit still reports the units it finished; the rest count as failed with the
reason. The sandbox contains what the code can do to the host; it does not stop a solution from tampering with its
own harness (they share a process), which would only ever change that solution's own results.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.adapters.checks.code_blocks import PYTHON, extract_code_blocks
from orchestrator.application.ports import Sandbox
from orchestrator.domain.evidence import (
    CheckUnit,
    ProposalEvidence,
    Specification,
    UnitOutcome,
    UnitSource,
    agent_units,
    agreement,
    parses,
    trim,
)
from orchestrator.domain.execution import Execution, SandboxAvailability, SandboxLimits

UNIT_TIMEOUT_S = 3.0
_TESTS_COMMENT = re.compile(r"#\s*(?:unit\s+|the\s+)?tests?\b", re.IGNORECASE)
RUN_LIMITS = SandboxLimits(cpu_seconds=20, wall_seconds=30, max_processes=32)

HARNESS = r"""
import contextlib, io, json, signal, sys
config = json.load(open("units.json"))
marker = config["marker"]

class _UnitTimeout(BaseException):
    pass

def _alarm(signum, frame):
    raise _UnitTimeout(f"timed out after {config['unit_timeout']}s")

signal.signal(signal.SIGALRM, _alarm)

def _report(test_id, passed, failure=""):
    sys.__stdout__.write(marker + json.dumps({"id": test_id, "passed": passed, "failure": failure[:600]}) + "\n")
    sys.__stdout__.flush()

def _describe(exc):
    text = f"{type(exc).__name__}: {exc}"
    return text if str(exc) else f"{type(exc).__name__} (no message)"

namespace = {"__name__": "solution"}
sys.path.insert(0, ".")
load_error = ""
for statement in config["preamble"]:
    signal.setitimer(signal.ITIMER_REAL, config["unit_timeout"])
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(statement, "<task>", "exec"), namespace)
    except BaseException:
        pass  # an import the sandbox lacks (or that times out) is skipped: the solution may not need it
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
signal.setitimer(signal.ITIMER_REAL, config["unit_timeout"])
try:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        exec(compile(open("solution.py").read(), "solution.py", "exec"), namespace)
except BaseException as exc:
    load_error = "the solution does not load: " + _describe(exc)
finally:
    signal.setitimer(signal.ITIMER_REAL, 0)
for unit in config["units"]:
    if load_error:
        _report(unit["id"], False, load_error)
        continue
    scope = dict(namespace)
    signal.setitimer(signal.ITIMER_REAL, config["unit_timeout"])
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(unit["code"], "<" + unit["id"] + ">", "exec"), scope)
    except BaseException as exc:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _report(unit["id"], False, _describe(exc))
    else:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _report(unit["id"], True)
"""


@dataclass(frozen=True)
class SplitProposal:
    solution: str
    tests: str


def _only_tests(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
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
    except (SyntaxError, ValueError):
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
    """The Python solution and the Python tests of a proposal (either may be empty)."""
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
    """Runs the execution checks of one round on the given sandbox; one sandbox run per solution, concurrently."""

    def __init__(self, sandbox: Sandbox, limits: SandboxLimits = RUN_LIMITS) -> None:
        self._sandbox = sandbox
        self._limits = limits

    def availability(self) -> SandboxAvailability:
        return self._sandbox.availability()

    async def verify(
        self, spec: Specification, proposals: Mapping[str, str], round_: int
    ) -> dict[str, ProposalEvidence]:
        """`proposals` maps author ids to proposal texts; returns each author's evidence for this round."""
        split = {author: split_proposal(text) for author, text in proposals.items()}
        units = [*spec.units, *agent_units({a: s.tests for a, s in split.items() if s.tests})]
        if not self._sandbox.availability().available:
            reason = self._sandbox.availability().summary
            return {a: ProposalEvidence(a, round_, skipped=reason) for a in proposals}
        authors = sorted(split)
        runs = await asyncio.gather(*(self._run(split[a].solution, units, spec.preamble) for a in authors))
        outcomes = dict(zip(authors, runs, strict=True))
        agent_ids = {u.test_id for u in units if u.source is UnitSource.AGENT}
        passed = {
            a: frozenset(o.test_id for o in outcomes[a] if o.passed and o.test_id in agent_ids)
            for a in authors
            if split[a].solution
        }
        groups = agreement(passed)
        return {
            a: ProposalEvidence(
                a,
                round_,
                tuple(outcomes[a]),
                skipped="" if split[a].solution else "no Python solution in the proposal",
                solution_found=bool(split[a].solution),
                agreement=groups.get(a, (0, ()))[0],
                group=groups.get(a, (0, ()))[1],
            )
            for a in authors
        }

    async def _run(self, solution: str, units: Sequence[CheckUnit], preamble: Sequence[str]) -> list[UnitOutcome]:
        if not solution:
            return [UnitOutcome(u.test_id, False, "no Python solution") for u in units]
        if not units:
            return []
        return await run_units(self._sandbox, solution, units, self._limits, preamble)


async def run_units(
    sandbox: Sandbox,
    solution: str,
    units: Sequence[CheckUnit],
    limits: SandboxLimits = RUN_LIMITS,
    preamble: Sequence[str] = (),
) -> list[UnitOutcome]:
    """One sandbox run of the harness: `solution`, after the task's `preamble` statements, against every unit."""
    marker = f"@@{secrets.token_hex(8)}@@"
    config = {
        "marker": marker,
        "unit_timeout": UNIT_TIMEOUT_S,
        "preamble": list(preamble),
        "units": [{"id": u.test_id, "code": u.code} for u in units],
    }
    files = {"solution.py": solution, "harness.py": HARNESS, "units.json": json.dumps(config)}
    execution = await sandbox.run(files, ["python3", "-I", "-S", "harness.py"], limits)
    return outcomes_of(execution, marker, units)


def outcomes_of(execution: Execution, marker: str, units: Sequence[CheckUnit]) -> list[UnitOutcome]:
    reported: dict[str, UnitOutcome] = {}
    for line in execution.stdout.splitlines():
        if not line.startswith(marker):
            continue
        try:
            item = json.loads(line[len(marker) :])
            reported[str(item["id"])] = UnitOutcome(str(item["id"]), bool(item["passed"]), trim(str(item["failure"])))
        except (ValueError, KeyError, TypeError):
            continue
    ended = _why_ended(execution)
    return [reported.get(u.test_id) or UnitOutcome(u.test_id, False, ended) for u in units]


def _why_ended(execution: Execution) -> str:
    if execution.skipped:
        return f"not run: {execution.detail}"
    if execution.timed_out:
        return "the run hit its time limit before this test"
    tail = trim(execution.stderr, 200)
    return f"the run ended ({execution.outcome.value}, exit {execution.exit_code}) before this test: {tail}"
