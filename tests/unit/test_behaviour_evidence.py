"""Selection by behaviour (domain/evidence.py, domain/ranking.py): what a task asks to define, the test designer's
probe calls, behaviour groups, and the ranking keys that use them."""

from __future__ import annotations

import ast
from dataclasses import replace

from orchestrator.domain import prompts
from orchestrator.domain.evidence import (
    CheckUnit,
    ProposalEvidence,
    Specification,
    UnitOutcome,
    UnitSource,
    behaviour_groups,
    example_mutants,
    probe_calls,
    probe_units,
    specification,
    task_names,
)
from orchestrator.domain.model import (
    CheckSuite,
    DryRunResult,
    LintResult,
    PolicyResult,
    Proposal,
    Role,
    TaskSpec,
)
from orchestrator.domain.ranking import evidence_decides, rank_by_evidence

STUB = (
    "```python\nfrom typing import List\n\ndef helper(x):\n    return x\n\n"
    'def total(xs: List[int]) -> int:\n    """Sum."""\n```'
)
CLASS_STUB = (
    "```python\nclass Box:\n    def __init__(self):\n        pass\n\n    def get(self):\n        '''The item.'''\n```"
)


def test_the_task_names_its_stubs_only() -> None:
    assert task_names(STUB) == ("total",)  # helper has a body: the task gives it, it asks for total
    assert task_names(CLASS_STUB) == ("Box",)
    assert task_names("Write a module that issues single-use reset tokens.") == ()
    prose = "Write the module `textstats` with two functions:\n- word_count(text: str) -> int: words.\n"
    prose += "- top_words(text: str, n: int) -> list[tuple[str, int]]: the n most frequent.\nCall f(x) twice."
    assert task_names(prose) == ("word_count", "top_words")


def test_probe_calls_keep_calls_of_the_wanted_names_only() -> None:
    answer = (
        "```python\ntotal([])\ntotal([1, -1]) == 0\nassert total([2]) == 2\nx = total([3])\nprint('hi')\n"
        "os.system('x')\ntotal([])\n# a comment\nBox().get()\n```"
    )
    assert probe_calls(answer, ["total"]) == ["total([])", "total([1, -1])"]
    assert probe_calls("```python\nprint(total([5]))\n```", ["total"]) == ["total([5])"]
    assert probe_calls(answer, ["Box"]) == ["Box().get()"]
    assert len(probe_calls("\n".join(f"total([{i}])" for i in range(30)), ["total"])) == 10


def _outcomes(*values: str, spec: tuple[bool, ...] = ()) -> list[UnitOutcome]:
    probes = [UnitOutcome(f"probe-{i + 1}", True, "", v) for i, v in enumerate(values)]
    return probes + [UnitOutcome(f"example-{i + 1}", ok) for i, ok in enumerate(spec)]


def test_solutions_that_give_the_same_values_form_one_group_and_the_split_is_named() -> None:
    probes = probe_units(["f(0)", "f(1)"])
    groups = behaviour_groups({"a": _outcomes("0", "1"), "b": _outcomes("0", "1"), "c": _outcomes("0", "2")}, probes)
    assert groups["a"] == (("a", "b"), ("f(1)",))
    assert groups["c"] == (("c",), ("f(1)",))
    # The verdicts on the specification are part of the behaviour.
    split = behaviour_groups({"a": _outcomes("0", spec=(True,)), "b": _outcomes("0", spec=(False,))}, probes)
    assert split["a"][0] == ("a",) and split["b"][0] == ("b",)
    # Without probes nobody is grouped: the verdicts alone are the specification key's, not a behaviour.
    alone = behaviour_groups({"a": _outcomes(spec=(True,)), "b": _outcomes(spec=(True,))}, ())
    assert alone["a"][0] == ("a",) and alone["b"][0] == ("b",)


def _suite() -> CheckSuite:
    return CheckSuite(PolicyResult(True), LintResult(True), DryRunResult(True))


def _evidence(author: str, group: tuple[str, ...], spec_pass: bool = True, defines: bool = True) -> ProposalEvidence:
    return ProposalEvidence(
        author, 0, (UnitOutcome("example-1", spec_pass),), behaviour_group=group, defines_task=defines
    )


SPEC = Specification((CheckUnit("example-1", UnitSource.EXAMPLE, "assert f(1) == 1"),))


def test_the_larger_behaviour_group_wins_among_equals_on_the_specification() -> None:
    proposals = [Proposal(a, Role.DEV, f"```python\n# {a}\n```", 0) for a in ("a", "b", "c")]
    evidence = {"a": _evidence("a", ("a",)), "b": _evidence("b", ("b", "c")), "c": _evidence("c", ("b", "c"))}
    ranked = rank_by_evidence(proposals, {a: _suite() for a in "abc"}, (), evidence=evidence, spec=SPEC)
    assert [r.proposal.author_id for r in ranked] == ["b", "c", "a"]
    assert "ahead of a on behaviour (a group of 2 vs 1" in ranked[1].rank_reason
    # b and c tie on all the evidence but behave the same: one group is on top, the peers are not needed.
    assert evidence_decides(proposals, {a: _suite() for a in "abc"}, evidence, SPEC)
    # Two groups of one tie: the peers break it.
    apart = {"a": _evidence("a", ("a",)), "b": _evidence("b", ("b",))}
    assert not evidence_decides(proposals[:2], {a: _suite() for a in "ab"}, apart, SPEC)


def test_a_solution_that_does_not_define_what_the_task_names_never_wins_over_one_that_does() -> None:
    proposals = [Proposal(a, Role.DEV, "x", 0) for a in ("a", "b")]
    # a passes the example (say, through an echoed stub) but does not define the function; b fails it.
    evidence = {"a": _evidence("a", ("a",), defines=False), "b": _evidence("b", ("b",), spec_pass=False)}
    ranked = rank_by_evidence(proposals, {a: _suite() for a in "ab"}, (), evidence=evidence, spec=SPEC)
    assert ranked[0].proposal.author_id == "b" and "answering the task" in ranked[0].rank_reason


def test_where_proposals_are_not_the_solution_a_python_solution_does_not_outrank_tests() -> None:
    """A QA proposal that copies the module under test has "a Python solution"; one that is tests alone has none.
    For a QA task the "answers the task" key does not apply: the copy gets no head start, and no one is said not
    to answer the task."""
    qa_spec = Specification(asks_for_solution=False)
    proposals = [Proposal(a, Role.QA, "x", 0) for a in ("a", "b")]
    copy = ProposalEvidence("a", 0, (), defines_task=True)
    tests = ProposalEvidence("b", 0, (), skipped="no Python solution in the proposal", solution_found=False)
    checks = {"a": _suite(), "b": replace(_suite(), score=0.9)}
    ranked = rank_by_evidence(proposals, checks, (), evidence={"a": copy, "b": tests}, spec=qa_spec)
    assert ranked[0].proposal.author_id == "b"
    assert not any("does not parse or define" in r.rank_reason for r in ranked)
    as_dev = rank_by_evidence(proposals, checks, (), evidence={"a": copy, "b": tests}, spec=Specification())
    assert as_dev[0].proposal.author_id == "a"  # a DEV task asks for the solution


def test_the_propose_prompt_asks_for_the_solution_alone_and_stops_at_its_fence() -> None:
    task = TaskSpec("t", "Write f.", Role.DEV, 1, 3)
    prompt = prompts.propose(task)
    assert "# tests" not in prompt.user and "second" not in prompt.user
    assert prompt.stop == ("\n```\n",)
    assert prompts.propose(TaskSpec("t", "Design it.", Role.ARCHITECT, 1, 3)).stop == ()
    assert prompts.close_fence("```python\ndef f():\n    pass") == "```python\ndef f():\n    pass\n```"
    assert prompts.close_fence("```python\nx\n```") == "```python\nx\n```"
    designer = prompts.design_probes(task, ["f(x)"])
    assert "`f(x)`" in designer.user and "no expected value" in designer.user


DOCTESTS = (
    "```python\ndef window(xs: list, k: int) -> list:\n"
    '    """\n    >>> window([1, 2, 3], 2)\n    [3, 5]\n    >>> window([4], 1)\n    [4]\n    """\n```'
)


def test_example_mutants_change_one_literal_argument_of_the_examples_breadth_first() -> None:
    spec = specification(DOCTESTS, "", "")
    found = example_mutants(spec.units, ["window"])
    # Each argument's first mutant (the empty list, k + 1), for both examples, before any second mutant.
    assert found[:4] == ["window([], 2)", "window([1, 2, 3], 3)", "window([], 1)", "window([4], 2)"]
    assert "window([3, 2, 1], 2)" in found and "window([1, 2, 3], 1)" in found
    assert not {"window([1, 2, 3], 2)", "window([4], 1)"} & set(found)  # the examples themselves are not probes
    assert len(found) == len(set(found)) <= 12
    assert example_mutants(spec.units, ["window"], limit=3) == found[:3]


def test_example_mutants_keep_to_the_names_the_task_asks_for_and_to_literal_arguments() -> None:
    units = [
        CheckUnit("example-1", UnitSource.EXAMPLE, "assert helper(2) == 2"),
        CheckUnit("example-2", UnitSource.EXAMPLE, "assert total(xs) == 3"),  # not a literal: not mutated
        CheckUnit("example-3", UnitSource.EXAMPLE, "assert total([1, 2], key=abs) == 3"),  # keywords: left alone
        CheckUnit("example-4", UnitSource.EXAMPLE, "assert total('ab') == 0 and total(True) == 1"),
        CheckUnit("example-5", UnitSource.EXAMPLE, "def broken(:"),
    ]
    found = example_mutants(units, ["total"])
    assert found and all(call.startswith("total(") for call in found)
    assert "total('')" in found and "total('ba')" in found and "total(False)" in found
    assert example_mutants(units, ["missing"]) == []
    assert "helper(3)" in example_mutants(units)  # a task that names nothing: any call of the examples


def test_example_mutants_stay_small() -> None:
    big = "x" * 250
    units = [CheckUnit("example-1", UnitSource.EXAMPLE, f"assert f({big!r}, 999999) == 1")]
    found = example_mutants(units, ["f"])
    assert found and all(len(call) <= 300 for call in found)  # `value + value[:1]`... stays under the cap
    ints = [ast.literal_eval(ast.parse(call, mode="eval").body.args[1]) for call in found]  # type: ignore[attr-defined]
    assert 10**6 in ints and all(abs(i) <= 10**6 for i in ints)
