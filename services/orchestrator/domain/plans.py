"""Approved plans and their subtasks: what auto-dispatch turns into deliberations.

A subtask's deliberation id is a stable function of (plan_id, subtask_id), so a redelivered or republished
plan event finds the deliberations it already started instead of starting new ones.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass

from orchestrator.domain.cross_checks import CrossCheck, FollowUp, PlanOutcome
from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.model import Role

MAX_SUBTASKS = 50
RUBRIC_CHARS = 8_000


@dataclass(frozen=True)
class PlanSubtask:
    subtask_id: str
    role: Role
    title: str
    description: str
    requirements: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    priority: int = 0
    acceptance_tests: str = ""
    """Python test code the subtask's deliberation gets as its acceptance tests (part of the specification).
    The default keeps plans stored before the field existed loadable."""
    token_budget: int | None = None
    """The subtask's token budget: None = the council's or the service's default, 0 = unlimited."""


@dataclass(frozen=True)
class ApprovedPlan:
    """A `planning.plan.approved` event, validated."""

    plan_id: str
    story_id: str
    approved_by: str
    roles: tuple[Role, ...]
    timestamp: str
    title: str = ""
    description: str = ""
    acceptance_criteria: tuple[str, ...] = ()
    subtasks: tuple[PlanSubtask, ...] = ()
    idempotency_key: str = ""
    correlation_id: str = ""


class SubtaskState(enum.StrEnum):
    WAITING = "WAITING"
    """Its dependencies have not all completed yet."""
    DISPATCHED = "DISPATCHED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class SubtaskRecord:
    subtask: PlanSubtask
    deliberation_id: str
    state: SubtaskState = SubtaskState.WAITING
    winner_id: str = ""
    error: str = ""


@dataclass(frozen=True)
class PlanDispatch:
    """The durable record of one dispatched plan: written before the event is acked."""

    plan: ApprovedPlan
    subtasks: tuple[SubtaskRecord, ...]
    received_at_ms: int
    checks: tuple[CrossCheck, ...] = ()
    """The cross-checks run once every subtask ended (domain/cross_checks.py), each attempt in order."""
    follow_up: FollowUp | None = None
    """DEV's one follow-up deliberation, when a cross-check sent one."""
    outcome: PlanOutcome | None = None
    """`checked`, `failed_checks` or `unchecked`; None until the cross-checks are done."""

    @property
    def subtasks_done(self) -> bool:
        return all(s.state in (SubtaskState.COMPLETED, SubtaskState.FAILED) for s in self.subtasks)

    @property
    def finished(self) -> bool:
        """Every subtask ended and the cross-checks are done (a plan stored before they existed is checked when
        its driver next looks at it)."""
        return self.subtasks_done and self.outcome is not None


def deliberation_id(plan_id: str, subtask_id: str) -> str:
    digest = hashlib.sha256(f"{plan_id}\x00{subtask_id}".encode()).hexdigest()[:20]
    return f"plan-{digest}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "task"


def derive_subtasks(plan: ApprovedPlan) -> tuple[PlanSubtask, ...]:
    """The event's subtasks when it has them; otherwise one per listed role, written from the plan's text."""
    if plan.subtasks:
        check_dependencies(plan.subtasks)
        return plan.subtasks
    if not plan.roles:
        raise InvalidArgumentError("payload.roles", "a plan without subtasks must list at least one role")
    title = plan.title or f"story {plan.story_id}"
    base = plan.description or title
    return tuple(
        PlanSubtask(
            subtask_id=f"{role.value.lower()}-{_slug(title)}",
            role=role,
            title=f"{role.value}: {title}",
            description=f"As the {role.value} council, deliver your part of this approved plan.\n\n{base}",
            requirements=plan.acceptance_criteria,
        )
        for role in dict.fromkeys(plan.roles)
    )


def check_dependencies(subtasks: tuple[PlanSubtask, ...]) -> None:
    """Unique ids, dependencies that exist, and no cycles."""
    ids = [s.subtask_id for s in subtasks]
    if len(ids) != len(set(ids)):
        raise InvalidArgumentError("payload.subtasks", "subtask ids must be unique")
    known = set(ids)
    for s in subtasks:
        missing = [d for d in s.depends_on if d not in known]
        if missing:
            raise InvalidArgumentError("payload.subtasks", f"{s.subtask_id} depends on unknown {missing}")
    graph = {s.subtask_id: set(s.depends_on) for s in subtasks}
    while graph:
        ready = [k for k, deps in graph.items() if not deps]
        if not ready:
            raise InvalidArgumentError("payload.subtasks", f"dependency cycle among {sorted(graph)}")
        for k in ready:
            del graph[k]
        for deps in graph.values():
            deps.difference_update(ready)


def plan_rubric(plan: ApprovedPlan) -> str:
    """The rubric every subtask of the plan is deliberated against: its title, description, acceptance criteria."""
    parts = [f"Plan: {plan.title}" if plan.title else "", plan.description]
    if plan.acceptance_criteria:
        parts.append("Acceptance criteria:\n" + "\n".join(f"- {c}" for c in plan.acceptance_criteria))
    return "\n\n".join(p for p in parts if p)[:RUBRIC_CHARS]


def plan_token_budget(plan: ApprovedPlan) -> int | None:
    """The plan's token budget: the sum of its subtasks' budgets when every subtask has one (> 0); None (no bound)
    when any subtask has none or an unlimited one."""
    budgets = [s.token_budget for s in plan.subtasks]
    if not budgets or any(not b for b in budgets):
        return None
    return sum(b for b in budgets if b)
