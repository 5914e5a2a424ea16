"""The pure half of a plan's cross-checks: QA proposals ranked by how their tests fare on DEV's proposals, test
code pointed at the solution, failing tests turned into acceptance tests, and the plan's outcome."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from orchestrator.domain.cross_checks import (
    CheckKind,
    CheckStatus,
    CrossCheck,
    PlanOutcome,
    acceptance_from,
    as_solution_tests,
    defined_names,
    module_named,
    one_assert_each,
    plan_outcome,
    qa_standings,
    void_tests,
)
from orchestrator.domain.evidence import CheckUnit, UnitOutcome, UnitSource, split_tests
from orchestrator.domain.model import Role
from orchestrator.domain.plans import ApprovedPlan, PlanSubtask, plan_token_budget

pytestmark = pytest.mark.unit


def units(author: str, n: int) -> tuple[CheckUnit, ...]:
    return tuple(CheckUnit(f"{author}:test-{i + 1}", UnitSource.AGENT, "assert True", author) for i in range(n))


def results(author: str, passed: list[bool]) -> tuple[UnitOutcome, ...]:
    return tuple(UnitOutcome(f"{author}:test-{i + 1}", ok) for i, ok in enumerate(passed))


def test_a_qa_suite_that_fails_on_every_dev_proposal_counts_for_nothing_and_ranks_last() -> None:
    tests = {"qa-1": units("qa-1", 3), "qa-2": units("qa-2", 2)}
    outcomes = {
        # qa-1: passes on the winner, and its first test rejects dev-3, which DEV's own evidence showed wrong.
        "qa-1": {"dev-1": results("qa-1", [True, True, True]), "dev-3": results("qa-1", [False, True, True])},
        # qa-2: every test fails everywhere (its tests are wrong, or say nothing about any candidate).
        "qa-2": {"dev-1": results("qa-2", [False, False]), "dev-3": results("qa-2", [False, False])},
    }
    first, last = qa_standings(tests, outcomes, "dev-1", frozenset({"dev-3"}), {"qa-1": 2, "qa-2": 1})
    assert (first.author_id, first.passed_on_winner, first.counted, first.killed, first.wrong) == ("qa-1", 3, 3, 1, 1)
    assert (last.author_id, last.counted, last.void, last.killed) == ("qa-2", 0, 2, 0)
    assert "0/0 tests pass on the DEV winner" in last.line() and "2 failing on every DEV proposal" in last.line()


def test_passing_on_the_winner_comes_before_the_kill_rate_and_the_council_rank_breaks_ties() -> None:
    tests = {"qa-a": units("qa-a", 2), "qa-b": units("qa-b", 2), "qa-c": units("qa-c", 2)}
    outcomes = {
        "qa-a": {
            "win": results("qa-a", [True, False]),
            "bad": results("qa-a", [True, False]),
            "ok": results("qa-a", [True, True]),
        },
        "qa-b": {
            "win": results("qa-b", [True, True]),
            "bad": results("qa-b", [True, True]),
            "ok": results("qa-b", [True, True]),
        },
        "qa-c": {
            "win": results("qa-c", [True, True]),
            "bad": results("qa-c", [False, True]),
            "ok": results("qa-c", [True, True]),
        },
    }
    order = qa_standings(tests, outcomes, "win", frozenset({"bad"}), {"qa-a": 1, "qa-b": 2, "qa-c": 3})
    assert [s.author_id for s in order] == ["qa-c", "qa-b", "qa-a"]  # kills the wrong one; then passes; fails
    tied = qa_standings(
        {"x": units("x", 1), "y": units("y", 1)},
        {"x": {"win": results("x", [True])}, "y": {"win": results("y", [True])}},
        "win",
        frozenset(),
        {"x": 2, "y": 1},
    )
    assert [s.author_id for s in tied] == ["y", "x"]


def test_test_code_written_against_its_own_module_runs_against_the_solution() -> None:
    code = (
        "import os\nimport pytest\nfrom textstats import word_count\nimport textstats as ts\nimport textstats\n"
        "from collections import Counter\n\n"
        "def word_count(text):\n    return 99\n\n"
        "def test_empty():\n    assert word_count('') == 0\n    assert ts.top_words('a', 1)\n\n"
        "def test_raises():\n    with pytest.raises(AttributeError):\n        textstats.word_count(None)\n"
    )
    out = as_solution_tests(
        code, defined_names("def word_count(t):\n    return 0\ndef top_words(t, n):\n    return []")
    )
    assert "from solution import word_count" in out and "import solution as ts" in out
    assert "import solution as textstats" in out and "import os" in out and "from collections import Counter" in out
    assert "return 99" not in out  # a pasted copy of the implementation would be what the tests test
    assert "class pytest:" in out and "import pytest" not in out
    namespace: dict[str, object] = {}
    exec(compile(ast.parse(out.split("from solution")[0]), "shim", "exec"), namespace)  # the shim itself works
    raises: Any = getattr(namespace["pytest"], "raises")  # noqa: B009
    with raises(ValueError):
        raise ValueError("expected")
    with pytest.raises(AssertionError, match="DID NOT RAISE"), raises(ValueError):
        pass
    assert [u.splitlines()[-1] for u in split_tests(out)] == ["test_empty()", "test_raises()"]
    assert as_solution_tests("def broken(:") == ""


def test_failing_tests_become_one_block_of_acceptance_tests_within_the_limit() -> None:
    head = "from solution import word_count\nimport re"
    failing = [
        f"{head}\ndef test_empty():\n    assert word_count('') == 0\ntest_empty()",
        f"{head}\ndef test_spaces():\n    assert word_count('  a ') == 1\ntest_spaces()",
        f"{head}\nassert word_count('a b') == 2",
    ]
    block = acceptance_from(failing, 10_000)
    assert block.count("from solution import word_count") == 1 and block.count("import re") == 1
    assert "test_empty()" not in block.replace("def test_empty()", "")  # defined once, called by the harness
    assert [u.splitlines()[-1] for u in split_tests(block)] == [
        "test_empty()",
        "test_spaces()",
        "assert word_count('a b') == 2",
    ]
    short = acceptance_from(failing, len(head) + 60)
    assert "test_empty" in short and "test_spaces" not in short
    assert acceptance_from(["def broken(:"], 1000) == ""


def test_the_module_a_dev_subtask_names() -> None:
    assert module_named("Implement it", "Write the Python module `textstats` with two functions") == "textstats"
    assert module_named("Write `rate_limit.py`") == "rate_limit"
    assert module_named("Write a module that issues tokens") == ""
    assert module_named("Write a Python function") == ""


def check(kind: CheckKind, status: CheckStatus, attempt: int = 1) -> CrossCheck:
    return CrossCheck(kind, "qa", "dev", status, attempt=attempt)


def test_the_outcome_is_checked_failed_checks_or_unchecked_from_each_checks_latest_attempt() -> None:
    failed, passed = check(CheckKind.QA_ON_DEV, CheckStatus.FAILED), check(CheckKind.QA_ON_DEV, CheckStatus.PASSED, 2)
    follow = check(CheckKind.DEV_FOLLOW_UP, CheckStatus.FAILED)
    not_run = CrossCheck(CheckKind.DEVOPS_ON_DEV, "ops", "dev", CheckStatus.NOT_RUN)
    assert plan_outcome([failed, follow, passed, not_run]) is PlanOutcome.CHECKED
    assert plan_outcome([failed, not_run]) is PlanOutcome.FAILED_CHECKS
    assert plan_outcome([not_run]) is PlanOutcome.UNCHECKED and plan_outcome([]) is PlanOutcome.UNCHECKED


def test_a_plans_token_budget_is_the_sum_of_its_subtasks_when_each_has_one() -> None:
    def plan(*budgets: int | None) -> ApprovedPlan:
        subtasks = tuple(PlanSubtask(f"s{i}", Role.DEV, "t", "d", token_budget=b) for i, b in enumerate(budgets))
        return ApprovedPlan("p", "s", "po", (), "t", subtasks=subtasks)

    assert plan_token_budget(plan(1000, 2000)) == 3000
    assert plan_token_budget(plan(1000, None)) is None and plan_token_budget(plan(1000, 0)) is None


def test_only_tests_failing_on_every_one_of_two_or_more_dev_proposals_are_void() -> None:
    tests = units("qa-1", 2)
    two = {"dev-1": results("qa-1", [False, False]), "dev-2": results("qa-1", [True, False])}
    assert void_tests(tests, two) == {"qa-1:test-2"}
    assert void_tests(tests, {"dev-1": results("qa-1", [False, False])}) == set()  # one proposal tells nothing apart


def test_a_straight_line_test_function_becomes_one_test_per_assert() -> None:
    """One wrong assert among right ones (`word_count("one two") == 3` next to three right ones) costs only itself."""
    code = (
        "def test_word_count():\n    text = 'a b'\n    assert word_count(text) == 2\n"
        "    assert word_count('one two') == 3\n"
        "\ndef test_loop():\n    for t in ['a']:\n        assert word_count(t) == 1\n    assert True\n"
    )
    units = split_tests(one_assert_each(code))
    assert len(units) == 3  # test_loop has a loop: it stays whole
    assert "text = 'a b'" in units[1] and "== 2" not in units[1] and "word_count('one two') == 3" in units[1]
    assert units[2].rstrip().endswith("test_loop()")
    assert one_assert_each("def broken(:") == "def broken(:"
