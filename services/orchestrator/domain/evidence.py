"""Evidence: the tests a proposal's code is run against, what came of them, and how solutions agree.

Three sources of tests, in the order the ranking trusts them:
- *examples* found in the task text and the rubric: doctest lines (`>>> call` followed by the expected output),
  `assert` lines, and `call(...) == value` / `call(...) ==> value` lines of prose;
- *acceptance tests* the client sent (`TaskConstraints.acceptance_tests`): part of the specification;
- the *agents' own tests*: the test blocks of every proposal. Every solution runs against every agent's tests,
  and solutions are grouped CodeT-style (dual agreement): solutions that pass the same agent tests form a group,
  and a group's score is (solutions in it) x (agent tests they pass). An agent's test judges only the solution it
  ran against, and one that fails on every candidate counts for none (`void_agent_tests`).

A fourth source is not a test: *probes*, calls a test designer wrote (inputs only, no expected values). Every
solution runs on them, and solutions that give the same values on every probe and the same verdicts on the
specification behave alike: they form a *behaviour group* (MBR-exec, AlphaCode's clustering). The ranking prefers
the specification's verdicts first, then the larger group (`behaviour_groups`).

Everything here is pure: turning text into test units, and results into agreement groups. Running the code is the
verifier's job (a sandbox adapter), never this module's.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from orchestrator.domain.python_names import bound_names, called_names, read_names

MAX_UNITS_PER_SOURCE = 30
UNPARSABLE = (SyntaxError, ValueError, RecursionError, MemoryError)
"""What parsing hostile text can raise: code nested too deeply makes the parser recurse or run out of memory."""
MAX_UNIT_CHARS = 2000
MAX_FAILURE_CHARS = 400


class UnitSource(StrEnum):
    EXAMPLE = "example"
    ACCEPTANCE = "acceptance"
    AGENT = "agent"
    PROBE = "probe"


@dataclass(frozen=True)
class CheckUnit:
    """One test: code that raises (an AssertionError or anything else) when it fails."""

    test_id: str
    source: UnitSource
    code: str
    author_id: str = ""  # the agent that wrote it (agent tests only)


@dataclass(frozen=True)
class UnitOutcome:
    test_id: str
    passed: bool
    failure: str = ""  # trimmed: the exception line, or what was expected and what came
    value: str = ""  # probes only: what the call gave, as a short canonical text ("raises TypeError" when it raised)


@dataclass(frozen=True)
class ProposalEvidence:
    """What verification found for one proposal in one round."""

    author_id: str
    round: int
    outcomes: tuple[UnitOutcome, ...] = ()
    skipped: str = ""  # why nothing ran (no sandbox, no code), else ""
    solution_found: bool = True
    agreement: int = 0  # CodeT group score: solutions in the group x agent tests they pass
    group: tuple[str, ...] = ()  # authors whose solutions pass exactly the same agent tests
    lint_errors: tuple[str, ...] = ()
    behaviour_group: tuple[str, ...] = ()  # authors whose solutions behave identically on the probes and the spec
    split_by: tuple[str, ...] = ()  # the probe calls on which this solution's group differs from another group
    defines_task: bool = True  # its solution parses and defines every name the task asks for

    def _of(self, ids: Iterable[str]) -> list[UnitOutcome]:
        wanted = set(ids)
        return [o for o in self.outcomes if o.test_id in wanted]

    def counts(self, units: Sequence[CheckUnit], source: UnitSource) -> tuple[int, int]:
        """(passed, total) over the units of one source."""
        results = self._of(u.test_id for u in units if u.source is source)
        return sum(o.passed for o in results), len(results)

    def failures(self, limit: int = 5) -> list[UnitOutcome]:
        return [o for o in self.outcomes if not o.passed][:limit]

    def tally(self) -> tuple[int, int, int, int]:
        """(specification passed, total, agent tests passed, total), from the test ids this module gives."""
        spec = [o for o in self.outcomes if is_spec_test(o.test_id)]
        agent = [o for o in self.outcomes if not is_spec_test(o.test_id) and not is_probe(o.test_id)]
        return sum(o.passed for o in spec), len(spec), sum(o.passed for o in agent), len(agent)


def is_spec_test(test_id: str) -> bool:
    """Specification tests are `example-N` and `acceptance-N`; agent tests are `<author>:test-N`."""
    return test_id.startswith(("example-", "acceptance-"))


def is_probe(test_id: str) -> bool:
    """Probes are `probe-N`: calls whose values group solutions, not tests."""
    return test_id.startswith("probe-")


@dataclass(frozen=True)
class Specification:
    """The tests every proposal must pass: the task's examples and the client's acceptance tests."""

    units: tuple[CheckUnit, ...] = field(default_factory=tuple)
    # The import statements of the task's own code (a stub's `from typing import List`): in scope when a solution
    # runs, as in the file the solution completes. Not a test; it does not make a specification.
    preamble: tuple[str, ...] = ()
    probes: tuple[CheckUnit, ...] = ()
    """Calls every solution runs to be grouped by behaviour (`probe_units`); not tests, not the specification."""
    names: tuple[str, ...] = ()
    """What the task asks to define (`task_names`): a solution without them does not answer the task."""
    asks_for_solution: bool = True
    """A proposal is the solution itself (DEV): one without a Python solution that parses and defines `names` does
    not answer the task. False where proposals are tests (QA) or manifests (DEVOPS): the key does not apply."""

    def __bool__(self) -> bool:
        return bool(self.units)


# --- examples in the task -----------------------------------------------------------------------------------------

_ARROW = re.compile(
    r"^(?P<call>[A-Za-z_][\w.]*\(.*\))\s*(?:#\s*)?"
    r"(?:==>|=>|➞|->|==|→|returns|should\s+return|should\s+be|gives)\s*:?\s*(?P<want>.+?)\s*$"
)
"""`f(2) ==> 4`, `f(2) returns 4`, `f(2) should return 4.`, `f(2)   # returns 4`: a call of the task's function and
the value it gives, as prose writes it."""

_FOR = re.compile(r"\b(?:output|result|return\svalue|answer)\s+(?:should\s+be|will\s+be|is)\b\s*:?", re.IGNORECASE)
"""`For lst = [1, 2] the output should be 3`: the arguments by parameter name, then the value."""

_INPUT = re.compile(r"^input\s*:\s*(?P<binds>.+?)\s*$", re.IGNORECASE)
_OUTPUT = re.compile(r"^output\s*:\s*(?P<want>.+?)\s*$", re.IGNORECASE)
"""`Input: [4, 2, 3]` (or `Input: arr = [4, 2, 3], k = 2`) and, on the next line, `Output: [2, 1]`."""

_BULLET = re.compile(r"^(?:[*•-]|\d{1,2}[.)])\s+")
_BIND = re.compile(r"(?P<name>[A-Za-z_]\w*)\s*=(?!=)\s*")
_SIGNATURE = re.compile(
    r"^def[ \t]+(?P<name>\w+)[ \t]*\((?P<params>[^)\n]*)\)(?:[ \t]*->[ \t]*(?P<returns>[^:\n]+))?", re.MULTILINE
)
"""A top-level function's signature on one line (a method or a nested helper is not callable by its name alone)."""
MAX_LITERAL_TRIES = 64
"""A bound on the parses one prose binding costs (a value ends at one of the last commas of a bounded line)."""
_PROSE_LITERALS = {"true": "True", "false": "False", "none": "None", "null": "None"}


_DEFINED = re.compile(r"^[ \t]*def[ \t]+(\w+)[ \t]*\(", re.MULTILINE)


def _literal_call(call: str, defined: set[str]) -> bool:
    """Prose examples are trusted only as `f(literal, ...)` calls of a function the task defines (when it defines
    any): `is_happy(abc) => True` or a misspelt name would be a test no solution can pass."""
    try:
        node = ast.parse(call, mode="eval").body
    except UNPARSABLE:
        return False
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.keywords:
        return False
    if defined and node.func.id not in defined:
        return False
    try:
        return all(_literal(ast.unparse(arg)) for arg in node.args)
    except UNPARSABLE:
        return False


def parses(code: str, mode: str = "exec") -> bool:
    try:
        ast.parse(code, mode=mode)
    except UNPARSABLE:
        return False
    return True


def _literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _expectation(expr: str, want: str) -> str:
    """A test that `expr` evaluates to `want`: equal values when `want` is a literal, else equal reprs."""
    if _literal(want):
        return f"_got = {expr}\n_want = {want}\nassert _got == _want, f'expected {{_want!r}}, got {{_got!r}}'"
    return f"_got = {expr}\nassert repr(_got) == {want!r}, {'expected ' + want!r}"


def _doctests(lines: list[str]) -> Iterable[str]:
    """One unit per expected output. A statement with no output (`>>> s = Stack()`, and once there is such set-up,
    `>>> s.push(1)`) is the set-up of the examples after it in the same docstring, as doctest runs them: each unit
    repeats that set-up, since every unit runs in a process of its own. Set-up that no example follows is a unit of
    its own, and so is an expression with no output and no set-up before it (`>>> longest([])`): they must run."""
    setup: list[str] = []
    trailing = False
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line.startswith(">>>"):
            if line.startswith(('"""', "'''", "def ", "class ", "async def ")):  # a new docstring: a fresh namespace
                if trailing:
                    yield "\n".join(setup)
                setup, trailing = [], False
            i += 1
            continue
        expr = line[3:].strip()
        i += 1
        while i < len(lines) and lines[i].strip().startswith("..."):
            expr += "\n" + lines[i].strip()[3:].lstrip()
            i += 1
        want, i = _expected_output(lines, i)
        if not parses(expr):
            continue
        if not want and not setup and parses(expr, "eval"):
            yield expr  # an expression on its own (`longest([])`): it must run
        elif not want:
            setup.append(expr)
            trailing = True
        elif parses(expr, "eval"):
            yield "\n".join([*setup, _expectation(expr, want)])
            trailing = False
    if trailing:
        yield "\n".join(setup)


def _expected_output(lines: list[str], i: int) -> tuple[str, int]:
    """The expected output after a `>>>` line: one line, or as many (up to 5) as a multi-line literal needs. It ends
    at a blank line, the next `>>>`, or the docstring's closing quotes."""
    taken: list[str] = []
    while i < len(lines) and len(taken) < 5:
        line = lines[i].strip()
        if not line or line.startswith(">>>") or line.startswith(('"""', "'''")):
            break
        taken.append(line)
        i += 1
        if _literal(" ".join(taken)):
            break
    text = " ".join(taken)
    if len(taken) > 1 and not _literal(text):
        return taken[0], i  # prose after a one-line output
    return text, i


def examples_in(*texts: str) -> list[str]:
    """Test code for every example found in the texts (the task description and the rubric). An example that
    reads a name nothing gives it (`>>> calc.area(2)` in a docstring where no `calc = ...` runs before it, as
    class docstrings often show one method alone) is left out: no solution could pass it. A name the example calls
    (`add(2, 3)`) is taken as the function the task asks for."""
    known = _known_names(*texts)
    return [code for code in _examples(*texts) if not _free_names(code) - known]


def _examples(*texts: str) -> list[str]:
    found: list[str] = []
    # Without a `def`, prose calls count only of the functions the task names (`is_even(n: int) -> bool`), if any.
    defined = {name for text in texts for name in _DEFINED.findall(text)} or set(task_names(*texts))
    signatures = _signatures(*texts)
    for text in texts:
        lines = text.splitlines()
        found.extend(_doctests(lines))
        for n, raw in enumerate(lines):
            line = _BULLET.sub("", raw.strip(), count=1)
            if line.startswith("assert ") and parses(line):
                found.append(line)
            elif (
                len(line) <= MAX_UNIT_CHARS
                and not line.startswith(("def ", ">>>"))
                and (example := _prose_example(line, lines[n + 1 : n + 3], defined, signatures))
            ):
                found.append(_expectation(*example))
    return list(dict.fromkeys(found))[:MAX_UNITS_PER_SOURCE]


_DEFINED_ANY = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_]\w*)", re.MULTILINE)


def _known_names(*texts: str) -> frozenset[str]:
    """Names an example may use without binding them: builtins, the standard library's modules (a solution's
    module-level imports are in the examples' scope), what the texts define, import, or name as the task."""
    names = set(dir(builtins)) | set(sys.stdlib_module_names) | set(task_names(*texts))
    for text in texts:
        names.update(_DEFINED_ANY.findall(text))
    for statement in task_imports(*texts):
        for alias in ast.parse(statement).body[0].names:  # type: ignore[attr-defined]
            names.add((alias.asname or alias.name).split(".", 1)[0])
    return frozenset(names)


def _free_names(code: str) -> set[str]:
    """The names `code` reads but never binds nor calls; nothing when it does not parse."""
    try:
        tree = ast.parse(code)
    except UNPARSABLE:
        return set()
    return read_names(tree) - bound_names(tree) - called_names(tree)


def _prose_example(
    line: str, after: list[str], defined: set[str], signatures: Mapping[str, _Signature]
) -> tuple[str, str] | None:
    """(call, value) of an example written as prose on this line (and, for `Input:`, the lines after), or None.
    Never one whose value the function's return annotation rules out (`-> None`: it works in place, and `Output:`
    shows its argument; `-> str` and `101`; `-> str` and prose's `null`)."""
    if match := _ARROW.match(line):
        call, want = match["call"], _prose_value(match["want"])
        if want is None or not _literal_call(call, defined):
            return None
    elif line[:4].lower() == "for " and (match := _FOR.search(line, 4)):
        binds = re.sub(r"(?i)\bthe\s*$", "", line[4 : match.start()].rstrip()).strip().rstrip(",")
        want, call = _prose_value(line[match.end() :]), _bound_call(binds, signatures, positional=False)
    elif match := _INPUT.match(line):
        want, call = _next_output(after), _bound_call(match["binds"], signatures, positional=True)
    else:
        return None
    if not call or want is None:
        return None
    signature = signatures.get(call.split("(", 1)[0])
    return (call, want) if signature is None or _fits(signature.returns, want) else None


_ANNOTATED = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict, "tuple": tuple}


def _fits(returns: str, want: str) -> bool:
    """Whether a literal can be what a function annotated `-> returns` gives: `None` only for `-> None` and no
    value at all for it; for a plain builtin type (`str`, `List[int]`...), a value of that type (an int for a
    float). Any other annotation, or none, rules nothing out."""
    returns = returns.strip()
    value = ast.literal_eval(want)
    if returns == "None":
        return False  # works in place or prints: its value is not what the example shows
    base = _ANNOTATED.get(returns.split("[", 1)[0].strip().lower().removeprefix("typing."))
    if base is None:
        return True
    if base is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, base)


def _prose_value(text: str) -> str | None:
    """The literal a prose example gives, or None: a sentence's closing `.`, a trailing `# comment`, and prose's
    `true`/`false`/`none` taken off. `returns 'x' if ...` or `is the sum of` is not a value."""
    text = text.strip().rstrip(".,;").strip()
    if "#" in text and _literal(head := text.split("#", 1)[0].strip().rstrip(".,;").strip()):
        text = head  # `1  # wrong: ...` is the value 1 (a `#` inside a string literal leaves no literal before it)
    text = _PROSE_LITERALS.get(text.lower(), text)
    return text if text and _literal(text) else None


def _next_output(lines: list[str]) -> str | None:
    """The value of an `Output:` line right after an `Input:` line (a blank line between allowed)."""
    for raw in lines:
        line = _BULLET.sub("", raw.strip(), count=1)
        if len(line) > MAX_UNIT_CHARS:
            return None
        if match := _OUTPUT.match(line):
            return _prose_value(match["want"])
        if line:
            return None
    return None


@dataclass(frozen=True)
class _Signature:
    params: tuple[str, ...]
    returns: str = ""  # the return annotation as written, "" without one


def _signatures(*texts: str) -> dict[str, _Signature]:
    """The parameters and return annotation of each top-level function the texts define, by name (a first
    parameter `self` or `cls` leaves it out: a call by name cannot reach a method)."""
    found: dict[str, _Signature] = {}
    for text in texts:
        for match in _SIGNATURE.finditer(text):
            try:
                tree = ast.parse(f"def f({match['params']}): pass")
            except UNPARSABLE:
                continue
            node = tree.body[0]
            assert isinstance(node, ast.FunctionDef)
            params = tuple(a.arg for a in (*node.args.posonlyargs, *node.args.args))
            if params[:1] in (("self",), ("cls",)) or node.args.kwonlyargs:
                continue
            found.setdefault(match["name"], _Signature(params, (match["returns"] or "").strip()))
    return found


def _bound_call(binds: str, signatures: Mapping[str, _Signature], *, positional: bool) -> str | None:
    """`f(v1, v2)` for `a = v1, b = v2` where exactly one function of the task has the parameters (a, b), each
    bound to a literal; prose after the bindings is ignored (`N = 1000, the sum of digits will be 1`), unless it
    binds something more (`with m = 7`). With `positional`, a bare literal is the one argument of the task's one
    function, which has one parameter (`Input: [4, 2, 3]`; not `Input: [1, 2], 3`)."""
    values: dict[str, str] = {}
    rest = binds.strip()
    while (match := _BIND.match(rest)) and match["name"] not in values:
        value, rest = _leading_literal(rest[match.end() :])
        if value is None:
            return None
        values[match["name"]] = value
        rest = rest.lstrip().removeprefix(",").lstrip()
    if not values:
        value = _prose_value(binds)
        if not positional or len(signatures) != 1 or value is None or _bare_tuple(value):
            return None
        ((name, signature),) = signatures.items()
        return f"{name}({value})" if len(signature.params) == 1 else None
    if (positional and rest) or "=" in rest:
        return None  # `Input:` holds the arguments alone; prose that binds more is not understood
    matching = [(name, s.params) for name, s in signatures.items() if set(s.params) == set(values)]
    if len(matching) != 1:
        return None
    name, params = matching[0]
    return f"{name}({', '.join(values[p] for p in params)})"


def _bare_tuple(value: str) -> bool:
    """`[1, 2], 3`: several values, not one (a tuple written with its parentheses is one)."""
    node = ast.parse(value, mode="eval").body
    return isinstance(node, ast.Tuple) and not value.lstrip().startswith("(")


def _leading_literal(text: str) -> tuple[str | None, str]:
    """The longest literal that `text` starts with, ending at a comma or the end (a value holding commas, like a
    list, is tried whole before its parts), and what follows it."""
    ends = [i for i, ch in enumerate(text) if ch == ","] + [len(text)]
    for end in reversed(ends[-MAX_LITERAL_TRIES:]):
        head = text[:end].strip().rstrip(".")
        if head and _literal(head):
            return head, text[end:]
    return None, text


MAX_PREAMBLE_IMPORTS = 20


def task_imports(*texts: str) -> tuple[str, ...]:
    """The import statements in the texts' code, one per line as written (`import x`, `from y import z`), in order,
    without repeats. Only whole-line statements that parse as imports count: prose never does."""
    found: list[str] = []
    for text in texts:
        for raw in text.splitlines():
            line = raw.strip()
            if not line.startswith(("import ", "from ")):
                continue
            try:
                body = ast.parse(line).body
            except UNPARSABLE:
                continue
            if len(body) == 1 and isinstance(body[0], ast.Import | ast.ImportFrom):
                found.append(line)
    return tuple(dict.fromkeys(found))[:MAX_PREAMBLE_IMPORTS]


def specification(task_text: str, rubric: str, acceptance_tests: str) -> Specification:
    """The examples of the task and rubric, then the acceptance tests (each top-level statement one unit); and the
    task's imports, which every solution runs with."""
    units = [
        CheckUnit(f"example-{i + 1}", UnitSource.EXAMPLE, code) for i, code in enumerate(examples_in(task_text, rubric))
    ]
    units += [
        CheckUnit(f"acceptance-{i + 1}", UnitSource.ACCEPTANCE, code)
        for i, code in enumerate(split_tests(acceptance_tests))
    ]
    return Specification(tuple(units), task_imports(task_text, rubric))


# --- the agents' tests ---------------------------------------------------------------------------------------------


def split_tests(code: str) -> list[str]:
    """Independent test units of a test block: each `def test_*` function (called), and each top-level `assert`;
    other top-level statements (imports, helpers, fixtures) are a preamble kept in front of every unit. None for
    a block nested too deeply to take apart."""
    try:
        return _split_tests(code)
    except (RecursionError, MemoryError):
        return []


def _split_tests(code: str) -> list[str]:
    try:
        tree = ast.parse(code)
    except UNPARSABLE:
        return []
    preamble: list[str] = []
    units: list[str] = []
    for node in tree.body:
        text = ast.get_source_segment(code, node) or ""
        if isinstance(node, ast.Assert):
            units.append(text)
        elif isinstance(node, ast.FunctionDef) and node.name.startswith("test") and not node.args.args:
            units.append(f"{text}\n{node.name}()")
        elif isinstance(node, ast.ClassDef) and _is_test_case(node):
            units += [f"{text}\n{node.name}({name!r}).debug()" for name in _test_methods(node)]
        elif _is_main_guard(node):
            continue  # `if __name__ == "__main__":` runners call the tests again, or unittest.main()
        elif not isinstance(node, ast.Expr) or not isinstance(node.value, ast.Call):
            preamble.append(text)
    head = "\n".join(p for p in preamble if p)
    cut = [f"{head}\n{u}" if head else u for u in units if u]
    return [u for u in cut if len(u) <= MAX_UNIT_CHARS][:MAX_UNITS_PER_SOURCE]


def _is_test_case(node: ast.ClassDef) -> bool:
    """A `unittest.TestCase` subclass, as small models write their tests."""
    names = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in node.bases]
    return any(name.endswith("TestCase") for name in names)


def _test_methods(node: ast.ClassDef) -> list[str]:
    return [f.name for f in node.body if isinstance(f, ast.FunctionDef) and f.name.startswith("test")]


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__main__" in ast.dump(node.test)


def agent_units(tests_by_author: Mapping[str, str]) -> list[CheckUnit]:
    units: list[CheckUnit] = []
    for author, code in sorted(tests_by_author.items()):
        units += [
            CheckUnit(f"{author}:test-{i + 1}", UnitSource.AGENT, unit, author)
            for i, unit in enumerate(split_tests(code))
        ]
    return units


# --- dual agreement ------------------------------------------------------------------------------------------------


def agreement(passed_agent_tests: Mapping[str, frozenset[str]]) -> dict[str, tuple[int, tuple[str, ...]]]:
    """CodeT's dual agreement. `passed_agent_tests` maps each author to the agent tests its solution passes.
    Returns each author's (group score, group members): a group is the solutions passing exactly the same tests,
    its score is (members) x (tests passed)."""
    groups: dict[frozenset[str], list[str]] = {}
    for author, passed in passed_agent_tests.items():
        groups.setdefault(passed, []).append(author)
    out: dict[str, tuple[int, tuple[str, ...]]] = {}
    for passed, members in groups.items():
        for author in members:
            out[author] = (len(members) * len(passed), tuple(sorted(members)))
    return out


def void_agent_tests(outcomes: Mapping[str, Sequence[UnitOutcome]], agent_test_ids: Iterable[str]) -> frozenset[str]:
    """The agents' tests that fail on every candidate (`outcomes` maps each author whose solution ran to its
    outcomes). Such a test says nothing about any solution (it is as likely wrong itself, or hostile), so it counts
    for none: not against any candidate, not in agreement, not as a finding to fix."""
    if not outcomes:
        return frozenset()
    passed = {o.test_id for results in outcomes.values() for o in results if o.passed}
    return frozenset(t for t in agent_test_ids if t not in passed)


def without_tests(outcomes: Sequence[UnitOutcome], void: frozenset[str]) -> tuple[UnitOutcome, ...]:
    return tuple(o for o in outcomes if o.test_id not in void)


def trim(text: str, limit: int = MAX_FAILURE_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit // 2] + " … " + text[-limit // 2 :]


_CHECKED_CALL = re.compile(r"\A_got = (?P<call>.+?)\n(?:_want = |assert repr\(_got\))", re.DOTALL)
_LOAD_FAILURE = "the solution does not load: "


def checked_call(unit: CheckUnit) -> str:
    """What a test checks, for a prompt: the call of an example (`f(1, 2)`), else the test's code on one line."""
    match = _CHECKED_CALL.match(unit.code)
    return match["call"] if match else " ".join(unit.code.split())


def spec_failures(evidence: ProposalEvidence | None, spec: Specification, limit: int = 4) -> str:
    """A proposal's failing specification tests as short lines, the way a fresh attempt's prompt shows them:
    `` `call`: expected X, got Y `` per example (the test's code on one line for an acceptance test), or one line
    when the solution did not even load. "" when none failed or nothing ran."""
    if evidence is None or evidence.skipped:
        return ""
    by_id = {u.test_id: u for u in spec.units}
    failed = [o for o in evidence.outcomes if o.test_id in by_id and not o.passed]
    if not failed:
        return ""
    if all(o.failure.startswith(_LOAD_FAILURE) for o in failed):
        return f"- the solution does not load: {trim(failed[0].failure.removeprefix(_LOAD_FAILURE), 240)}"
    lines = [
        f"- `{trim(checked_call(by_id[o.test_id]), 200)}`: {trim(o.failure.removeprefix('AssertionError: '), 240)}"
        for o in failed[:limit]
    ]
    if len(failed) > limit:
        lines.append(f"- and {len(failed) - limit} more")
    return "\n".join(lines)


# --- what the task asks for, probes, behaviour groups --------------------------------------------------------------

_FENCED = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
MAX_PROBES = 10
MAX_PROBE_CHARS = 300


def _code_of(text: str) -> list[str]:
    blocks = _FENCED.findall(text)
    return blocks if blocks else [text]


def python_code(text: str) -> str:
    """The Python blocks of a text, joined; the text itself when it has none."""
    return "\n\n".join(_code_of(text))


def _stub(body: Sequence[ast.stmt]) -> bool:
    """A body of only a docstring, `pass`, `...` or imports: what the task leaves to write."""
    return all(
        isinstance(node, ast.Pass | ast.Import | ast.ImportFrom)
        or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        for node in body
    )


def _asks_for(node: ast.stmt) -> bool:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return _stub(node.body)
    if isinstance(node, ast.ClassDef):
        return any(isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and _stub(f.body) for f in node.body)
    return False


_TOP_LEVEL_DEF = re.compile(r"^(?:class|def)[ \t]+([A-Za-z_]\w*)", re.MULTILINE)
_PROSE_SIGNATURE = re.compile(r"^[ \t]*(?:[-*][ \t]+)?`?([A-Za-z_]\w*)\([^()\n]*\)`?[ \t]*->", re.MULTILINE)
"""A signature with a return annotation at the start of a line of prose (`- word_count(text: str) -> int: ...`)."""


def task_names(*texts: str) -> tuple[str, ...]:
    """The functions and classes the task leaves to write: in its code, top-level functions whose body is a stub
    and classes with a stub method; in its prose (outside code blocks), signatures with a return annotation that
    start a line. None for a task that names nothing a solution must define."""
    names: list[str] = []
    for text in texts:
        names += _PROSE_SIGNATURE.findall(_FENCED.sub("", text))
        for code in _code_of(text):
            try:
                found = [getattr(node, "name", "") for node in ast.parse(code).body if _asks_for(node)]
            except UNPARSABLE:
                found = []
            # A stub that does not parse (a stray quote in a docstring): its top-level definitions, as written.
            names += found or _TOP_LEVEL_DEF.findall(code)
    return tuple(dict.fromkeys(names))


def defined_names(code: str) -> frozenset[str]:
    """The top-level functions and classes `code` defines; empty when it does not parse."""
    try:
        tree = ast.parse(code)
    except UNPARSABLE:
        return frozenset()
    return frozenset(n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))


def signatures(code: str, limit: int = 8) -> list[str]:
    """`name(args)` of the top-level functions and the public methods of top-level classes, for a prompt."""
    try:
        tree = ast.parse(code)
    except UNPARSABLE:
        return []
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            found.append(f"{node.name}({ast.unparse(node.args)})")
        elif isinstance(node, ast.ClassDef):
            for f in node.body:
                if isinstance(f, ast.FunctionDef) and (f.name == "__init__" or not f.name.startswith("_")):
                    found.append(f"{node.name}.{f.name}({ast.unparse(f.args)})")
    return found[:limit]


def probe_calls(answer: str, names: Iterable[str] = ()) -> list[str]:
    """The calls a test designer wrote: one expression per line in its Python block(s), each containing a call,
    no assert, no assignment. With `names`, only calls that use one of them. At most MAX_PROBES, no repeats."""
    wanted = set(names)
    found: list[str] = []
    for code in _code_of(answer):
        for raw in code.splitlines():
            line = raw.strip().rstrip(";")
            if not line or line.startswith("#") or len(line) > MAX_PROBE_CHARS:
                continue
            try:
                node = ast.parse(line, mode="eval").body
            except UNPARSABLE:
                continue
            if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq):
                node = node.left  # `f(x) == y`: the designer was told not to guess outputs; keep the call
            if _print_of_one(node):
                node = node.args[0]  # type: ignore[attr-defined]  # `print(f(x))`: the value is f(x)'s
            if not any(isinstance(n, ast.Call) for n in ast.walk(node)):
                continue
            used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            if wanted and not used & wanted:
                continue
            found.append(ast.unparse(node))
    return list(dict.fromkeys(found))[:MAX_PROBES]


MAX_MUTANTS = 12
_MAX_MUTANT_INT = 10**6


def _mutants(value: object) -> list[object]:
    """Values of the same type near `value`, in the order they are tried: the edge (empty, zero), then small
    changes (off by one, reversed, one element fewer or more, a different case). Bounded in size: a mutant is never
    much larger than its original, so no probe can make a correct solution slow."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        near = [value + 1, value - 1, 0, -value, value + 3]
        return [v for v in near if abs(v) <= _MAX_MUTANT_INT]
    if isinstance(value, float):
        return [value + 1.5, -value, 0.0, value / 2]
    if isinstance(value, str):
        return [
            "",
            value[::-1],
            value[: len(value) // 2],
            value.swapcase(),
            value + value[:1],
            " " + value,
        ]
    if isinstance(value, list | tuple):
        kind = type(value)
        items = list(value)
        found: list[object] = [kind(), kind(items[::-1]), kind(items[:-1]), kind(items + items[:1])]
        if items:
            found += [kind([m, *items[1:]]) for m in _mutants(items[0])[:2]]
        with contextlib.suppress(TypeError):  # items of mixed types
            found.append(kind(sorted(items)))
        return found
    if isinstance(value, dict) and value:
        first = next(iter(value))
        return [{}, {k: v for k, v in value.items() if k != first}]
    return []


def example_mutants(units: Iterable[CheckUnit], names: Iterable[str] = (), limit: int = MAX_MUTANTS) -> list[str]:
    """Probes that cost no model call: the calls in the task's examples with one literal argument changed to a
    nearby value of its type (`_mutants`). Different solutions that agree on the examples often disagree on these
    (an empty list, an off-by-one bound), which splits behaviour groups the designer's probes left whole. Only
    calls of a name the task defines (any name where it names none) whose arguments are all literals; taken
    breadth first (each argument's first mutant, then each one's second...), without repeats, at most `limit`."""
    wanted = set(names)
    sites: list[tuple[str, list[object], int]] = []
    originals: set[str] = set()
    for unit in units:
        try:
            tree = ast.parse(unit.code)
        except UNPARSABLE:
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)) or node.keywords:
                continue
            if (wanted and node.func.id not in wanted) or not node.args:
                continue
            try:
                args = [ast.literal_eval(a) for a in node.args]
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            originals.add(_call_text(node.func.id, args))
            sites += [(node.func.id, args, i) for i in range(len(args))]
    options = [(name, args, i, _mutants(args[i])) for name, args, i in sites]
    found: list[str] = []
    for depth in range(max((len(o[3]) for o in options), default=0)):
        for name, args, i, mutants in options:
            if depth >= len(mutants):
                continue
            call = _call_text(name, [*args[:i], mutants[depth], *args[i + 1 :]])
            if call not in originals and call not in found and len(call) <= MAX_PROBE_CHARS:
                found.append(call)
            if len(found) >= limit:
                return found
    return found


def _call_text(name: str, args: Sequence[object]) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


def _print_of_one(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
        and len(node.args) == 1
        and not node.keywords
    )


def probe_units(calls: Iterable[str]) -> tuple[CheckUnit, ...]:
    return tuple(CheckUnit(f"probe-{i + 1}", UnitSource.PROBE, call) for i, call in enumerate(calls))


def behaviour(outcomes: Sequence[UnitOutcome]) -> tuple[tuple[str, str], ...]:
    """A solution's behaviour: each probe's value and each specification test's verdict, by test id; none without
    probes (the specification's verdicts alone are already the ranking's own key, and too few to call alike)."""
    if not any(is_probe(o.test_id) for o in outcomes):
        return ()
    return tuple(
        sorted(
            (o.test_id, o.value if is_probe(o.test_id) else str(o.passed))
            for o in outcomes
            if is_probe(o.test_id) or is_spec_test(o.test_id)
        )
    )


def behaviour_groups(
    outcomes: Mapping[str, Sequence[UnitOutcome]], probes: Sequence[CheckUnit] = ()
) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Groups the solutions (author -> outcomes) that behave identically. Returns each author's (group members,
    the probe calls on which its group's values differ from another group's). A solution with no outcome to
    compare is a group of its own."""
    by_behaviour: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for author, results in sorted(outcomes.items()):
        key = behaviour(results) or (("alone", author),)
        by_behaviour.setdefault(key, []).append(author)
    call_of = {p.test_id: p.code for p in probes}
    values = {author: dict(behaviour(results)) for author, results in outcomes.items()}
    out: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for members in by_behaviour.values():
        mine = values[members[0]]
        others = [values[m] for group in by_behaviour.values() if group is not members for m in group[:1]]
        split = sorted(
            {t for other in others for t in call_of if mine.get(t) != other.get(t)},
            key=lambda t: int(t.split("-")[1]),
        )
        for author in members:
            out[author] = (tuple(members), tuple(call_of[t] for t in split))
    return out


def findings_text(
    evidence: ProposalEvidence | None, spec: Specification, lint_errors: Sequence[str] = (), policy: Sequence[str] = ()
) -> str:
    """What verification found, as the critique and revise prompts show it: failing specification tests with their
    code and output, the agents' tests passed, lint errors and policy violations. "" when nothing was checked."""
    lines: list[str] = []
    if evidence is not None and evidence.skipped:
        lines.append(f"- code not executed: {evidence.skipped}")
    elif evidence is not None and evidence.outcomes:
        by_id = {u.test_id: u for u in spec.units}
        spec_results = [o for o in evidence.outcomes if o.test_id in by_id]
        if spec_results:
            passed = sum(o.passed for o in spec_results)
            lines.append(f"- specification tests (task examples, acceptance tests): {passed}/{len(spec_results)} pass")
            for o in [o for o in spec_results if not o.passed][:4]:
                lines.append(f"  - FAILS `{trim(by_id[o.test_id].code, 200)}`: {trim(o.failure, 240)}")
        agent = [o for o in evidence.outcomes if o.test_id not in by_id and not is_probe(o.test_id)]
        if agent:
            passed = sum(o.passed for o in agent)
            lines.append(f"- the council's own tests (may themselves be wrong): {passed}/{len(agent)} pass")
            for o in [o for o in agent if not o.passed][:2]:
                lines.append(f"  - fails {o.test_id}: {trim(o.failure, 160)}")
    lines += [f"- lint: {trim(e, 160)}" for e in list(lint_errors)[:5]]
    lines += [f"- policy: {trim(v, 160)}" for v in list(policy)[:3]]
    return "\n".join(lines)
