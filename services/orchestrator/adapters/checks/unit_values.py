"""Which part of a test unit runs in the sandbox, and how its verdict is decided outside it.

Every top-level `assert` of a unit (and of a straight-line `test_*` function the unit defines and calls) is a
*check* decided here:
- `assert A <op> B` with one comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`; `is`/`is not` against
  `None`, `True` or `False`);
- `assert not A`, and `assert A` of any other shape (its truth).
Only the other statements and the operands that are not literals go into the sandbox: the
sandbox returns their values as plain builtin values, and the comparison (or the truth test) runs here, on values
decoded strictly into builtin types. A literal operand, or a name the set-up binds to a literal once and never
uses otherwise (`_want = 10` of a task example), is the *expected* value: it never enters the sandbox. So an object
whose `__eq__` always answers True cannot pass, nor can patched builtins or a patched AssertionError change the
comparison.

A unit with no such assert (a TestCase method, a test with loops) is *opaque*: it runs in its own process, and it
passes only when that process reports having run it to the end and exits 0. Its asserts run in the process of the
code under test, so code that forges its own process's report could pass it (docs/evidence.md, residual risks).
"""

from __future__ import annotations

import ast
import datetime
import decimal
import fractions
import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 40

_COMPARE: dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.In: ("in", lambda a, b: a in b),
    ast.NotIn: ("not in", lambda a, b: a not in b),
    ast.Is: ("is", operator.is_),
    ast.IsNot: ("is not", operator.is_not),
}
_SINGLETONS = (None, True, False)


class MalformedValue(ValueError):
    """A value from the sandbox that is not the encoding of builtin values."""


@dataclass(frozen=True)
class Operand:
    """A value the check needs: computed in the sandbox (`expr`), or a literal known here (`literal`)."""

    expr: str | None
    literal: Any = None
    text: str = ""


@dataclass(frozen=True)
class Check:
    """One assert decided here: the operator ("==", "!=", …, "truth", "not") and its operands."""

    op: str
    operands: tuple[Operand, ...]

    @property
    def exprs(self) -> list[str]:
        return [o.expr for o in self.operands if o.expr is not None]


@dataclass(frozen=True)
class UnitPlan:
    """How a unit runs: `steps` in order, each code to run (a str) or a Check whose operands the sandbox computes.
    `decided_outside`: no assert is left inside the code that runs in the sandbox."""

    steps: tuple[str | Check, ...]
    decided_outside: bool

    @property
    def checks(self) -> list[Check]:
        return [step for step in self.steps if isinstance(step, Check)]

    @property
    def opaque(self) -> bool:
        return not self.checks

    @property
    def expr_count(self) -> int:
        return sum(len(c.exprs) for c in self.checks)


def plan_unit(code: str) -> UnitPlan:
    """How `code` is run and judged: every top-level assert (also those of a straight-line `test_*` function that
    the unit defines and calls) becomes a Check; the rest runs as it is. Code nested too deeply to take apart
    here runs as it is (opaque): the sandbox's compiler then says what is wrong with it."""
    try:
        return _plan(code)
    except (RecursionError, MemoryError):
        return UnitPlan((code,), False)


def _plan(code: str) -> UnitPlan:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return UnitPlan((code,), False)
    body = _inlined(tree.body)
    literals = _literal_names(body)
    steps: list[str | Check] = []
    pending: list[ast.stmt] = []
    expected = {i for i, _ in literals.values()}
    for index, stmt in enumerate(body):
        if index in expected:
            continue
        check = _check(stmt, literals) if isinstance(stmt, ast.Assert) else None
        if check is None:
            pending.append(stmt)
            continue
        if pending:
            steps.append(_source(pending))
            pending = []
        steps.append(check)
    if pending:
        steps.append(_source(pending))
    code_steps = [step for step in steps if isinstance(step, str)]
    inside = any(isinstance(n, ast.Assert) for step in code_steps for n in ast.walk(ast.parse(step)))
    if not any(isinstance(step, Check) for step in steps):
        return UnitPlan((code,), False)
    return UnitPlan(tuple(steps), not inside)


def _source(stmts: Sequence[ast.stmt]) -> str:
    return "\n".join(ast.unparse(stmt) for stmt in stmts)


_STRAIGHT = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr, ast.Assert, ast.Import, ast.ImportFrom, ast.Pass)


def _inlined(body: list[ast.stmt]) -> list[ast.stmt]:
    """`def test_x(): <straight-line code>` followed by the call `test_x()` (how `split_tests` writes a test
    function): the function's body in place of the call, so its asserts are decided here too."""
    if len(body) < 2:
        return body
    call = body[-1]
    if not (
        isinstance(call, ast.Expr)
        and isinstance(call.value, ast.Call)
        and isinstance(call.value.func, ast.Name)
        and not call.value.args
        and not call.value.keywords
    ):
        return body
    name = call.value.func.id
    defs = [s for s in body[:-1] if isinstance(s, ast.FunctionDef) and s.name == name]
    if len(defs) != 1:
        return body
    func = defs[0]
    if func.decorator_list or func.args.args or func.args.vararg or func.args.kwarg or func.args.kwonlyargs:
        return body
    statements = [s for s in func.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if not all(isinstance(s, _STRAIGHT) for s in statements):
        return body
    if any(isinstance(n, ast.Global | ast.Nonlocal | ast.Yield | ast.YieldFrom | ast.Return) for n in ast.walk(func)):
        return body
    rest = [s for s in body[:-1] if s is not func]
    return [*rest, *statements]


def _check(stmt: ast.Assert, literals: dict[str, tuple[int, Any]]) -> Check | None:
    test = stmt.test
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _COMPARE:
        op = _COMPARE[type(test.ops[0])][0]
        nodes = [test.left, test.comparators[0]]
    elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        op, nodes = "not", [test.operand]
    else:
        op, nodes = "truth", [test]
    operands: list[Operand] = []
    for node in nodes:
        found, value = _literal(node)
        if found:
            operands.append(Operand(None, value, ast.unparse(node)))
        elif isinstance(node, ast.Name) and node.id in literals:
            operands.append(Operand(None, literals[node.id][1], node.id))
        else:
            operands.append(Operand(ast.unparse(node), text=ast.unparse(node)))
    if op in ("is", "is not") and not any(o.expr is None and _singleton(o.literal) for o in operands):
        return None
    return Check(op, tuple(operands))


def _singleton(value: Any) -> bool:
    return any(value is s for s in _SINGLETONS)


def _literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _literal_names(body: Sequence[ast.stmt]) -> dict[str, tuple[int, Any]]:
    """Names bound once to a literal (`_want = 10`) and used only as an operand of one top-level assert: that
    literal is the expected value, kept here."""
    uses: dict[str, int] = {}
    for node in body:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                uses[sub.id] = uses.get(sub.id, 0) + 1
    operand_names: dict[str, int] = {}
    for stmt in body:
        if isinstance(stmt, ast.Assert):
            test = stmt.test
            nodes = [test.left, *test.comparators] if isinstance(test, ast.Compare) else []
            for operand in nodes:
                if isinstance(operand, ast.Name):
                    operand_names[operand.id] = operand_names.get(operand.id, 0) + 1
            # uses inside the assert's message do not count: the message is not run
            if stmt.msg is not None:
                for sub in ast.walk(stmt.msg):
                    if isinstance(sub, ast.Name):
                        uses[sub.id] -= 1
    found: dict[str, tuple[int, Any]] = {}
    for index, stmt in enumerate(body):
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            ok, value = _literal(stmt.value)
            if ok and uses.get(name) == 2 and operand_names.get(name) == 1:
                found[name] = (index, value)
    return found


def _pair(raw: Any, kind: type) -> tuple[Any, Any]:
    if not (isinstance(raw, list) and len(raw) == 2 and all(type(x) is kind for x in raw)):
        raise ValueError("bad pair")
    return raw[0], raw[1]


def _text(raw: Any) -> str:
    if not isinstance(raw, str) or len(raw) > 200:
        raise ValueError("bad text")
    return raw


def _timedelta(raw: Any) -> datetime.timedelta:
    if not (isinstance(raw, list) and len(raw) == 3 and all(type(x) is int for x in raw)):
        raise ValueError("bad timedelta")
    return datetime.timedelta(days=raw[0], seconds=raw[1], microseconds=raw[2])


_STDLIB: dict[str, Callable[[Any], Any]] = {
    "complex": lambda raw: complex(*_pair(raw, float)),
    "datetime.date": lambda raw: datetime.date.fromisoformat(_text(raw)),
    "datetime.datetime": lambda raw: datetime.datetime.fromisoformat(_text(raw)),
    "datetime.time": lambda raw: datetime.time.fromisoformat(_text(raw)),
    "datetime.timedelta": _timedelta,
    "decimal": lambda raw: decimal.Decimal(_text(raw)),
    "fraction": lambda raw: fractions.Fraction(*_pair(raw, int)),
}
"""Standard-library values the sandbox may send (as text), turned back into their own types."""


def decode(data: Any, depth: int = 0) -> Any:
    """A value from the sandbox's encoding (see `sandbox_supervisor.encode`), as builtin values only."""
    if depth > MAX_DEPTH:
        raise MalformedValue("nested too deeply")
    if data is None or isinstance(data, bool | str | int | float):
        return data
    if not isinstance(data, dict) or set(data) != {"t", "v"}:
        raise MalformedValue("not an encoded value")
    kind, raw = data["t"], data["v"]
    if kind == "bytes":
        if not isinstance(raw, str):
            raise MalformedValue("bad bytes")
        try:
            return bytes.fromhex(raw)
        except ValueError as exc:
            raise MalformedValue("bad bytes") from exc
    if kind in _STDLIB:
        try:
            return _STDLIB[kind](raw)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise MalformedValue(f"bad {kind}") from exc
    if not isinstance(raw, list):
        raise MalformedValue("bad container")
    try:
        if kind == "list":
            return [decode(v, depth + 1) for v in raw]
        if kind == "tuple":
            return tuple(decode(v, depth + 1) for v in raw)
        if kind == "set":
            return {decode(v, depth + 1) for v in raw}
        if kind == "frozenset":
            return frozenset(decode(v, depth + 1) for v in raw)
        if kind == "dict":
            if not all(isinstance(p, list) and len(p) == 2 for p in raw):
                raise MalformedValue("bad dict")
            return {decode(k, depth + 1): decode(v, depth + 1) for k, v in raw}
    except TypeError as exc:  # an unhashable key or member
        raise MalformedValue("unhashable member") from exc
    raise MalformedValue(f"unknown type {kind!r}")


def _show(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_report(text: Any) -> Any:
    """A report line as the sandbox's process wrote it (untrusted JSON text); None when it is not JSON."""
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        return None


def judge(plan: UnitPlan, report: Any) -> tuple[bool, str]:
    """The verdict of a unit from its process's report (`{"ok": true, "values": [...]}`): every Check decided
    here on the values, in order; the first that fails is the failure."""
    if not isinstance(report, dict):
        return False, "the test's process sent no report"
    if report.get("ok") is not True:
        failure = report.get("failure")
        return False, str(failure)[:600] if isinstance(failure, str) else "the test failed"
    if plan.opaque:
        return True, ""
    raw = report.get("values")
    if not isinstance(raw, list) or len(raw) != plan.expr_count:
        return False, "the test's process sent a malformed report"
    try:
        computed = iter([decode(v) for v in raw])
    except (MalformedValue, RecursionError) as exc:
        return False, f"a value that cannot be compared ({exc})"
    for check in plan.checks:
        values = [o.literal if o.expr is None else next(computed) for o in check.operands]
        try:
            passed, failure = _verdict(check, values)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"[:600]
        if not passed:
            return False, failure
    return True, ""


def _verdict(check: Check, values: list[Any]) -> tuple[bool, str]:
    first = check.operands[0]
    if check.op == "truth":
        return (True, "") if values[0] else (False, f"AssertionError: {first.text} is {_show(values[0])}")
    if check.op == "not":
        return (False, f"AssertionError: {first.text} is {_show(values[0])}") if values[0] else (True, "")
    compare = next(fn for name, fn in _COMPARE.values() if name == check.op)
    left, right = values
    if compare(left, right):
        return True, ""
    if check.op == "==" and check.operands[1].expr is None and first.expr is not None:
        return False, f"expected {_show(right)}, got {_show(left)}"
    if check.op == "==" and first.expr is None and check.operands[1].expr is not None:
        return False, f"expected {_show(left)}, got {_show(right)}"
    return False, f"AssertionError: {_show(left)} {check.op} {_show(right)} is false"


def job_unit(test_id: str, source: str, plan: UnitPlan) -> dict[str, Any]:
    """The unit as the sandbox's supervisor gets it: its id, its source (units of one source share a process) and
    its steps, each code to run (`{"run": code}`) or expressions whose values to send (`{"values": [expr, ...]}`)."""
    steps = [{"run": s} if isinstance(s, str) else {"values": s.exprs} for s in plan.steps]
    return {"id": test_id, "source": source, "steps": steps}
