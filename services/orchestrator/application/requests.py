"""What a Deliberate request may ask for, and whether a request for an existing task_id asks for the same."""

from __future__ import annotations

from orchestrator.application.commands import Deliberate, Limits
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import InvalidArgumentError, TaskIdConflictError
from orchestrator.domain.model import Role, TaskSpec
from orchestrator.domain.validation import check_task_id


def validate(cmd: Deliberate, limits: Limits) -> None:
    """Every limit of the Deliberate contract; raises InvalidArgumentError naming the field."""
    if cmd.task_id:
        check_task_id(cmd.task_id)
    if not cmd.task_description.strip():
        raise InvalidArgumentError("task_description", "must not be empty")
    checks = [
        ("task_description", len(cmd.task_description), limits.max_task_chars, "characters"),
        ("constraints.rubric", len(cmd.rubric), limits.max_rubric_chars, "characters"),
        ("constraints.acceptance_tests", len(cmd.acceptance_tests), limits.max_acceptance_tests_chars, "characters"),
        ("constraints.requirements", len(cmd.requirements), limits.max_requirements, "items"),
        ("constraints.metadata", len(cmd.metadata), limits.max_metadata_entries, "entries"),
    ]
    for name, size, limit, unit in checks:
        if size > limit:
            raise InvalidArgumentError(name, f"{size} {unit} exceeds the limit of {limit}")
    if any(len(r) > limits.max_requirement_chars for r in cmd.requirements):
        raise InvalidArgumentError("constraints.requirements", f"an item exceeds {limits.max_requirement_chars} chars")
    if any(len(k) + len(v) > limits.max_metadata_chars for k, v in cmd.metadata.items()):
        raise InvalidArgumentError("constraints.metadata", f"an entry exceeds {limits.max_metadata_chars} chars")
    if cmd.rounds is not None and not 0 <= cmd.rounds <= limits.max_rounds:
        raise InvalidArgumentError("rounds", f"must be 0..{limits.max_rounds}, got {cmd.rounds}")
    if not 0 <= cmd.num_agents <= limits.max_agents:
        raise InvalidArgumentError("num_agents", f"must be 0..{limits.max_agents}, got {cmd.num_agents}")
    if not 0 <= cmd.timeout_s <= limits.max_timeout_s:
        raise InvalidArgumentError("constraints.timeout_seconds", f"must be 0..{limits.max_timeout_s}")
    if cmd.token_budget is not None and cmd.token_budget < 0:
        raise InvalidArgumentError(
            "constraints.token_budget", f"must be 0 (unlimited) or a positive number of tokens, got {cmd.token_budget}"
        )
    if cmd.samples is not None and not 1 <= cmd.samples <= limits.max_samples:
        raise InvalidArgumentError("samples_per_agent", f"must be 1..{limits.max_samples}, got {cmd.samples}")


def differences(task: TaskSpec, cmd: Deliberate, role: Role) -> list[str]:
    """What a request for an existing task_id asks for otherwise than the deliberation it names. Numbers left
    at 0 mean "the default", so they match whatever the existing one resolved them to. Client text is named,
    never repeated."""
    found = []
    if role is not task.role:
        found.append(f"role {role.value} (existing: {task.role.value})")
    if cmd.task_description != task.description:
        found.append("task_description")
    if cmd.rounds is not None and cmd.rounds != task.rounds:
        found.append(f"rounds {cmd.rounds} (existing: {task.rounds})")
    if cmd.num_agents and cmd.num_agents != task.num_agents:
        found.append(f"num_agents {cmd.num_agents} (existing: {task.num_agents})")
    if cmd.rubric != task.rubric:
        found.append("constraints.rubric")
    if cmd.acceptance_tests != task.acceptance_tests:
        found.append("constraints.acceptance_tests")
    if tuple(cmd.requirements) != tuple(task.requirements):
        found.append("constraints.requirements")
    if dict(cmd.metadata) != dict(task.metadata):
        found.append("constraints.metadata")
    if cmd.timeout_s and float(cmd.timeout_s) != task.timeout_s:
        found.append(f"constraints.timeout_seconds {cmd.timeout_s} (existing: {task.timeout_s:g})")
    if cmd.samples is not None and cmd.samples != task.samples:
        found.append(f"samples_per_agent {cmd.samples} (existing: {task.samples})")
    if cmd.token_budget is not None and (cmd.token_budget or None) != task.token_budget:
        found.append(f"constraints.token_budget {cmd.token_budget} (existing: {task.token_budget or 0})")
    return found


def same_request(existing: Deliberation, cmd: Deliberate, role: Role) -> Deliberation:
    """`existing` when `cmd` asks for the same deliberation (an idempotent retry); else TaskIdConflictError,
    so a client reusing a task_id for other work is told instead of silently given the first one's result."""
    found = differences(existing.task, cmd, role)
    if found:
        raise TaskIdConflictError(existing.task_id, tuple(found))
    return existing
