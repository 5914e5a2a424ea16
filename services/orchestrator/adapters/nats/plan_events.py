"""`planning.plan.approved` bodies -> ApprovedPlan, validated field by field.

Two shapes are accepted: the envelope `{event_type, payload, idempotency_key, correlation_id, timestamp,
producer, causation_id?, metadata?}` and, for old producers, the bare payload. Anything else raises
InvalidPlanEvent with a reason that names the field, and the consumer dead-letters it. Ids (story, plan, subtask,
dependencies, idempotency key) follow the one rule gRPC ids follow (`domain.validation.ID_PATTERN`). A subtask may carry
`acceptance_tests` (Python test code, the NATS form of `TaskConstraints.acceptance_tests`), within the same
limit as over gRPC, and `token_budget` (an integer >= 0, the NATS form of `TaskConstraints.token_budget`: absent =
the council's or the service's default, 0 = unlimited).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
)

from orchestrator.application.commands import Limits
from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.model import Role
from orchestrator.domain.plans import MAX_SUBTASKS, ApprovedPlan, PlanSubtask, check_dependencies
from orchestrator.domain.validation import ID_RULE, is_valid_id

MAX_EVENT_BYTES = 256 * 1024
EVENT_TYPE = "planning.plan.approved"


def _checked_id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError(ID_RULE)
    return value


Id = Annotated[str, AfterValidator(_checked_id)]
"""Validated exactly as gRPC validates a task_id (one validator, domain/validation.py): never stripped first."""
ShortText = Annotated[str, StringConstraints(max_length=500)]
LongText = Annotated[str, StringConstraints(max_length=20_000)]
Item = Annotated[str, StringConstraints(min_length=1, max_length=1_000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TestCode = Annotated[str, StringConstraints(max_length=Limits().max_acceptance_tests_chars)]
"""Refused here rather than when the deliberation starts: an oversized event is dead-lettered, never retried."""


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


RoleIn = Annotated[Role, BeforeValidator(_upper)]
"""Roles are matched case-insensitively, as the gRPC API does ("dev" is DEV)."""


class InvalidPlanEvent(InvalidArgumentError):
    """A plan event that can never be processed: it goes to the dead-letter subject."""

    def __init__(self, reason: str) -> None:
        super().__init__("event", reason)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SubtaskIn(_Strict):
    subtask_id: Id
    role: RoleIn
    title: ShortText = ""
    description: LongText = ""
    requirements: list[Item] = Field(default_factory=list, max_length=50)
    depends_on: list[Id] = Field(default_factory=list, max_length=MAX_SUBTASKS)
    priority: StrictInt = Field(0, ge=0, le=1000)
    acceptance_tests: TestCode = ""
    token_budget: StrictInt | None = Field(None, ge=0)


class PlanText(_Strict):
    title: ShortText = ""
    description: LongText = ""
    acceptance_criteria: list[Item] = Field(default_factory=list, max_length=50)


class PayloadIn(_Strict):
    story_id: Id
    plan_id: Id
    approved_by: Name
    roles: list[RoleIn] = Field(default_factory=list, max_length=5)
    timestamp: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    plan: PlanText | None = None
    subtasks: list[SubtaskIn] = Field(default_factory=list, max_length=MAX_SUBTASKS)


class EnvelopeIn(_Strict):
    event_type: str
    payload: dict[str, Any]
    idempotency_key: Id
    correlation_id: Annotated[str, StringConstraints(max_length=200)]
    timestamp: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    producer: Annotated[str, StringConstraints(max_length=200)]
    causation_id: Annotated[str, StringConstraints(max_length=200)] | None = None
    metadata: dict[str, Any] | None = None


def _describe(exc: ValidationError, prefix: str) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{prefix}{where}: {first['msg']}"


def _decode(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_EVENT_BYTES:
        raise InvalidPlanEvent(f"body of {len(body)} bytes exceeds the limit of {MAX_EVENT_BYTES}")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidPlanEvent(f"not JSON: {exc}") from None
    except RecursionError:
        raise InvalidPlanEvent("not JSON this service accepts: nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidPlanEvent(f"expected a JSON object, got {type(data).__name__}")
    return data


def parse_plan_event(body: bytes) -> ApprovedPlan:
    data = _decode(body)
    envelope: EnvelopeIn | None = None
    if "payload" in data and "event_type" in data:
        try:
            envelope = EnvelopeIn.model_validate(data)
        except ValidationError as exc:
            raise InvalidPlanEvent(_describe(exc, "envelope.")) from None
        if envelope.event_type != EVENT_TYPE:
            raise InvalidPlanEvent(f"event_type {envelope.event_type!r} is not {EVENT_TYPE!r}")
        data = envelope.payload
    try:
        payload = PayloadIn.model_validate(data)
    except ValidationError as exc:
        raise InvalidPlanEvent(_describe(exc, "payload.")) from None
    return _to_domain(payload, envelope)


def _to_domain(p: PayloadIn, envelope: EnvelopeIn | None) -> ApprovedPlan:
    subtasks = tuple(
        PlanSubtask(
            s.subtask_id,
            s.role,
            s.title,
            s.description,
            tuple(s.requirements),
            tuple(s.depends_on),
            s.priority,
            s.acceptance_tests,
            s.token_budget,
        )
        for s in p.subtasks
    )
    try:
        check_dependencies(subtasks)
    except InvalidArgumentError as exc:
        raise InvalidPlanEvent(f"payload.subtasks: {exc.reason}") from None
    if not subtasks and not p.roles:
        raise InvalidPlanEvent("payload: needs subtasks or at least one role")
    text = p.plan or PlanText()
    return ApprovedPlan(
        plan_id=p.plan_id,
        story_id=p.story_id,
        approved_by=p.approved_by,
        roles=tuple(p.roles),
        timestamp=p.timestamp,
        title=text.title,
        description=text.description,
        acceptance_criteria=tuple(text.acceptance_criteria),
        subtasks=subtasks,
        idempotency_key=envelope.idempotency_key if envelope else "",
        correlation_id=envelope.correlation_id if envelope else "",
    )
