"""`orchestrator publish-plan` and `orchestrator plans show`: drive and inspect auto-dispatch by hand."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from orchestrator.adapters.grpc.client import Plan, status_name
from orchestrator.adapters.nats.plan_events import EVENT_TYPE, parse_plan_event


def build_payload(
    file: Path | None,
    *,
    plan_id: str,
    story_id: str,
    roles: list[str],
    title: str,
    description: str,
    criteria: list[str],
    approved_by: str,
) -> dict[str, Any]:
    """The payload from a JSON/YAML file (its values win) completed by the flags."""
    payload: dict[str, Any] = {}
    if file is not None:
        loaded = yaml.safe_load(file.read_text())  # YAML is a superset of JSON
        if not isinstance(loaded, dict):
            raise ValueError(f"{file}: expected a mapping at the top level")
        payload = loaded.get("payload", loaded) if "event_type" in loaded else loaded
    payload.setdefault("plan_id", plan_id or f"plan-{uuid.uuid4().hex[:8]}")
    payload.setdefault("story_id", story_id or f"story-{uuid.uuid4().hex[:8]}")
    payload.setdefault("approved_by", approved_by)
    payload.setdefault("timestamp", datetime.now(UTC).isoformat())
    if roles:
        payload.setdefault("roles", [r.upper() for r in roles])
    elif "roles" not in payload:
        payload["roles"] = sorted({s.get("role", "") for s in payload.get("subtasks", []) if isinstance(s, dict)})
    plan = payload.setdefault("plan", {})
    if title:
        plan.setdefault("title", title)
    if description:
        plan.setdefault("description", description)
    if criteria:
        plan.setdefault("acceptance_criteria", criteria)
    return payload


def envelope_for(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_type": EVENT_TYPE,
        "payload": payload,
        "idempotency_key": f"plan-approved:{payload['plan_id']}",
        "correlation_id": str(payload["plan_id"]),
        "timestamp": datetime.now(UTC).isoformat(),
        "producer": "orchestrator-cli",
    }


async def publish(nats_url: str, body: dict[str, Any]) -> tuple[int, bool]:
    """Validates like the service does, then publishes; returns (stream sequence, duplicate)."""
    from orchestrator.adapters.nats.jetstream import PLAN_APPROVED, JetStreamBus, NatsConfig

    raw = json.dumps(body).encode()
    parse_plan_event(json.dumps(body.get("payload", body)).encode())  # the consumer's validation, payload first
    parse_plan_event(raw)
    bus = JetStreamBus(NatsConfig(nats_url))
    await bus.connect()
    try:
        key = body.get("idempotency_key", f"plan-approved:{body.get('plan_id', '')}")
        ack = await bus.publish_raw(PLAN_APPROVED, raw, key)
        return int(ack.seq), bool(ack.duplicate)
    finally:
        await bus.close()


def publish_sync(nats_url: str, body: dict[str, Any]) -> tuple[int, bool]:
    return asyncio.run(publish(nats_url, body))


def render_plan(console: Console, plan: Plan) -> None:
    state = "finished" if plan.finished else "in progress"
    console.print(f"[bold]{plan.plan_id}[/bold]  story {plan.story_id}  {plan.title}  ({state})")
    for s in plan.subtasks:
        status = status_name(s.deliberation_status) if s.deliberation_status else "not started"
        after = f"  after {', '.join(s.depends_on)}" if s.depends_on else ""
        console.print(f"\n  [bold]{s.subtask_id}[/bold] ({s.role}){after}")
        console.print(f"    {s.state:<10} deliberation {s.deliberation_id}: {status}, {s.duration_ms / 1000:.1f}s")
        if s.winner_id:
            console.print(f"    winner [green]{s.winner_id}[/green] score {s.winner_score:.3f}")
        if s.error:
            console.print(f"    [yellow]{s.error}[/yellow]")
    for line in cross_check_lines(plan):
        console.print(f"\n  {line}" if line.startswith("outcome") else f"    {line}", markup=False, soft_wrap=True)


def cross_check_lines(plan: Plan) -> list[str]:
    """The plan's outcome and one line per cross-check (each attempt), as `plans show` and the demo print them."""
    if not plan.outcome and not plan.cross_checks:
        return []
    lines = [f"outcome: {plan.outcome or 'cross-checks not run yet'}"]
    lines += [c.summary for c in plan.cross_checks]
    return lines
