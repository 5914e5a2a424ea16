"""Kept verdicts (adapters/checks/verdicts.py): what identifies a run, what is not kept, and the bound."""

from __future__ import annotations

import pytest

from orchestrator.adapters.checks.verdicts import Verdicts, reusable, run_key
from orchestrator.domain.evidence import CheckUnit, UnitOutcome, UnitSource
from orchestrator.domain.execution import SandboxLimits

UNITS = [CheckUnit("example-1", UnitSource.EXAMPLE, "assert f(1) == 1"), CheckUnit("a:t", UnitSource.AGENT, "x", "a")]
KEY = run_key("def f(x):\n    return x\n", ["import math"], UNITS, SandboxLimits())


@pytest.mark.parametrize(
    "changed",
    [
        run_key("def f(x):\n    return x \n", ["import math"], UNITS, SandboxLimits()),
        run_key("def f(x):\n    return x\n", [], UNITS, SandboxLimits()),
        run_key("def f(x):\n    return x\n", ["import math"], UNITS[:1], SandboxLimits()),
        run_key("def f(x):\n    return x\n", ["import math"], UNITS[::-1], SandboxLimits()),
        run_key(
            "def f(x):\n    return x\n",
            ["import math"],
            [UNITS[0], CheckUnit("a:t", UnitSource.AGENT, "y", "a")],
            SandboxLimits(),
        ),
        run_key(
            "def f(x):\n    return x\n",
            ["import math"],
            [CheckUnit("example-2", UnitSource.EXAMPLE, "assert f(1) == 1"), UNITS[1]],
            SandboxLimits(),
        ),
        run_key("def f(x):\n    return x\n", ["import math"], UNITS, SandboxLimits(wall_seconds=5)),
    ],
)
def test_anything_that_decides_a_run_changes_its_key(changed: str) -> None:
    assert changed != KEY
    assert run_key("def f(x):\n    return x\n", ["import math"], list(UNITS), SandboxLimits()) == KEY


@pytest.mark.parametrize(
    "failure",
    [
        "timed out after 6s (loading the solution and running the test)",
        "the run hit its time limit before this test",
        "the run was ended during this test (its time limit)",
        "the run ended (killed, exit -9) before this test: ",
        "not run: an earlier test of its block ended the run",
        "no result for this test",
    ],
)
def test_a_run_the_host_may_have_decided_is_not_kept(failure: str) -> None:
    verdicts = Verdicts()
    verdicts.keep(KEY, [UnitOutcome("example-1", True), UnitOutcome("a:t", False, failure)])
    assert verdicts.get(KEY) is None and len(verdicts) == 0


def test_verdicts_the_code_decided_are_kept_and_given_back() -> None:
    outcomes = [UnitOutcome("example-1", True), UnitOutcome("a:t", False, "AssertionError: expected 2, got 1")]
    assert reusable(outcomes)
    verdicts = Verdicts()
    verdicts.keep(KEY, outcomes)
    assert verdicts.get(KEY) == outcomes and verdicts.hits == 1


def test_the_least_recently_used_run_goes_first() -> None:
    verdicts = Verdicts(max_runs=2)
    for key in ("a", "b"):
        verdicts.keep(key, [UnitOutcome(key, True)])
    assert verdicts.get("a") is not None  # "b" is now the least recently used
    verdicts.keep("c", [UnitOutcome("c", True)])
    assert verdicts.get("b") is None and verdicts.get("a") is not None and verdicts.get("c") is not None
    assert len(verdicts) == 2


def test_none_kept() -> None:
    verdicts = Verdicts(max_runs=0)
    verdicts.keep(KEY, [UnitOutcome("example-1", True)])
    assert verdicts.get(KEY) is None
    with pytest.raises(ValueError, match="0 or more"):
        Verdicts(max_runs=-1)
