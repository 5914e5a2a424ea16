"""Turning task text and proposals into test units, and CodeT's dual agreement."""

from __future__ import annotations

import datetime
import decimal
import fractions
import json
import math

import pytest

from orchestrator.adapters.checks.execution import split_proposal
from orchestrator.adapters.checks.sandbox_supervisor import Unserialisable, encode
from orchestrator.adapters.checks.unit_values import MalformedValue, decode, job_unit, judge, parse_report, plan_unit
from orchestrator.domain.evidence import (
    ProposalEvidence,
    UnitOutcome,
    UnitSource,
    agent_units,
    agreement,
    examples_in,
    parses,
    spec_failures,
    specification,
    split_tests,
    void_agent_tests,
    without_tests,
)

TASK = '''Implement this:

```python
def add(a: int, b: int) -> int:
    """Adds two numbers.
    >>> add(2, 3)
    5
    >>> add(-1, 1)
    0
    """
```
For example:
    add(10, 5) ==> 15
    is_happy(abc) => True
    happy("abc") => True
'''


def test_doctest_lines_become_expectations_on_values() -> None:
    found = examples_in(TASK)
    assert any("add(2, 3)" in code and "_want = 5" in code for code in found)
    assert any("add(-1, 1)" in code and "_want = 0" in code for code in found)


def test_prose_examples_count_only_for_literal_calls_of_a_defined_function() -> None:
    found = examples_in(TASK)
    assert any("add(10, 5)" in code and "_want = 15" in code for code in found)
    assert not any("happy" in code for code in found)
    assert not any(code.startswith("def ") for code in found)


def test_multi_line_expected_output_is_joined_until_it_is_a_literal() -> None:
    text = ">>> pairs(2)\n[(0, 1),\n (1, 0)]\n>>> pairs(0)\n[]\n"
    found = examples_in(text)
    assert "_want = [(0, 1), (1, 0)]" in found[0]
    assert "_want = []" in found[1]


def test_assert_lines_in_the_rubric_are_examples_and_acceptance_tests_are_split_per_statement() -> None:
    spec = specification(
        "Write f.", "assert f(1) == 2", "import math\nassert f(2) == 3\n\ndef test_zero():\n    assert f(0) == 1\n"
    )
    sources = [u.source for u in spec.units]
    assert sources == [UnitSource.EXAMPLE, UnitSource.ACCEPTANCE, UnitSource.ACCEPTANCE]
    assert spec.units[1].code == "import math\nassert f(2) == 3"
    assert spec.units[2].code.endswith("test_zero()")


def test_split_tests_ignores_main_guards_and_unparsable_code() -> None:
    code = "assert f(1)\nif __name__ == '__main__':\n    test_a()\n"
    assert split_tests(code) == ["assert f(1)"]
    assert split_tests("assert (") == []


def test_agent_units_carry_their_author() -> None:
    units = agent_units({"agent-b": "assert g() == 1", "agent-a": "assert g() == 2\nassert g() != 3"})
    assert [(u.test_id, u.author_id) for u in units] == [
        ("agent-a:test-1", "agent-a"),
        ("agent-a:test-2", "agent-a"),
        ("agent-b:test-1", "agent-b"),
    ]


def test_solutions_passing_the_same_tests_form_a_group_scored_by_size_times_tests() -> None:
    passed = {
        "a": frozenset({"t1", "t2", "t3"}),
        "b": frozenset({"t1", "t2", "t3"}),
        "c": frozenset({"t4"}),
        "d": frozenset(),
    }
    groups = agreement(passed)
    assert groups["a"] == (6, ("a", "b"))
    assert groups["b"] == (6, ("a", "b"))
    assert groups["c"] == (1, ("c",))
    assert groups["d"] == (0, ("d",))


def test_a_proposal_is_split_into_solution_and_tests_even_when_mixed() -> None:
    mixed = (
        "Here it is:\n```python\nimport math\n\ndef area(r):\n    return math.pi * r * r\n\n"
        "assert area(0) == 0\n\nif __name__ == '__main__':\n    print(area(1))\n```\n"
        "```python\ndef test_one():\n    assert round(area(1), 2) == 3.14\n```\n"
    )
    split = split_proposal(mixed)
    assert "def area" in split.solution and "assert" not in split.solution and "__main__" not in split.solution
    assert "assert area(0) == 0" in split.tests and "def test_one" in split.tests


def test_bare_calls_in_a_solution_block_do_not_run_on_import() -> None:
    # Small models append their tests and a call to them in the solution's own block.
    text = (
        "```python\ndef inc(x):\n    return x + 1\n\n# tests\ndef test_inc():\n    assert inc(1) == 3\n\n"
        "import sys\nsys.setrecursionlimit(5000)\ntest_inc()\nprint(inc(2))\ninc(5)\n```\n"
    )
    split = split_proposal(text)
    assert "def inc" in split.solution
    assert "test_inc" not in split.solution and "print" not in split.solution and "inc(5)" not in split.solution
    assert "sys.setrecursionlimit(5000)" in split.solution
    assert "def test_inc" in split.tests


def test_a_block_tagged_as_tests_is_tests_and_prose_is_neither() -> None:
    text = "No code here.\n```python\n# tests\nx = 1\nassert x == 1\n```\n"
    split = split_proposal(text)
    assert split.solution == ""
    assert "assert x == 1" in split.tests


def test_an_answer_cut_off_mid_test_keeps_its_complete_solution() -> None:
    # max_tokens ends the answer inside the tests of the solution's own (unclosed) block.
    text = (
        "```python\nfrom unittest import TestCase\n\ndef frac(x):\n    return x - int(x)\n\n# tests\n"
        "class TestFrac(TestCase):\n    def test_half(self):\n        self.assertEqual(frac(3.5), 0.5)\n"
        "        self.assertEqual(frac(4.25"
    )
    split = split_proposal(text)
    assert "def frac" in split.solution and "return x - int(x)" in split.solution
    assert "TestFrac" not in split.solution


def test_unittest_cases_become_one_unit_per_test_method() -> None:
    code = (
        "import unittest\n\nclass TestInc(unittest.TestCase):\n    def setUp(self):\n        self.step = 1\n\n"
        "    def test_one(self):\n        self.assertEqual(inc(1), 1 + self.step)\n\n"
        "    def test_two(self):\n        self.assertEqual(inc(2), 3)\n\n    def helper(self):\n        pass\n"
    )
    units = split_tests(code)
    assert len(units) == 2
    namespace: dict[str, object] = {"inc": lambda x: x + 1}
    for unit in units:
        exec(compile(unit, "<unit>", "exec"), dict(namespace))  # setUp runs: self.step exists
    broken: dict[str, object] = {"inc": lambda x: x}
    with pytest.raises(AssertionError):
        exec(compile(units[0], "<unit>", "exec"), dict(broken))


def test_spec_failures_show_each_failing_example_as_its_call_and_what_came() -> None:
    spec = specification(">>> clamp(12, 0, 10)\n10\n>>> clamp(5, 0, 10)\n5", "", "assert clamp(-3, 0, 10) == 0")
    ev = ProposalEvidence(
        "a",
        0,
        (
            UnitOutcome("example-1", False, "AssertionError: expected 10, got 9"),
            UnitOutcome("example-2", True),
            UnitOutcome("acceptance-1", False, "AssertionError (no message)"),
            UnitOutcome("a:test-1", False, "AssertionError: agents' own test"),
        ),
    )
    assert spec_failures(ev, spec) == (
        "- `clamp(12, 0, 10)`: expected 10, got 9\n- `assert clamp(-3, 0, 10) == 0`: AssertionError (no message)"
    )
    assert spec_failures(ev, spec, limit=1).endswith("- and 1 more")


def test_spec_failures_say_once_that_the_solution_does_not_load_and_nothing_when_all_pass() -> None:
    spec = specification(">>> f(1)\n2\n>>> f(2)\n3", "", "")
    load = "the solution does not load: SyntaxError: invalid syntax (solution.py, line 3)"
    broken = ProposalEvidence("a", 0, (UnitOutcome("example-1", False, load), UnitOutcome("example-2", False, load)))
    assert (
        spec_failures(broken, spec) == "- the solution does not load: SyntaxError: invalid syntax (solution.py, line 3)"
    )
    passing = ProposalEvidence("a", 0, (UnitOutcome("example-1", True), UnitOutcome("example-2", True)))
    assert spec_failures(passing, spec) == "" and spec_failures(None, spec) == ""
    assert spec_failures(ProposalEvidence("a", 0, skipped="no sandbox"), spec) == ""


def test_the_tasks_own_imports_are_the_specifications_preamble_and_prose_is_not() -> None:
    task = (
        "Complete:\n```python\nfrom typing import List\nimport math\n\n\ndef f(xs: List[int]) -> int:\n"
        '    """\n    >>> f([1])\n    1\n    """\n```\n'
        "import the numbers from a file first.\nfrom there, sum them.\n"
    )
    spec = specification(task, "from typing import List\nimport os, sys", "")
    assert spec.preamble == ("from typing import List", "import math", "import os, sys")
    assert [u.test_id for u in spec.units] == ["example-1"]
    assert not specification("import math", "", "")  # imports alone are no specification


# --- verdicts decided outside the judged code ----------------------------------------------------------------------


class AlwaysEqual:
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


class EqualInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


class LyingStr(str):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = str.__hash__


def roundtrip(value: object) -> object:
    return decode(json.loads(json.dumps(encode(value))))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -7,
        2**100,
        1.5,
        float("inf"),
        "x",
        b"\x00\xff",
        [1, [2]],
        (1, (2,)),
        {"a": (1,)},
        {(1, 2): None},
        {1, 2},
        frozenset({3}),
        [],
        (),
        {},
        set(),
    ],
)
def test_builtin_values_cross_the_boundary_exactly(value: object) -> None:
    back = roundtrip(value)
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize(
    "value",
    [
        1 + 2j,
        datetime.date(2020, 1, 2),
        datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        datetime.time(1, 2),
        datetime.timedelta(days=1, seconds=3),
        decimal.Decimal("1.50"),
        fractions.Fraction(1, 3),
    ],
)
def test_the_standard_librarys_dates_decimals_and_fractions_cross_as_themselves(value: object) -> None:
    back = roundtrip(value)
    assert back == value and type(back) is type(value)


def test_nan_crosses_as_nan() -> None:
    back = roundtrip(float("nan"))
    assert isinstance(back, float) and math.isnan(back)


def test_an_object_that_is_not_a_builtin_value_cannot_be_serialised() -> None:
    with pytest.raises(Unserialisable, match="AlwaysEqual"):
        encode(AlwaysEqual())
    with pytest.raises(Unserialisable):
        encode([1, {"k": AlwaysEqual()}])


def test_a_subclass_of_a_builtin_crosses_as_its_builtin_value_without_its_methods() -> None:
    assert roundtrip(EqualInt(-999)) == -999 and type(roundtrip(EqualInt(-999))) is int
    assert roundtrip(LyingStr("wrong")) == "wrong" and type(roundtrip(LyingStr("wrong"))) is str
    plan = plan_unit("assert f() == 10")
    report = {"ok": True, "values": [encode(EqualInt(-999))]}
    assert judge(plan, report) == (False, "expected 10, got -999")


@pytest.mark.parametrize(
    "data",
    [
        [1, 2],
        {"t": "list"},
        {"t": "int", "v": 5},
        {"t": "bytes", "v": "zz"},
        {"t": "dict", "v": [[{"t": "list", "v": []}, 1]]},
        {"t": "object", "v": []},
        {"t": "float", "v": "nope"},
        {"t": "tuple", "v": 3},
    ],
)
def test_only_the_encoding_of_builtin_values_decodes(data: object) -> None:
    with pytest.raises(MalformedValue):
        decode(data)


def test_an_example_sends_only_its_call_to_the_sandbox_and_keeps_the_expected_value() -> None:
    unit = examples_in(TASK)[0]  # `_got = add(2, 3)`, `_want = 5`, assert
    plan = plan_unit(unit)
    sent = json.dumps(job_unit("example-1", "specification", plan))
    assert "add(2, 3)" in sent and "5" not in sent.replace("add(2, 3)", "")
    assert judge(plan, {"ok": True, "values": [encode(5)]}) == (True, "")
    assert judge(plan, {"ok": True, "values": [encode(6)]}) == (False, "expected 5, got 6")
    assert judge(plan, {"ok": True, "values": [encode(5.0)]}) == (True, "")  # 5 == 5.0, as in Python


@pytest.mark.parametrize(
    ("code", "value", "passed"),
    [
        ("assert f(1) != 2", 3, True),
        ("assert f(1) < 2", 3, False),
        ("assert 3 in f(1)", [1, 3], True),
        ("assert f(1) is None", None, True),
        ("assert f(1) is None", 0, False),
        ("assert not f(1)", [], True),
        ("assert f(1)", "", False),
        ("assert abs(f(1) - 0.5) < 1e-9", 1e-12, True),
        ("x = 4\nassert f(x) == 16", 16, True),
    ],
)
def test_asserts_of_these_shapes_are_decided_on_the_values(code: str, value: object, passed: bool) -> None:
    plan = plan_unit(code)
    assert not plan.opaque and plan.decided_outside
    assert judge(plan, {"ok": True, "values": [encode(value)]})[0] is passed


def test_a_test_function_of_straight_line_asserts_is_decided_here_and_one_with_a_loop_is_not() -> None:
    straight = split_tests("def test_f():\n    r = f(1)\n    assert r == 1\n    assert f(2) == 4\n")[0]
    plan = plan_unit(straight)
    assert plan.decided_outside and len(plan.checks) == 2
    assert judge(plan, {"ok": True, "values": [encode(1), encode(5)]}) == (False, "expected 4, got 5")
    looped = split_tests("def test_f():\n    for x in (1, 2):\n        assert f(x) == x * x\n")[0]
    assert plan_unit(looped).opaque


def test_a_report_without_completion_or_with_the_wrong_shape_fails() -> None:
    plan = plan_unit("assert f(1) == 1")
    assert not judge(plan, None)[0]
    assert not judge(plan, {"ok": True})[0]
    assert not judge(plan, {"ok": True, "values": []})[0]
    assert not judge(plan, {"ok": True, "values": [encode(1), encode(1)]})[0]
    assert not judge(plan, {"ok": False, "failure": "ZeroDivisionError: x"})[0]
    assert judge(plan_unit("def test_x():\n    for i in range(2):\n        assert i < 2\ntest_x()"), {"ok": True})[0]


def test_an_agents_test_that_fails_on_every_candidate_counts_for_none() -> None:
    outcomes = {
        "a": [UnitOutcome("a:test-1", False), UnitOutcome("b:test-1", True), UnitOutcome("example-1", False)],
        "b": [UnitOutcome("a:test-1", False), UnitOutcome("b:test-1", False), UnitOutcome("example-1", False)],
    }
    void = void_agent_tests(outcomes, {"a:test-1", "b:test-1"})
    assert void == {"a:test-1"}  # example-1 fails everyone too, but the specification always counts
    assert [o.test_id for o in without_tests(outcomes["a"], void)] == ["b:test-1", "example-1"]
    assert void_agent_tests({}, {"a:test-1"}) == frozenset()


def test_a_report_nested_past_the_parser_is_no_report() -> None:
    assert parse_report("[" * 200_000 + "]" * 200_000) is None
    assert parse_report("not json") is None and parse_report(None) is None
    deep: object = "x"
    for _ in range(60):
        deep = {"t": "list", "v": [deep]}
    assert judge(plan_unit("assert f() == 1"), {"ok": True, "values": [deep]})[0] is False


def test_a_unit_nested_too_deeply_to_take_apart_runs_as_it_is() -> None:
    code = "assert f(" + "-" * 1990 + "1) == 1"
    plan = plan_unit(code)
    assert plan.opaque and plan.steps == (code,)


@pytest.mark.parametrize("code", ["assert f(" + "-" * 50_000 + "1) == 1", "x = " + "-" * 5000 + "1\nassert f(x) == 1"])
def test_a_proposal_nested_too_deeply_to_parse_has_no_code_to_run_and_raises_nothing(code: str) -> None:
    assert split_tests(code) == []
    assert agent_units({"a": split_proposal(f"```python\n# tests\n{code}\n```").tests}) == []
    assert split_proposal(f"```python\n{code}\n```").solution.strip() in ("", code)


def test_doctest_statements_are_the_set_up_of_the_examples_after_them_in_the_same_docstring() -> None:
    text = '''class Sieve:
    def primes(self):
        """
        >>> cs = Sieve(20)
        >>> cs.primes()
        [2, 3, 5]
        >>> cs.count()
        3
        """

    def reset(self):
        """
        >>> cs = Sieve(5)
        >>> cs.reset()
        """
'''
    found = examples_in(text)
    assert len(found) == 3
    assert found[0].startswith("cs = Sieve(20)\n") and "cs.primes()" in found[0] and "_want = [2, 3, 5]" in found[0]
    assert found[1].startswith("cs = Sieve(20)\n") and "cs.count()" in found[1]
    assert found[2] == "cs = Sieve(5)\ncs.reset()"  # set-up no example follows runs as a unit of its own
    assert not any("Sieve(20)" in code for code in found[2:])  # a new docstring starts a fresh namespace


def test_a_doctest_expression_with_no_output_and_no_set_up_is_a_unit_of_its_own() -> None:
    found = examples_in(">>> longest([])\n\n>>> longest(['a'])\n'a'\n")
    assert found[0] == "longest([])"
    assert found[1].startswith("_got = longest(['a'])")  # not prefixed: an expression is not set-up


def test_only_a_dev_task_asks_its_proposals_to_define_what_it_names() -> None:
    """QA's tests import the names they test and DEVOPS's manifests run them: neither is marked as not answering the
    task for not defining them."""
    from orchestrator.application.protocol.verification import spec_of
    from orchestrator.domain.model import Role, TaskSpec

    text = "Write the module with:\ndef word_count(text: str) -> int:\n"
    names = {role: spec_of(TaskSpec("t", text, role, 1, 3)).names for role in (Role.DEV, Role.QA, Role.DEVOPS)}
    assert names == {Role.DEV: ("word_count",), Role.QA: (), Role.DEVOPS: ()}


PROSE_TASK = '''
def decode(code: str, shift: int) -> str:
    """
    decode('bc', 1) returns 'ab'
    decode('cd', 2) should return 'ab'.
    decode('a', 0)   # returns "a"
    * decode('', 3) => ''
    decode('b', 1) returns the letter before b
    """

def is_power(x, n):
    """
    is_power(8, 2) => true
    is_power(3, 2) => False
    """

def digits(N):
    """
    For N = 1000, the sum of digits will be 1 the output should be "1".
    For M = 150 the output should be "110".
    For each number the output should be sorted.
    """

def pick(arr):
    """
    Example 1:
        Input: [4,2,3]
        Output: [2, 1]
        Explanation: 2 is the smallest even value.
    Example 2:
        Input: a list of numbers

        Output: [2, 1]
    """
'''


def test_prose_examples_say_returns_should_return_or_give_a_value_in_a_comment() -> None:
    found = examples_in(PROSE_TASK)
    for call, want in [("decode('bc', 1)", "'ab'"), ("decode('cd', 2)", "'ab'"), ("decode('a', 0)", '"a"')]:
        assert any(f"_got = {call}\n_want = {want}\n" in code for code in found), call
    assert any("_got = decode('', 3)\n_want = ''" in code for code in found)  # a bullet before the call
    assert not any("decode('b', 1)" in code for code in found)  # `returns the letter...` is not a value


def test_prose_true_and_false_are_python_booleans() -> None:
    found = examples_in(PROSE_TASK)
    assert any("_got = is_power(8, 2)\n_want = True\n" in code for code in found)
    assert any("_got = is_power(3, 2)\n_want = False\n" in code for code in found)


def test_for_name_equals_value_binds_the_arguments_of_the_function_with_those_parameters() -> None:
    found = examples_in(PROSE_TASK)
    assert any('_got = digits(1000)\n_want = "1"\n' in code for code in found)  # prose after the binding ignored
    assert not any("150" in code for code in found)  # no function has a parameter M
    assert not any("number" in code for code in found)


def test_for_form_needs_every_parameter_bound_and_one_function_to_match() -> None:
    text = "def area(w, h):\n    pass\n\nFor w = 2, h = 3 the result is 6\nFor w = 2 the result is 4\n"
    found = examples_in(text)
    assert found == [examples_in("area(2, 3) == 6")[0]]


def test_input_and_output_lines_are_an_example_of_the_one_parameter_function() -> None:
    pick = PROSE_TASK[PROSE_TASK.index("def pick") :]
    found = examples_in(pick)
    assert found == [examples_in("pick([4,2,3]) => [2, 1]")[0]]  # `a list of numbers` is not a value
    assert not any("pick(" in code for code in examples_in(PROSE_TASK))  # two functions of one parameter: whose?


def test_input_output_with_named_arguments_calls_in_signature_order() -> None:
    text = "def add_k(arr, k):\n    pass\n\nInput: k = 2, arr = [1, 2]\nOutput: [3, 4]\n"
    assert examples_in(text) == [examples_in("add_k([1, 2], 2) => [3, 4]")[0]]


@pytest.mark.timeout(20)
def test_long_prose_lines_cost_bounded_work() -> None:
    """Task text comes from clients: lines built to make a pattern backtrack or a binding parse every prefix end
    quickly (the marker costs one scan; a value is tried at no more than the last commas of a bounded line)."""
    lines = [
        "for " + " " * 1900 + "x the output is 1",
        "For x = 1, y = 2 the" + " " * 1900 + "output is 3",
        "For x = " + "[1," * 600 + " the output should be 1",
        "Input: x = " + "(1," * 600,
        "f(" + "(" * 900 + ") returns 1",
    ]
    found = examples_in("def f(x, y):\n    pass\n" + "\n".join(lines * 40))
    assert found == [examples_in("f(1, 2) == 3")[0]]


def test_a_return_annotation_rules_out_prose_values_the_function_cannot_give() -> None:
    in_place = (
        "def move_zeroes(nums: list[int]) -> None:\n    pass\n\nInput: nums = [0, 1, 0, 3]\nOutput: [1, 3, 0, 0]\n"
    )
    text = "def to_binary(n: int) -> str:\n    pass\n\nFor n = 5 the output is 101\n- to_binary(0) returns null\n"
    assert examples_in(in_place) == []  # `-> None` works in place: `Output:` shows its argument, not its value
    assert examples_in(text) == []
    assert len(examples_in(text + "to_binary(5) returns '101'\n")) == 1


def test_without_a_def_prose_calls_count_only_for_the_functions_the_task_names() -> None:
    text = "Write a function\n\n- is_even(n: int) -> bool: like JavaScript's isEven\n\n- isEven(4) returns true\n"
    assert examples_in(text) == []
    assert examples_in(text + "- is_even(4) returns true\n") == [examples_in("is_even(4) == True")[0]]


def test_bindings_go_to_top_level_functions_only_and_a_bare_input_is_one_value_of_the_only_function() -> None:
    method = (
        "class Solution:\n    @staticmethod\n    def best(prices):\n        pass\n\nInput: prices = [7, 1]\nOutput: 0\n"
    )
    helper = "def is_vowel(ch):\n    pass\n\ndef count(words, k):\n    pass\n\nInput: ['a', 'b'], 2\nOutput: 1\n"
    alone = "def total(xs):\n    pass\n\nInput: [1, 2], 3\nOutput: 6\n"
    assert examples_in(method) == examples_in(helper) == examples_in(alone) == []


def test_for_form_with_prose_that_binds_more_is_not_read() -> None:
    text = "def fib(n):\n    pass\n\ndef fib_mod(n, m):\n    pass\n\nFor n = 10, with m = 7, the result is 6.\n"
    assert examples_in(text) == []


def test_a_comment_after_a_prose_value_is_not_part_of_it_and_deep_arguments_are_not_an_error() -> None:
    found = examples_in("def fib(n):\n    pass\n\n- fib(0) returns 1  # as the spec says\n")
    assert found == [examples_in("fib(0) == 1")[0]]
    assert examples_in("- f(" + "1+" * 400 + "1) returns 4") == []  # unparsing it would recurse too deeply


@pytest.mark.timeout(20)
def test_long_output_lines_unclosed_defs_and_blank_runs_cost_bounded_work() -> None:
    text = "def f(x):\n    pass\n" + "Input: 1\nOutput: 1" + " " * 20_000 + "x\n" + "def a(\n" * 8000 + "\n" * 40_000
    assert examples_in(text) == []


def test_an_example_shown_as_text_is_a_repr_test_that_parses_whatever_quotes_it_holds() -> None:
    (code,) = examples_in(">>> greet('Ann')\nHello 'Ann', it's \"you\"\n")
    assert parses(code)
    assert "assert repr(_got) == " in code


def test_an_example_reading_a_name_nothing_binds_is_left_out_a_called_name_is_the_task_function() -> None:
    text = '''
class Area:
    """
    >>> area = Area()
    >>> area.circle(1)
    3.14
    """

    def square(self, side):
        """
        >>> area.square(2)
        4
        >>> Area().square(3)
        9
        >>> math.floor(Area().square(1.5))
        2
        >>> scale(2)
        4
        """
'''
    found = examples_in(text)
    assert len(found) == 4  # `area.square(2)`: no `area = ...` runs in that docstring
    assert not any("area.square(2)" in code for code in found)
    assert any(code.startswith("area = Area()\n_got = area.circle(1)") for code in found)
    assert any("math.floor" in code for code in found)  # a standard-library module: a solution may import it
    assert any("scale(2)" in code for code in found)  # called: taken as a function the task asks for
