"""The token budget at the protocol's stage boundaries: before every LLM stage after propose (critique, revise,
score) the run asks domain/budget.stage_boundary whether to go on. When it says stop, the run takes the same path as
an early stop: straight to the score stage, which ranks what exists; the peer review is skipped (it would spend
tokens), the run ends COMPLETED with `stop_code` TOKEN_BUDGET and a `stop_reason` saying why.

The other stop codes map the rounds' own end: every round ran (or none was asked) -> ROUNDS_DONE, the evidence
decided earlier -> EVIDENCE_DECIDED.
"""

from __future__ import annotations

import structlog

from orchestrator.application.protocol import verification
from orchestrator.application.protocol.run import Run
from orchestrator.domain.budget import BudgetDecision, StopCode, stage_boundary
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.events import BudgetStopped
from orchestrator.domain.model import Stage
from orchestrator.domain.ranking import evidence_decides

log = structlog.get_logger(__name__)

CHECKED_STAGES = (Stage.CRITIQUE, Stage.REVISE, Stage.SCORE)
"""Propose always runs (nothing is known to estimate from, and a run needs proposals); verify uses no tokens."""


def peer_review_runs(run: Run) -> bool:
    """Whether the score stage asks the agents to review each other (an LLM call each): not with rounds = 0, not
    once the token budget stopped the run, and not when the evidence already leaves one proposal on top (peer
    scores only break ties of the evidence, domain/ranking.py). Without execution evidence or without a
    specification they always run."""
    progress = run.snapshot.progress
    if not run.peer_review or run.snapshot.task.rounds == 0 or progress.stop_code is StopCode.TOKEN_BUDGET:
        return False
    proposals = list(progress.proposals.values())
    if not all(p.author_id in progress.checks for p in proposals) or not verification.executed(progress.evidence):
        return True  # no code ran (or not since the last revision): the peers are all the ranking has
    spec = verification.spec_of(run.snapshot.task, progress.probes)
    if not spec:
        return True  # no specification: nothing measured says the evidence alone picks well here
    return not evidence_decides(proposals, progress.checks, progress.evidence, spec)


def callers(run: Run, stage: Stage) -> int:
    """How many agents will call the model in `stage`, as the stage functions (protocol/stages.py) decide."""
    snapshot = run.snapshot
    alive = snapshot.alive_agents()
    if stage is Stage.REVISE:
        progress = snapshot.progress
        task = snapshot.task
        return sum(
            1
            for a in alive
            if a.agent_id in progress.proposals
            and verification.revised(task, progress.evidence.get(a.agent_id), progress.checks.get(a.agent_id))
        )
    if stage is Stage.CRITIQUE:
        progress, task = snapshot.progress, snapshot.task
        readers = {
            author
            for author in progress.proposals
            if verification.reads_critiques(task, progress.evidence.get(author), progress.checks.get(author))
        }
        return sum(1 for a in alive if readers - {a.agent_id})
    if stage is Stage.SCORE and not peer_review_runs(run):
        return 0
    return len(alive) if len(snapshot.progress.proposals) > 1 else 0  # no peers: no critique, no review


def boundary(run: Run, stage: Stage) -> BudgetDecision | None:
    """The decision before `stage` when it spends tokens under a budget; None when there is nothing to decide."""
    if stage not in CHECKED_STAGES or run.snapshot.task.token_budget is None:
        return None
    count = callers(run, stage)
    if count == 0:
        return None  # nothing will be spent: a reached budget stops the run at the next stage that spends
    return stage_boundary(run.snapshot.budget, run.snapshot.progress.calls, stage, count)


def stopped(snapshot: Deliberation, decision: BudgetDecision, stage: Stage) -> Deliberation:
    """The record with the budget's stop: its code, and its reason (after the rounds' own, when they had ended
    and only the peer review is skipped)."""
    earlier = snapshot.progress.stop_reason
    reason = decision.reason
    if stage is Stage.SCORE:
        reason = f"{earlier}; peer review skipped, {reason}" if earlier else f"peer review skipped, {reason}"
    return snapshot.with_progress(stop_reason=reason, stop_code=StopCode.TOKEN_BUDGET)


def stops_before(run: Run, stage: Stage) -> bool:
    """Whether the token budget ends the rounds before `stage`; if so the record says why, and the listeners
    are told (BudgetStopped)."""
    decision = boundary(run, stage)
    if decision is None or not decision.stop:
        return False
    run.snapshot = stopped(run.snapshot, decision, stage)
    log.info(
        "deliberation_token_budget_stop",
        deliberation_id=run.snapshot.task_id,
        before=stage.value,
        spent=run.snapshot.usage.total_tokens,
        budget=run.snapshot.task.token_budget,
        next_stage_estimate=decision.estimate,
    )
    run.emit(BudgetStopped(run.snapshot, stage, decision.estimate))
    return True
