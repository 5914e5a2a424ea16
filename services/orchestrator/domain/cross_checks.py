"""Cross-checks of a plan: what one council produced, run against what the council it depends on produced.

- *QA on DEV*: every QA proposal's tests run against the DEV winner and against DEV's other final proposals. A
  QA proposal's tests are worth more when they pass on the DEV winner and fail on the DEV proposals that DEV's own
  evidence already showed wrong (a mutation-style kill rate); a test that fails on every DEV proposal says
  nothing and counts for none. The best QA proposal by that evidence (`qa_order`) is the one whose tests the plan
  holds the DEV winner to.
- *DEV follow-up*: when those tests fail on the DEV winner, DEV's subtask is deliberated once more with the
  failing tests as acceptance tests, and the QA check runs again on the new winner.
- *DEVOPS on DEV*: where the DEVOPS winner's manifests name the DEV module (entry point, port, image), whether
  they match it.

The plan's outcome: `checked` when at least one cross-check ran and every one that ran passed, `failed_checks`
when one that ran failed, `unchecked` when nothing executable was there to check. Pure: running code is a
sandbox adapter's job.
"""

from __future__ import annotations

import ast
import copy
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.domain.evidence import UNPARSABLE, CheckUnit, UnitOutcome

SOLUTION_MODULE = "solution"
"""The name a solution is importable as inside the sandbox."""
TEST_LIBRARIES = frozenset({"pytest", "hypothesis"})
PYTEST_SHIM = (
    "class _Raises:\n"
    "    def __init__(self, expected, *args, **kwargs):\n"
    "        self.expected = expected\n"
    "    def __enter__(self):\n"
    "        return self\n"
    "    def __exit__(self, kind, value, tb):\n"
    "        if kind is None:\n"
    "            raise AssertionError(f'DID NOT RAISE {self.expected}')\n"
    "        return issubclass(kind, self.expected)\n"
    "class pytest:\n"
    "    raises = _Raises\n"
    "    fixture = staticmethod(lambda *a, **k: a[0] if a and callable(a[0]) else (lambda f: f))"
)
"""What `import pytest` becomes: the sandbox has no third-party library, and a test unit runs without pytest's
runner anyway (each `test_*` function is called), so `pytest.raises` and `pytest.fixture` are all a unit needs."""


class CheckKind(StrEnum):
    QA_ON_DEV = "qa_on_dev"
    DEV_FOLLOW_UP = "dev_follow_up"
    DEVOPS_ON_DEV = "devops_on_dev"


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_RUN = "not_run"
    """Nothing executable to check (no tests, no code, no sandbox, no reference): says why in `summary`."""


class PlanOutcome(StrEnum):
    CHECKED = "checked"
    FAILED_CHECKS = "failed_checks"
    UNCHECKED = "unchecked"


@dataclass(frozen=True)
class CrossCheck:
    """One cross-check as the plan records it: who checked whom, what ran, how many passed, in one line."""

    kind: CheckKind
    subtask_id: str
    """The checking subtask (QA, DEVOPS), or the subtask deliberated again (follow-up)."""
    target_id: str
    """The subtask checked (DEV)."""
    status: CheckStatus
    passed: int = 0
    total: int = 0
    summary: str = ""
    details: tuple[str, ...] = ()
    """The evidence behind it: each QA proposal's standing, each manifest reference, the failing tests."""
    chosen: str = ""
    """QA on DEV: the QA proposal whose tests held the DEV winner; follow-up: its deliberation id."""
    target_winner: str = ""
    attempt: int = 1
    """2 for a check run again after the DEV follow-up."""


@dataclass(frozen=True)
class FollowUp:
    """DEV's one follow-up deliberation of a plan, with the QA tests its winner failed as acceptance tests."""

    subtask_id: str
    deliberation_id: str
    acceptance_tests: str
    state: str = "DISPATCHED"
    """DISPATCHED, COMPLETED, FAILED, or SKIPPED (not started: the plan's token budget was spent)."""
    winner_id: str = ""
    error: str = ""


@dataclass(frozen=True)
class QaStanding:
    """How one QA proposal's tests fared against DEV's proposals."""

    author_id: str
    tests: int
    void: int
    """Tests that failed on every DEV proposal: they say nothing, and count for none."""
    passed_on_winner: int
    """Of the tests that count, how many passed on the DEV winner."""
    killed: int
    wrong: int
    """DEV proposals DEV's own evidence showed wrong, and how many of them this proposal's tests reject."""
    council_rank: int

    @property
    def counted(self) -> int:
        return self.tests - self.void

    @property
    def key(self) -> tuple[float, float, int, int]:
        """Sort key, best first when sorted in reverse: all counted tests passing on the DEV winner (as a
        fraction), then the kill rate, then tests passed on the winner, then the QA council's own ranking."""
        if not self.counted:
            return (-1.0, 0.0, 0, -self.council_rank)
        kill_rate = self.killed / self.wrong if self.wrong else 0.0
        return (self.passed_on_winner / self.counted, kill_rate, self.passed_on_winner, -self.council_rank)

    def line(self) -> str:
        kills = (
            f"rejects {self.killed}/{self.wrong} DEV proposals shown wrong"
            if self.wrong
            else "no DEV proposal shown wrong"
        )
        void = f", {self.void} failing on every DEV proposal (not counted)" if self.void else ""
        return f"{self.author_id}: {self.passed_on_winner}/{self.counted} tests pass on the DEV winner, {kills}{void}"


def void_tests(units: Sequence[CheckUnit], runs: Mapping[str, Sequence[UnitOutcome]]) -> frozenset[str]:
    """The tests that failed on every DEV proposal they ran on: they say nothing about any of them (a wrong test, as
    likely as a defect every proposal shares). With fewer than two DEV proposals nothing tells the two apart."""
    if len(runs) < 2:
        return frozenset()
    passing = {o.test_id for results in runs.values() for o in results if o.passed}
    return frozenset(u.test_id for u in units) - passing


def qa_standings(
    tests: Mapping[str, Sequence[CheckUnit]],
    outcomes: Mapping[str, Mapping[str, Sequence[UnitOutcome]]],
    dev_winner: str,
    wrong: frozenset[str],
    council_ranks: Mapping[str, int],
) -> list[QaStanding]:
    """Each QA proposal's standing, best first. `outcomes[qa][dev]`: qa's tests run on dev's solution."""
    standings = []
    for qa, units in tests.items():
        runs = outcomes.get(qa, {})
        void = void_tests(units, runs)
        on_winner = {o.test_id for o in runs.get(dev_winner, ()) if o.passed and o.test_id not in void}
        killed = sum(1 for dev in wrong if any(not o.passed and o.test_id not in void for o in runs.get(dev, ())))
        standings.append(
            QaStanding(qa, len(units), len(void), len(on_winner), killed, len(wrong), council_ranks.get(qa, 99))
        )
    return sorted(standings, key=lambda s: (s.key, s.author_id), reverse=True)


def plan_outcome(checks: Sequence[CrossCheck]) -> PlanOutcome:
    """From the latest attempt of each check (a follow-up is an action, not a check)."""
    latest: dict[tuple[CheckKind, str, str], CrossCheck] = {}
    for c in checks:
        if c.kind is not CheckKind.DEV_FOLLOW_UP:
            latest[(c.kind, c.subtask_id, c.target_id)] = c
    ran = [c for c in latest.values() if c.status is not CheckStatus.NOT_RUN]
    if not ran:
        return PlanOutcome.UNCHECKED
    return PlanOutcome.CHECKED if all(c.status is CheckStatus.PASSED for c in ran) else PlanOutcome.FAILED_CHECKS


def failed_checks(checks: Sequence[CrossCheck]) -> list[CrossCheck]:
    latest: dict[tuple[CheckKind, str, str], CrossCheck] = {}
    for c in checks:
        if c.kind is not CheckKind.DEV_FOLLOW_UP:
            latest[(c.kind, c.subtask_id, c.target_id)] = c
    return [c for c in latest.values() if c.status is CheckStatus.FAILED]


# --- test code as the sandbox runs it ------------------------------------------------------------------------------


class _Imports(ast.NodeTransformer):
    """`from textstats import f` -> `from solution import f`; `import textstats` -> `import solution as textstats`;
    `import pytest` -> the shim's name. Standard-library imports stay."""

    def __init__(self) -> None:
        self.pytest = False

    @staticmethod
    def _module(name: str) -> bool:
        top = name.split(".")[0]
        return top not in sys.stdlib_module_names and top not in TEST_LIBRARIES and top != SOLUTION_MODULE

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        if node.level == 0 and node.module and node.module.split(".")[0] == "pytest":
            self.pytest = True
            return ast.Pass()
        if node.level or (node.module and self._module(node.module)):
            return ast.ImportFrom(module=SOLUTION_MODULE, names=node.names, level=0)
        return node

    def visit_Import(self, node: ast.Import) -> ast.AST:
        names = []
        for alias in node.names:
            if alias.name == "pytest":
                self.pytest = True
            elif self._module(alias.name):
                names.append(ast.alias(SOLUTION_MODULE, alias.asname or alias.name.split(".")[0]))
            else:
                names.append(alias)
        return ast.Import(names=names) if names else ast.Pass()


def as_solution_tests(code: str, shadowing: frozenset[str] = frozenset()) -> str:
    """Test code written against a module of its own (`from textstats import word_count`) made to run against a
    solution loaded as `solution`; "" when it does not parse. Top-level functions and classes named in `shadowing`
    (the names the solutions define) are dropped: a copy of the implementation pasted next to the tests would
    otherwise be what they test."""
    try:
        tree = ast.parse(code)
        tree.body = [node for node in tree.body if not _shadows(node, shadowing)]
        imports = _Imports()
        tree = ast.fix_missing_locations(imports.visit(tree))
        text = ast.unparse(tree)
    except (*UNPARSABLE, TypeError):
        return ""
    return f"{PYTEST_SHIM}\n{text}" if imports.pytest else text


_STRAIGHT = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr, ast.Assert, ast.Import, ast.ImportFrom, ast.Pass)


def one_assert_each(code: str) -> str:
    """Each straight-line test function with several asserts (`def test_x(): a = f(); assert p; assert q`) as one
    function per assert, each keeping the statements before it but not the other asserts: one wrong assert among
    right ones (a small model's usual test) then costs only itself, and a test's verdict says which claim held.
    Functions with loops, branches or `with` blocks stay whole; code that does not parse is returned as it is."""
    try:
        tree = ast.parse(code)
    except UNPARSABLE:
        return code
    body: list[ast.stmt] = []
    for node in tree.body:
        if not _splittable(node):
            body.append(node)
            continue
        assert isinstance(node, ast.FunctionDef)
        asserts = [s for s in node.body if isinstance(s, ast.Assert)]
        for i, kept in enumerate(asserts, 1):
            stmts = [s for s in node.body if not isinstance(s, ast.Assert) or s is kept]
            stmts = stmts[: stmts.index(kept) + 1]
            clone = copy.copy(node)
            clone.name, clone.body, clone.decorator_list = f"{node.name}_{i}", stmts, []
            body.append(clone)
    try:
        return ast.unparse(ast.fix_missing_locations(ast.Module(body, [])))
    except (RecursionError, ValueError, TypeError):
        return code


def _splittable(node: ast.stmt) -> bool:
    """A `test*` function without parameters whose body is straight-line statements, with more than one assert."""
    if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test") or node.args.args:
        return False
    straight = all(isinstance(s, _STRAIGHT) for s in node.body)
    return straight and sum(isinstance(s, ast.Assert) for s in node.body) > 1


def _shadows(node: ast.stmt, names: frozenset[str]) -> bool:
    kinds = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    return isinstance(node, kinds) and node.name in names and not node.name.lower().startswith("test")


def defined_names(code: str) -> frozenset[str]:
    """The top-level functions and classes a solution defines."""
    try:
        tree = ast.parse(code)
    except UNPARSABLE:
        return frozenset()
    kinds = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    return frozenset(node.name for node in tree.body if isinstance(node, kinds))


def acceptance_from(units: Sequence[str], limit: int) -> str:
    """Failing test units as one block of acceptance tests: their shared set-up once, then each test, within
    `limit` characters (tests that do not fit are left out)."""
    setup: dict[str, None] = {}
    tests: dict[str, None] = {}
    for code in units:
        try:
            tree = ast.parse(code)
        except UNPARSABLE:
            continue
        called = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")}
        for node in tree.body:
            text = ast.get_source_segment(code, node) or ""
            if isinstance(node, ast.Assert) or (isinstance(node, ast.FunctionDef) and node.name in called):
                tests[text] = None
            elif not (isinstance(node, ast.Expr) and _calls(node, called)):
                setup[text] = None
    head = "\n".join(setup)
    out = head
    for test in tests:
        if len(out) + len(test) + 2 > limit:
            break
        out = f"{out}\n\n{test}" if out else test
    return out if tests else ""


def _calls(node: ast.Expr, names: set[str]) -> bool:
    return isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name) and node.value.func.id in names


_MODULE_NAMED = re.compile(r"\bmodule\s+`?([A-Za-z_]\w*)(?:\.py)?`?", re.IGNORECASE)
_FILE_NAMED = re.compile(r"`([A-Za-z_]\w*)\.py`")


def module_named(*texts: str) -> str:
    """The module a DEV subtask names (`module \\`textstats\\``, `textstats.py`); "" when it names none."""
    for text in texts:
        for pattern in (_FILE_NAMED, _MODULE_NAMED):
            match = pattern.search(text)
            if match and match[1].lower() not in {"that", "which", "with", "for", "the", "a", "an"}:
                return match[1]
    return ""


@dataclass(frozen=True)
class TestRuns:
    """Every checking proposal's tests run on every solution of the subtask it checks."""

    tests: dict[str, tuple[CheckUnit, ...]]
    """Checking author -> its test units, as they ran (imports pointed at the solution)."""
    outcomes: dict[str, dict[str, tuple[UnitOutcome, ...]]]
    """Checking author -> solution author -> the outcomes of the checking author's tests on that solution."""
    skipped: str = ""
    """Why nothing ran (no sandbox), else ""."""


@dataclass(frozen=True)
class Reference:
    """One place a manifest refers to the DEV module, and whether it matches."""

    what: str
    """`entry point`, `port` or `image`."""
    found: str
    expected: str
    matches: bool

    def line(self) -> str:
        verdict = "matches" if self.matches else "does NOT match"
        return f"{self.what}: {self.found!r} {verdict} {self.expected!r}"
