"""Probes in the real bubblewrap sandbox: every solution runs the test designer's calls, their values come back as
builtin values and are compared here; solutions that behave alike are grouped; a probe that ends the run costs only
the probes, never a solution's specification tests; a solution that does not define what the task names is marked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio

from orchestrator.adapters.checks.execution import ExecutionVerifier
from orchestrator.adapters.sandbox import BwrapSandbox
from orchestrator.domain.evidence import example_mutants, probe_units, specification, task_names
from orchestrator.testing.sandbox_required import working_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

TASK = (
    "```python\ndef dedupe(xs):\n"
    '    """The items of xs without repeats, in their first order.\n'
    "    >>> dedupe([1, 2, 1])\n    [1, 2]\n"
    '    """\n```'
)
ORDERED = "```python\ndef dedupe(xs):\n    return list(dict.fromkeys(xs))\n```"
ORDERED_TOO = (
    "```python\ndef dedupe(xs):\n    out = []\n    for x in xs:\n        if x not in out:\n"
    "            out.append(x)\n    return out\n```"
)
SORTED = "```python\ndef dedupe(xs):\n    return sorted(set(xs))\n```"  # passes the example, not the task
ECHO = "```python\ndef dedupe(xs)\n    return xs\n```"  # does not parse


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[BwrapSandbox]:
    yield await working_sandbox()


def spec_with(*calls: str):  # type: ignore[no-untyped-def]
    return replace(specification(TASK, "", ""), probes=probe_units(calls), names=task_names(TASK))


async def test_solutions_are_grouped_by_the_values_of_the_probes(sandbox: BwrapSandbox) -> None:
    spec = spec_with("dedupe([3, 1, 3])", "dedupe([])", "dedupe((1,))", "dedupe(None)")
    proposals = {"a": ORDERED, "b": ORDERED_TOO, "c": SORTED, "d": ECHO}
    found = await ExecutionVerifier(sandbox).verify(spec, proposals, 0)
    values = {a: [(o.test_id, o.value) for o in found[a].outcomes] for a in "ab"}
    assert found["a"].behaviour_group == ("a", "b") == found["b"].behaviour_group, values
    assert found["c"].behaviour_group == ("c",)
    assert "dedupe([3, 1, 3])" in found["a"].split_by
    values = {o.test_id: o.value for o in found["a"].outcomes if o.test_id.startswith("probe-")}
    assert values["probe-1"] == "[3, 1]" and values["probe-2"] == "[]" and values["probe-4"] == "raises TypeError"
    sorted_values = {o.test_id: o.value for o in found["c"].outcomes}
    assert sorted_values["probe-1"] == "[1, 3]"
    # Every solution but the one that does not parse defines what the task names.
    assert [found[a].defines_task for a in "abcd"] == [True, True, True, False]
    # Probes are not tests: the tally counts the example only.
    assert found["a"].tally() == (1, 1, 0, 0)


async def test_a_probe_that_ends_the_run_costs_only_the_probes(sandbox: BwrapSandbox) -> None:
    spec = spec_with("dedupe([2, 2])", "__import__('os').kill(__import__('os').getppid(), 9)")
    found = await ExecutionVerifier(sandbox).verify(spec, {"a": ORDERED, "c": SORTED}, 0)
    for author in ("a", "c"):
        outcomes = {o.test_id: o for o in found[author].outcomes}
        assert outcomes["example-1"].passed  # the specification ran first and is untouched
        assert not outcomes["probe-2"].passed and outcomes["probe-2"].value.startswith("no value")


async def test_the_examples_mutants_alone_split_a_solution_that_passes_the_example_from_the_right_ones(
    sandbox: BwrapSandbox,
) -> None:
    """No designer call: `dedupe([1, 2, 1])` mutated (its first item changed: `[2, 2, 1]`) is enough to tell the
    sorted one from the two that keep the first order, which the example alone cannot."""
    spec = specification(TASK, "", "")
    mutants = example_mutants(spec.units, task_names(TASK))
    assert "dedupe([2, 2, 1])" in mutants
    found = await ExecutionVerifier(sandbox).verify(
        spec_with(*mutants), {"a": ORDERED, "b": ORDERED_TOO, "c": SORTED}, 0
    )
    assert found["a"].behaviour_group == ("a", "b") and found["c"].behaviour_group == ("c",)
    assert all(o.passed for o in found["c"].outcomes if o.test_id.startswith("example-"))
