"""Outbound events, enveloped and JSON-serialisable, each with a stable idempotency key.

They are written to the outbox in the same transaction as the record they describe and relayed to NATS
with `Nats-Msg-Id = idempotency_key`, so a crash neither loses an event nor (within the stream's duplicate
window) publishes it twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orchestrator import __version__
from orchestrator.application.ports import OutboundEvent
from orchestrator.domain.cross_checks import CrossCheck
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.events import RunEvent, RunFinished, RunStarted
from orchestrator.domain.model import DeliberationStatus, RankedProposal
from orchestrator.domain.plans import PlanDispatch

PRODUCER = f"fleet-orchestrator/{__version__}"
SUBJECT_PREFIX = "orchestration"
PLAN_DISPATCHED = f"{SUBJECT_PREFIX}.plan.dispatched"
PLAN_COMPLETED = f"{SUBJECT_PREFIX}.plan.completed"
DLQ_PLANNING = f"{SUBJECT_PREFIX}.dlq.planning"
TERMINAL_SUBJECTS = {
    DeliberationStatus.COMPLETED: f"{SUBJECT_PREFIX}.deliberation.completed",
    DeliberationStatus.FAILED: f"{SUBJECT_PREFIX}.deliberation.failed",
    DeliberationStatus.TIMEOUT: f"{SUBJECT_PREFIX}.deliberation.failed",
    DeliberationStatus.CANCELLED: f"{SUBJECT_PREFIX}.deliberation.cancelled",
}
STARTED = f"{SUBJECT_PREFIX}.deliberation.started"
ALL_SUBJECTS = (STARTED, *dict.fromkeys(TERMINAL_SUBJECTS.values()), PLAN_DISPATCHED, PLAN_COMPLETED, DLQ_PLANNING)


TRACE_KEYS = ("traceparent", "tracestate")
"""The W3C trace context an event carries in its envelope's `metadata`, so it survives the outbox: the publisher
sends it on as NATS headers (`trace_context`)."""


def envelope(
    subject: str,
    payload: dict[str, Any],
    key: str,
    correlation_id: str,
    causation_id: str = "",
    trace: Mapping[str, str] | None = None,
) -> str:
    body: dict[str, Any] = {
        "event_type": subject,
        "payload": payload,
        "idempotency_key": key,
        "correlation_id": correlation_id,
        "timestamp": datetime.now(UTC).isoformat(),
        "producer": PRODUCER,
    }
    if causation_id:
        body["causation_id"] = causation_id
    context = {k: v for k, v in (trace or {}).items() if k in TRACE_KEYS}
    if context:
        body["metadata"] = context
    return json.dumps(body, separators=(",", ":"))


def trace_context(enveloped: str) -> dict[str, str]:
    """The trace context an enveloped event was made in ({} when it has none)."""
    if '"traceparent"' not in enveloped:
        return {}
    try:
        metadata = json.loads(enveloped).get("metadata")
    except (ValueError, AttributeError):
        return {}
    if not isinstance(metadata, dict):
        return {}
    return {k: v for k, v in metadata.items() if k in TRACE_KEYS and isinstance(v, str)}


def _event(
    subject: str,
    payload: dict[str, Any],
    key: str,
    correlation_id: str,
    now_ms: int,
    causation_id: str = "",
    trace: Mapping[str, str] | None = None,
) -> OutboundEvent:
    return OutboundEvent(key, subject, envelope(subject, payload, key, correlation_id, causation_id, trace), now_ms)


def _plan_ref(d: Deliberation) -> dict[str, str]:
    if not d.source.startswith("plan:"):
        return {}
    plan_id, _, subtask_id = d.source.removeprefix("plan:").partition("/")
    return {"plan_id": plan_id, "subtask_id": subtask_id}


def _result(r: RankedProposal) -> dict[str, Any]:
    return {
        "rank": r.rank,
        "author_id": r.proposal.author_id,
        "score": r.score,
        "peer_score": r.peer_score,
        "check_score": r.checks.score,
        "checks_passed": r.checks.all_passed,
        "lint_errors": list(r.checks.lint.errors),
        "policy_violations": list(r.checks.policy.violations),
        "revisions": len(r.proposal.revisions),
        "content": r.proposal.content,
        "usage": {"prompt_tokens": r.usage.prompt_tokens, "completion_tokens": r.usage.completion_tokens},
    }


MAX_CONTENT_CHARS = 384 * 1024
"""All proposals' content in one terminal event, together: well under NATS's default 1 MiB max_payload even with
10 agents at the largest max_tokens. Beyond it each proposal is cut to an equal share and says so; the full text
stays in the store (GetDeliberationResult)."""


def deliberation_payload(d: Deliberation) -> dict[str, Any]:
    usage = d.usage
    results = [_result(r) for r in d.results]
    total = sum(len(r["content"]) for r in results)
    if total > MAX_CONTENT_CHARS:
        share = MAX_CONTENT_CHARS // len(results)
        for r in results:
            r["content_truncated"] = len(r["content"]) > share
            r["content"] = r["content"][:share]
    return {
        "task_id": d.task_id,
        "role": d.task.role.value,
        "status": d.status.value,
        "source": d.source,
        **_plan_ref(d),
        "winner_id": d.winner_id,
        "duration_ms": d.duration_ms,
        "rounds": d.task.rounds,
        "agents": [a.agent_id for a in d.agents],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
        # Why the rounds ended, and the budget: "token_budget" as a stop code means the budget stopped the run,
        # which still completed with what it had ranked; a budget of 0 is unlimited.
        "rounds_run": d.progress.rounds_run,
        "stop_reason": d.progress.stop_reason,
        "stop_code": d.progress.stop_code.value if d.progress.stop_code else "",
        "token_budget": d.task.token_budget or 0,
        "tokens_spent": usage.total_tokens,
        "results": results,
        "failed_agents": [
            {"agent_id": f.agent_id, "stage": f.stage.value, "error": f.error} for f in d.progress.failures
        ],
        "error_message": d.error_message,
    }


def deliberation_events(event: RunEvent, now_ms: int, trace: Mapping[str, str] | None = None) -> list[OutboundEvent]:
    """`started` when a run takes its slot; one terminal event when it ends; nothing for the other run events.
    `trace`: the run's trace context, carried on to the events' consumers."""
    d = event.snapshot
    correlation = _plan_ref(d).get("plan_id", d.task_id)
    if isinstance(event, RunStarted):
        payload = {"task_id": d.task_id, "role": d.task.role.value, "source": d.source, **_plan_ref(d)}
        return [_event(STARTED, payload, f"{d.task_id}:started", correlation, now_ms, trace=trace)]
    if isinstance(event, RunFinished) and d.status in TERMINAL_SUBJECTS:
        subject = TERMINAL_SUBJECTS[d.status]
        key = f"{d.task_id}:{subject.rsplit('.', 1)[-1]}"
        return [_event(subject, deliberation_payload(d), key, correlation, now_ms, trace=trace)]
    return []


def _plan_payload(dispatch: PlanDispatch) -> dict[str, Any]:
    plan = dispatch.plan
    follow = dispatch.follow_up
    return {
        "plan_id": plan.plan_id,
        "story_id": plan.story_id,
        "subtasks": [
            {
                "subtask_id": s.subtask.subtask_id,
                "role": s.subtask.role.value,
                "deliberation_id": s.deliberation_id,
                "depends_on": list(s.subtask.depends_on),
                "state": s.state.value,
                "winner_id": s.winner_id,
                "error": s.error,
            }
            for s in dispatch.subtasks
        ],
        # The cross-checks (each attempt: what ran, how many passed) and the outcome; empty until they ran.
        "outcome": dispatch.outcome.value if dispatch.outcome else "",
        "cross_checks": [cross_check_payload(c) for c in dispatch.checks],
        "follow_up": {
            "subtask_id": follow.subtask_id,
            "deliberation_id": follow.deliberation_id,
            "state": follow.state,
            "winner_id": follow.winner_id,
            "error": follow.error,
        }
        if follow
        else None,
    }


def cross_check_payload(c: CrossCheck) -> dict[str, Any]:
    return {
        "kind": c.kind.value,
        "subtask_id": c.subtask_id,
        "target_subtask_id": c.target_id,
        "status": c.status.value,
        "passed": c.passed,
        "total": c.total,
        "summary": c.summary,
        "details": list(c.details),
        "chosen": c.chosen,
        "target_winner": c.target_winner,
        "attempt": c.attempt,
    }


def plan_dispatched_event(dispatch: PlanDispatch, now_ms: int, trace: Mapping[str, str] | None = None) -> OutboundEvent:
    plan = dispatch.plan
    key = f"{plan.plan_id}:dispatched"
    correlation = plan.correlation_id or plan.plan_id
    return _event(PLAN_DISPATCHED, _plan_payload(dispatch), key, correlation, now_ms, plan.idempotency_key, trace)


def plan_completed_event(dispatch: PlanDispatch, now_ms: int, trace: Mapping[str, str] | None = None) -> OutboundEvent:
    """Every subtask ended and the cross-checks ran: the plan's outcome, each cross-check, the follow-up."""
    plan = dispatch.plan
    key = f"{plan.plan_id}:completed"
    correlation = plan.correlation_id or plan.plan_id
    return _event(PLAN_COMPLETED, _plan_payload(dispatch), key, correlation, now_ms, plan.idempotency_key, trace)
