"""A plan checks itself once its subtasks have ended: the cross-checks between dependent subtasks, DEV's one
follow-up deliberation when QA's tests fail on DEV's winner, the cross-check run again, and the plan's outcome.

`advance` is one step of that phase, driven by the plan's driver (application/dispatch.py): it returns the dispatch
either finished (outcome set) or with the follow-up running, which the driver waits for before the next step. The
follow-up's id derives from (plan, subtask, "follow-up"), so a restart finds it instead of starting another.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import structlog

from orchestrator.application.commands import Deliberate, Limits
from orchestrator.application.cross_check_runs import QaCheck, completed, devops_on_dev, qa_on_dev
from orchestrator.application.deliberations import Start
from orchestrator.application.ports import CrossChecker
from orchestrator.application.runs.supervisor import RunSupervisor
from orchestrator.domain.cross_checks import (
    CheckKind,
    CheckStatus,
    CrossCheck,
    FollowUp,
    acceptance_from,
    plan_outcome,
)
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import CapacityError, DependencyUnavailableError, OrchestratorError
from orchestrator.domain.model import Role
from orchestrator.domain.plans import (
    PlanDispatch,
    SubtaskRecord,
    deliberation_id,
    plan_rubric,
    plan_token_budget,
)

log = structlog.get_logger(__name__)

Pair = tuple[SubtaskRecord, SubtaskRecord]
Runs = dict[str, Deliberation | None]
NO_CHECKER = "no sandbox to run tests in"
FOLLOW_UP_NOTE = (
    "Follow-up: the QA council's tests below failed on the previous winning solution of this subtask. They are now "
    "acceptance tests: write the module again so that it passes them and the earlier acceptance tests."
)


def pairs(dispatch: PlanDispatch, role: Role) -> list[Pair]:
    """(checking subtask, DEV subtask) for every subtask of `role` that depends on a DEV subtask."""
    by_id = {r.subtask.subtask_id: r for r in dispatch.subtasks}
    return [
        (r, by_id[d])
        for r in dispatch.subtasks
        if r.subtask.role is role
        for d in r.subtask.depends_on
        if d in by_id and by_id[d].subtask.role is Role.DEV
    ]


def follow_up_id(plan_id: str, subtask_id: str) -> str:
    return deliberation_id(plan_id, f"{subtask_id}\x00follow-up")


@dataclass
class PlanChecks:
    checker: CrossChecker | None
    supervisor: RunSupervisor
    start: Start
    limits: Limits

    async def advance(self, dispatch: PlanDispatch) -> PlanDispatch:
        """One step; the dispatch it returns is finished, or has a follow-up running. Raises CapacityError or
        DependencyUnavailableError when the follow-up cannot start yet (the driver tries again)."""
        runs: Runs = {r.deliberation_id: await self.supervisor.find(r.deliberation_id) for r in dispatch.subtasks}
        follow = dispatch.follow_up
        if follow is None:
            return await self._first(dispatch, runs)
        if follow.state != "DISPATCHED":
            return self._finish(dispatch, list(dispatch.checks), runs)
        run = await self.supervisor.find(follow.deliberation_id)
        if run is None:  # decided, not yet created (a restart in between): start it again, same id
            await self.start(self._follow_up_cmd(dispatch, follow, runs))
            return dispatch
        if not run.status.finished:
            return dispatch
        return await self._after_follow_up(dispatch, follow, run, runs)

    async def _first(self, dispatch: PlanDispatch, runs: Runs) -> PlanDispatch:
        qa_pairs = pairs(dispatch, Role.QA)
        if self.checker is None:
            checks = [_not_run(qa, dev) for qa, dev in qa_pairs]
            return self._finish(dispatch, checks, runs)
        results = [await self._qa(pair, runs) for pair in qa_pairs]
        checks = [q.check for q in results]
        failed = next((q for q in results if q.check.status is CheckStatus.FAILED and q.failing_tests), None)
        if failed is None:
            return self._finish(dispatch, checks, runs)
        follow = self._follow_up(dispatch, failed)
        budget_left = self._budget_left(dispatch, runs)
        if budget_left is not None and budget_left <= 0:
            follow = replace(follow, state="SKIPPED", error="the plan's token budget is spent")
            checks.append(_follow_up_check(follow, failed.check))
            return self._finish(replace(dispatch, follow_up=follow), checks, runs)
        try:
            await self.start(self._follow_up_cmd(dispatch, follow, runs))
        except (CapacityError, DependencyUnavailableError):
            raise
        except OrchestratorError as exc:
            follow = replace(follow, state="FAILED", error=str(exc)[:500])
            checks.append(_follow_up_check(follow, failed.check))
            return self._finish(replace(dispatch, follow_up=follow), checks, runs)
        log.info("plan_follow_up_started", plan_id=dispatch.plan.plan_id, deliberation_id=follow.deliberation_id)
        return replace(dispatch, checks=tuple(checks), follow_up=follow)

    async def _qa(
        self, pair: Pair, runs: Runs, *, attempt: int = 1, keep: str = "", dev_run: Deliberation | None = None
    ) -> QaCheck:
        qa, dev = pair
        assert self.checker is not None
        target = dev_run if dev_run is not None else runs.get(dev.deliberation_id)
        return await qa_on_dev(self.checker, pair, (runs.get(qa.deliberation_id), target), attempt=attempt, keep=keep)

    async def _after_follow_up(
        self, dispatch: PlanDispatch, follow: FollowUp, run: Deliberation, runs: Runs
    ) -> PlanDispatch:
        done = completed(run)
        follow = replace(
            follow,
            state="COMPLETED" if done else "FAILED",
            winner_id=run.winner_id if done else "",
            error="" if done else f"{run.status.value}: {run.error_message}"[:500],
        )
        checks = list(dispatch.checks)
        first = next(c for c in checks if c.kind is CheckKind.QA_ON_DEV and c.target_id == follow.subtask_id)
        checks.append(_follow_up_check(follow, first))
        if done and self.checker is not None:
            qa_pair = next(p for p in pairs(dispatch, Role.QA) if p[0].subtask.subtask_id == first.subtask_id)
            again = await self._qa(qa_pair, runs, attempt=2, keep=first.chosen, dev_run=run)
            checks.append(again.check)
        return self._finish(replace(dispatch, follow_up=follow), checks, runs, run if done else None)

    def _finish(
        self, dispatch: PlanDispatch, checks: list[CrossCheck], runs: Runs, dev_final: Deliberation | None = None
    ) -> PlanDispatch:
        follow = dispatch.follow_up
        for ops, dev in pairs(dispatch, Role.DEVOPS):
            final = (
                dev_final if dev_final is not None and follow and follow.subtask_id == dev.subtask.subtask_id else None
            )
            dev_run = final or runs.get(dev.deliberation_id)
            if self.checker is None:
                checks.append(_not_run(ops, dev, CheckKind.DEVOPS_ON_DEV))
            else:
                checks.append(devops_on_dev(self.checker, (ops, dev), (runs.get(ops.deliberation_id), dev_run)))
        outcome = plan_outcome(checks)
        log.info("plan_checked", plan_id=dispatch.plan.plan_id, outcome=outcome.value, checks=len(checks))
        return replace(dispatch, checks=tuple(checks), outcome=outcome)

    def _follow_up(self, dispatch: PlanDispatch, failed: QaCheck) -> FollowUp:
        dev = next(r for r in dispatch.subtasks if r.subtask.subtask_id == failed.check.target_id)
        original = dev.subtask.acceptance_tests.strip()
        room = self.limits.max_acceptance_tests_chars - len(original) - 80
        added = acceptance_from(failed.failing_tests, room)
        tests = f"{original}\n\n# The QA council's tests the previous winner failed\n{added}" if original else added
        return FollowUp(dev.subtask.subtask_id, follow_up_id(dispatch.plan.plan_id, dev.subtask.subtask_id), tests)

    def _budget_left(self, dispatch: PlanDispatch, runs: Runs) -> int | None:
        budget = plan_token_budget(dispatch.plan)
        if budget is None:
            return None
        return budget - sum(d.usage.total_tokens for d in runs.values() if d is not None)

    def _follow_up_cmd(self, dispatch: PlanDispatch, follow: FollowUp, runs: Runs) -> Deliberate:
        plan = dispatch.plan
        dev = next(r for r in dispatch.subtasks if r.subtask.subtask_id == follow.subtask_id)
        subtask = dev.subtask
        left = self._budget_left(dispatch, runs)
        description = "\n\n".join([subtask.title, subtask.description, FOLLOW_UP_NOTE]).strip()
        return Deliberate(
            task_description=description[: self.limits.max_task_chars],
            role=subtask.role.value,
            task_id=follow.deliberation_id,
            rubric=plan_rubric(plan),
            requirements=subtask.requirements or plan.acceptance_criteria,
            metadata={
                "story_id": plan.story_id,
                "plan_id": plan.plan_id,
                "subtask_id": subtask.subtask_id,
                "follow_up_of": dev.deliberation_id,
            },
            source=f"plan:{plan.plan_id}/{subtask.subtask_id}",
            acceptance_tests=follow.acceptance_tests[: self.limits.max_acceptance_tests_chars],
            token_budget=left if left is not None else subtask.token_budget,
        )


def _not_run(checking: SubtaskRecord, dev: SubtaskRecord, kind: CheckKind = CheckKind.QA_ON_DEV) -> CrossCheck:
    label = "QA tests on the DEV winner" if kind is CheckKind.QA_ON_DEV else "DEVOPS manifests on the DEV module"
    summary = f"{label}: not run ({NO_CHECKER})"
    return CrossCheck(kind, checking.subtask.subtask_id, dev.subtask.subtask_id, CheckStatus.NOT_RUN, summary=summary)


def _follow_up_check(follow: FollowUp, failed: CrossCheck) -> CrossCheck:
    failing = failed.total - failed.passed
    if follow.state == "COMPLETED":
        status, what = CheckStatus.PASSED, f"new winner {follow.winner_id}"
    elif follow.state == "SKIPPED":
        status, what = CheckStatus.NOT_RUN, f"not run: {follow.error}"
    else:
        status, what = CheckStatus.FAILED, f"it ended {follow.error}"
    summary = (
        f"DEV follow-up: {follow.subtask_id} deliberated again with the {failing} failing QA test(s) as acceptance "
        f"tests; {what}"
    )
    return CrossCheck(
        CheckKind.DEV_FOLLOW_UP,
        follow.subtask_id,
        failed.subtask_id,
        status,
        summary=summary,
        chosen=follow.deliberation_id,
        target_winner=follow.winner_id,
    )
