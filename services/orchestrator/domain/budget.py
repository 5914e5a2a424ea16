"""Token budgets: how many tokens one deliberation may spend, and the stop decision taken at stage boundaries.

Tokens counted are prompt + completion tokens of every LLM call (failed attempts included: the endpoint still did
the work), as reported by the model's `usage`. A budget is checked before every LLM stage (critique, revise, score;
propose is the first stage and always runs). The run stops there, keeping and ranking what it has, when

    spent >= limit                                  (the budget is reached), or
    spent + estimate(next stage) > limit            (the next stage would pass it).

So a run spends at most its limit plus the misestimate of one stage. Verify stages use no tokens (they run code,
not the model) and are never stopped for the budget.

The estimate of the next stage (`estimate_stage_cost`):

    estimate = callers x per_call
    per_call = mean tokens per successful call of the latest earlier stage of the same kind, when there is one
               (a later round's critique has the same prompt shape as the previous one);
             = P + (q + 1) x C otherwise, where P and C are the mean prompt and completion tokens per successful
               propose call (the task prompt, and one proposal's length), and q is how many proposal-sized texts
               the prompt quotes: the N - 1 peers' proposals for critique and score, the author's own proposal
               plus the critiques it received (about one proposal's length together) for revise, so q = 2.
               The answer is taken as one proposal's length, hence the + 1.

Effective budget (`resolve_budget`): the task's constraint, else the council's default, else the service's
default. At each level None means "not set here, ask the next one"; 0 means "unlimited" and ends the search, so a
client can lift a council default for one task. All unset: unlimited.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.model import CallRecord, Stage

LLM_STAGES = (Stage.PROPOSE, Stage.CRITIQUE, Stage.REVISE, Stage.SCORE)
REVISE_QUOTES = 2
"""Proposal-sized texts a revise prompt quotes: the author's own proposal and the critiques it received."""


class StopCode(enum.StrEnum):
    """Why the critique/revise rounds ended, as a value (the wire's `StopReason`); `stop_reason` stays the text."""

    ROUNDS_DONE = "rounds_done"
    EVIDENCE_DECIDED = "evidence_decided"
    TOKEN_BUDGET = "token_budget"


@dataclass(frozen=True)
class TokenBudget:
    """A deliberation's token budget: `limit` None (or 0) is unlimited; `spent` counts prompt + completion tokens."""

    limit: int | None
    spent: int = 0

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise InvalidArgumentError("token_budget", f"must be 0 (unlimited) or positive, not {self.limit}")
        if self.limit == 0:  # the wire's "unlimited"
            object.__setattr__(self, "limit", None)

    @property
    def unlimited(self) -> bool:
        return self.limit is None

    @property
    def remaining(self) -> int | None:
        """Tokens left (never negative); None when unlimited."""
        return None if self.limit is None else max(0, self.limit - self.spent)

    @property
    def reached(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def with_spent(self, spent: int) -> TokenBudget:
        return TokenBudget(self.limit, spent)

    def decide(self, next_stage_estimate: int) -> BudgetDecision:
        """The stage-boundary decision: stop now when the budget is reached or the next stage would pass it."""
        if self.limit is None:
            return BudgetDecision(stop=False, estimate=next_stage_estimate)
        if self.reached:
            reason = f"token budget reached: {self.spent} of {self.limit} tokens spent"
            return BudgetDecision(stop=True, estimate=next_stage_estimate, reason=reason)
        if self.spent + next_stage_estimate > self.limit:
            reason = (
                f"token budget: {self.spent} of {self.limit} tokens spent, and the next stage "
                f"(about {next_stage_estimate} tokens) would pass it"
            )
            return BudgetDecision(stop=True, estimate=next_stage_estimate, reason=reason)
        return BudgetDecision(stop=False, estimate=next_stage_estimate)


@dataclass(frozen=True)
class BudgetDecision:
    """`stop` with its human-readable `reason` (the result's `stop_reason`); `estimate` is what was assumed."""

    stop: bool
    estimate: int
    reason: str = ""

    @property
    def code(self) -> StopCode | None:
        return StopCode.TOKEN_BUDGET if self.stop else None


def resolve_budget(task: int | None, council: int | None, service: int | None) -> int | None:
    """The effective limit (None = unlimited): the first level that sets one (see the module docstring)."""
    for level, value in (("task", task), ("council", council), ("service", service)):
        if value is None:
            continue
        if value < 0:
            raise InvalidArgumentError(f"{level}.token_budget", f"must be 0 (unlimited) or positive, not {value}")
        return value or None
    return None


def tokens_spent(calls: Iterable[CallRecord]) -> int:
    return sum(call.usage.total_tokens for call in calls)


def _mean(values: Sequence[int]) -> float:
    return sum(values) / len(values) if values else 0.0


def _latest_stage_calls(calls: Sequence[CallRecord], stage: Stage) -> list[CallRecord]:
    """The successful calls of the latest round of `stage` that has any."""
    done = [c for c in calls if c.stage is stage and c.ok]
    if not done:
        return []
    last_round = max(c.round for c in done)
    return [c for c in done if c.round == last_round]


def _quotes(stage: Stage, callers: int) -> int:
    if stage is Stage.REVISE:
        return REVISE_QUOTES
    if stage in (Stage.CRITIQUE, Stage.SCORE):
        return max(0, callers - 1)
    return 0


def estimate_stage_cost(calls: Sequence[CallRecord], next_stage: Stage, callers: int) -> int:
    """Tokens the next stage will likely spend, from what earlier stages spent per call (formula above).
    `callers` is how many agents will call the model in it. 0 for a stage without LLM calls, or before any
    propose call has finished (nothing to estimate from)."""
    if next_stage not in LLM_STAGES or callers <= 0:
        return 0
    same_kind = _latest_stage_calls(calls, next_stage)
    if same_kind:
        per_call = _mean([c.usage.total_tokens for c in same_kind])
    else:
        proposed = _latest_stage_calls(calls, Stage.PROPOSE)
        prompt = _mean([c.usage.prompt_tokens for c in proposed])
        answer = _mean([c.usage.completion_tokens for c in proposed])
        per_call = prompt + (_quotes(next_stage, callers) + 1) * answer
    return round(callers * per_call)


def stage_boundary(budget: TokenBudget, calls: Sequence[CallRecord], next_stage: Stage, callers: int) -> BudgetDecision:
    """The whole check at a boundary: the spend so far against the budget and the next stage's estimate. Stages
    without LLM calls never stop (the stop is taken at the next LLM stage)."""
    current = budget.with_spent(tokens_spent(calls))
    if next_stage not in LLM_STAGES:
        return BudgetDecision(stop=False, estimate=0)
    return current.decide(estimate_stage_cost(calls, next_stage, callers))
