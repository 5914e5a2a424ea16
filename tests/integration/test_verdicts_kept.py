"""The same code against the same units runs once (adapters/checks/verdicts.py), in the real sandbox: proposals that
are the same code share a run, a stage whose code and tests did not change runs nothing, anything that changes the
input runs again, and a run the host may have decided (a time-out) is not kept."""

from __future__ import annotations

import pytest

from orchestrator.adapters.checks.execution import ExecutionVerifier
from orchestrator.domain.evidence import specification
from orchestrator.testing.evidence_task import CORRECT, NO_LOWER, OFF_BY_ONE, TASK
from orchestrator.testing.sandbox_required import CountingSandbox, working_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SPEC = specification(TASK, "", "")


def outcomes(found, author):  # type: ignore[no-untyped-def]
    return [(o.test_id, o.passed, o.failure) for o in found[author].outcomes]


async def test_the_same_code_runs_once_and_an_unchanged_stage_runs_nothing() -> None:
    sandbox = CountingSandbox(await working_sandbox())
    verifier = ExecutionVerifier(sandbox)
    # agent-4 answers with agent-2's text: the same solution, and the same tests (its own ids)
    proposals = {"agent-1": OFF_BY_ONE, "agent-2": CORRECT, "agent-3": NO_LOWER, "agent-4": CORRECT}
    first = await verifier.verify(SPEC, proposals, 0)
    assert sandbox.runs == 3
    assert [(i, p) for i, p, _ in outcomes(first, "agent-2")] == [(i, p) for i, p, _ in outcomes(first, "agent-4")]
    assert all(o.passed for o in first["agent-2"].outcomes)
    assert not all(o.passed for o in first["agent-1"].outcomes)

    second = await verifier.verify(SPEC, proposals, 1)
    assert sandbox.runs == 3  # nothing changed: nothing ran
    for author in proposals:
        assert outcomes(second, author) == outcomes(first, author)
        assert second[author].round == 1
    assert verifier.verdicts.hits == 3


async def test_a_changed_solution_or_test_runs_again() -> None:
    sandbox = CountingSandbox(await working_sandbox())
    verifier = ExecutionVerifier(sandbox)
    await verifier.verify(SPEC, {"agent-1": OFF_BY_ONE, "agent-2": CORRECT}, 0)
    assert sandbox.runs == 2
    # agent-1 revises its solution and keeps its tests: only its code runs again
    revised = OFF_BY_ONE.replace("max(low, min(x, high - 1))", "min(max(x, low), high)")
    found = await verifier.verify(SPEC, {"agent-1": revised, "agent-2": CORRECT}, 1)
    assert sandbox.runs == 3
    assert all(o.passed for o in found["agent-1"].outcomes)
    # a new test in the stage: every solution runs against it (the units are the stage's, for every solution)
    more = CORRECT.replace("assert clamp(0, 0, 10) == 0", "assert clamp(0, 0, 10) == 0\nassert clamp(-1, 0, 1) == 0")
    found = await verifier.verify(SPEC, {"agent-1": NO_LOWER, "agent-2": more}, 2)
    assert sandbox.runs == 5
    assert any(not o.passed for o in found["agent-1"].outcomes)


async def test_a_run_the_host_may_have_decided_is_not_kept() -> None:
    sandbox = CountingSandbox(await working_sandbox())
    verifier = ExecutionVerifier(sandbox)
    hangs = CORRECT.replace(
        "    return max(low, min(x, high))", "    while x == 5:\n        pass\n    return max(low, x)"
    )
    first = await verifier.verify(SPEC, {"agent-1": hangs}, 0)
    assert any("timed out" in o.failure for o in first["agent-1"].outcomes), first["agent-1"].outcomes
    await verifier.verify(SPEC, {"agent-1": hangs}, 1)
    assert sandbox.runs == 2
    assert len(verifier.verdicts) == 0


async def test_none_kept_runs_every_stage() -> None:
    sandbox = CountingSandbox(await working_sandbox())
    verifier = ExecutionVerifier(sandbox, verdicts=0)
    proposals = {"agent-1": CORRECT, "agent-2": CORRECT}
    await verifier.verify(SPEC, proposals, 0)
    await verifier.verify(SPEC, proposals, 1)
    assert sandbox.runs == 2  # the same code still runs once a stage
