"""Token budgets: the effective limit, the next stage's estimate and the stage-boundary stop decision."""

from __future__ import annotations

import pytest

from orchestrator.domain.budget import (
    StopCode,
    TokenBudget,
    estimate_stage_cost,
    resolve_budget,
    stage_boundary,
    tokens_spent,
)
from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.model import CallRecord, Stage, Usage


def call(agent: str, stage: Stage, round_: int, prompt: int, completion: int, *, ok: bool = True) -> CallRecord:
    return CallRecord(agent, stage, round_, Usage(prompt, completion), 1.0, "m", 0.7, 1, ok=ok)


PROPOSE = [call(f"a{i}", Stage.PROPOSE, 0, 100, 50) for i in range(3)]
"""Three agents proposed: 150 tokens each (100 prompt + 50 completion), 450 in all."""


def test_task_budget_wins_over_council_and_service_defaults() -> None:
    assert resolve_budget(500, 1000, 2000) == 500


def test_unset_task_budget_falls_back_to_council_then_service() -> None:
    assert resolve_budget(None, 1000, 2000) == 1000
    assert resolve_budget(None, None, 2000) == 2000


def test_no_budget_anywhere_is_unlimited() -> None:
    assert resolve_budget(None, None, None) is None


def test_explicit_zero_lifts_the_defaults_below_it() -> None:
    assert resolve_budget(0, 1000, 2000) is None
    assert resolve_budget(None, 0, 2000) is None


def test_negative_budget_is_invalid_and_names_the_level() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        resolve_budget(None, -5, 100)
    assert caught.value.field == "council.token_budget"
    with pytest.raises(InvalidArgumentError):
        TokenBudget(-1)


def test_zero_limit_is_unlimited() -> None:
    budget = TokenBudget(0, spent=10**9)
    assert budget.unlimited and budget.remaining is None and not budget.reached


def test_spent_counts_prompt_and_completion_of_every_call_failed_ones_too() -> None:
    calls = [*PROPOSE, call("a3", Stage.PROPOSE, 0, 70, 0, ok=False)]
    assert tokens_spent(calls) == 450 + 70


def test_first_critique_estimate_quotes_the_peers_proposals() -> None:
    # per call: P + (q + 1) * C with P = 100, C = 50, q = N - 1 = 2 peers -> 250; three callers -> 750
    assert estimate_stage_cost(PROPOSE, Stage.CRITIQUE, callers=3) == 750


def test_first_revise_estimate_quotes_own_proposal_and_critiques() -> None:
    # q = 2 whatever the council size: 100 + 3 * 50 = 250 per call
    assert estimate_stage_cost(PROPOSE, Stage.REVISE, callers=5) == 5 * 250


def test_a_later_stage_of_the_same_kind_is_estimated_from_the_previous_one() -> None:
    calls = [*PROPOSE, call("a0", Stage.CRITIQUE, 1, 400, 100), call("a1", Stage.CRITIQUE, 1, 600, 100)]
    # mean of round 1's critique calls: (500 + 700) / 2 = 600 per call
    assert estimate_stage_cost(calls, Stage.CRITIQUE, callers=2) == 1200


def test_failed_calls_do_not_lower_the_per_call_estimate() -> None:
    calls = [*PROPOSE, call("a3", Stage.PROPOSE, 0, 0, 0, ok=False)]
    assert estimate_stage_cost(calls, Stage.CRITIQUE, callers=3) == 750


def test_stages_without_llm_calls_or_callers_cost_nothing() -> None:
    assert estimate_stage_cost(PROPOSE, Stage.VERIFY, callers=3) == 0
    assert estimate_stage_cost(PROPOSE, Stage.CRITIQUE, callers=0) == 0
    assert estimate_stage_cost([], Stage.PROPOSE, callers=3) == 0


def test_run_goes_on_while_the_next_stage_fits() -> None:
    decision = stage_boundary(TokenBudget(1200), PROPOSE, Stage.CRITIQUE, callers=3)
    assert not decision.stop and decision.estimate == 750 and decision.code is None


def test_run_stops_when_the_next_stage_would_pass_the_budget() -> None:
    decision = stage_boundary(TokenBudget(1199), PROPOSE, Stage.CRITIQUE, callers=3)
    assert decision.stop and decision.code is StopCode.TOKEN_BUDGET
    assert "450 of 1199" in decision.reason and "750" in decision.reason


def test_run_stops_once_the_budget_is_reached() -> None:
    decision = stage_boundary(TokenBudget(450), PROPOSE, Stage.SCORE, callers=0)
    assert decision.stop and decision.reason.startswith("token budget reached: 450 of 450")


def test_verify_stage_never_stops_for_the_budget() -> None:
    assert not stage_boundary(TokenBudget(10), PROPOSE, Stage.VERIFY, callers=3).stop


def test_unlimited_budget_never_stops() -> None:
    assert not stage_boundary(TokenBudget(None), PROPOSE * 100, Stage.CRITIQUE, callers=3).stop


def test_remaining_is_never_negative() -> None:
    assert TokenBudget(100, spent=150).remaining == 0
    assert TokenBudget(100).with_spent(30).remaining == 70
