"""Domain records -> the statements that write them as a graph (DESIGN §7), for one server dialect.

Each write is a `Write`: an optional claim (a statement that returns a row only when this caller may go on: the
id was free, or the record exists) and the steps that follow, all run in one managed transaction. The whole
record also goes, as codec JSON, into `body`, which is what the store reads back; the nodes and relationships
are there for other services' queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.adapters.store import cypher
from orchestrator.adapters.store.codec import council_to_json, deliberation_to_json, dispatch_to_json
from orchestrator.adapters.store.dialect import Dialect, Statement
from orchestrator.application.ports import OutboundEvent
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.model import Council, Critique, Proposal, RankedProposal, agent_of
from orchestrator.domain.plans import PlanDispatch, SubtaskRecord


@dataclass(frozen=True)
class Write:
    claim: Statement | None
    steps: tuple[Statement, ...]


@dataclass(frozen=True)
class Stamp:
    """What makes a write idempotent under retries: the same token and write id on every attempt."""

    token: str
    write_id: str
    now_ms: int


def council_write(council: Council, dialect: Dialect, stamp: Stamp) -> Write:
    role = {"role": council.role.value}
    agents = [
        {"id": a.agent_id, "role": a.role.value, "model": a.model, "temperature": a.temperature, "seed": a.seed}
        | {"max_tokens": a.max_tokens}
        for a in council.agents
    ]
    props = {"id": council.council_id, "model": council.model, "rounds": council.rounds}
    props |= {"enable_peer_review": council.enable_peer_review, "created_at_ms": council.created_at_ms}
    if council.token_budget is not None:  # a graph property cannot be null: absent means "not set"
        props["token_budget"] = council.token_budget
    steps = [
        *dialect.batches(cypher.COUNCIL_AGENTS, role, agents),
        *_text(dialect, cypher.COUNCIL_BODY, role, council_to_json(council)),
        Statement(cypher.COUNCIL_COMMIT, {**role, "props": props}),
    ]
    return Write(Statement(cypher.COUNCIL_CLAIM, {**role, "token": stamp.token}), tuple(steps))


def deliberation_write(
    d: Deliberation,
    dialect: Dialect,
    stamp: Stamp,
    *,
    create: bool,
    checkpoint: bool = False,
    events: Sequence[OutboundEvent] = (),
) -> Write:
    key = {"id": d.task_id}
    claim = (
        Statement(cypher.DELIBERATION_CLAIM, {**key, "token": stamp.token})
        if create
        else Statement(cypher.DELIBERATION_MERGE, key)
    )
    props, texts = _deliberation_props(d, dialect, stamp.now_ms)
    steps = [
        *_text(dialect, cypher.DELIBERATION_BODY, key, deliberation_to_json(d)),
        *texts,
        *_proposal_steps(d, dialect, stamp.write_id),
        *_sweep_steps(d.task_id, stamp.write_id),
        *([Statement(cypher.SUBTASK_LINK, key)] if d.source.startswith("plan:") else []),
        *(_checkpoint_steps(d, dialect, stamp.now_ms) if checkpoint else []),
        *event_steps(events, dialect, stamp.write_id),
        Statement(cypher.DELIBERATION_COMMIT, {**key, "props": props}),
    ]
    return Write(claim, tuple(steps))


def dispatch_write(
    dispatch: PlanDispatch, dialect: Dialect, stamp: Stamp, *, create: bool, events: Sequence[OutboundEvent] = ()
) -> Write:
    plan = dispatch.plan
    key = {"plan_id": plan.plan_id}
    claim = (
        Statement(cypher.PLAN_CLAIM, {**key, "token": stamp.token}) if create else Statement(cypher.PLAN_EXISTS, key)
    )
    props = {"story_id": plan.story_id, "finished": dispatch.finished, "received_at_ms": dispatch.received_at_ms}
    props |= {"approved_by": plan.approved_by, "subtasks": len(dispatch.subtasks)}
    props["outcome"] = dispatch.outcome.value if dispatch.outcome else ""
    rows, texts = _subtask_rows(plan.plan_id, dispatch.subtasks, dialect)
    steps = [
        Statement(cypher.PLAN_STORY, {**key, "story_id": plan.story_id}),
        *_text(dialect, cypher.PLAN_BODY, key, dispatch_to_json(dispatch)),
        *dialect.batches(cypher.SUBTASKS_UPSERT, key, rows),
        *texts,
        *event_steps(events, dialect, stamp.write_id),
        Statement(cypher.PLAN_COMMIT, {**key, "props": props}),
    ]
    return Write(claim, tuple(steps))


def event_steps(events: Sequence[OutboundEvent], dialect: Dialect, write_id: str) -> list[Statement]:
    steps: list[Statement] = []
    for e in events:
        keys = {"event_id": e.event_id, "write": write_id, "subject": e.subject, "created_at_ms": e.created_at_ms}
        steps += _text(dialect, cypher.EVENT_PAYLOAD, keys, e.payload)
        steps.append(Statement(cypher.EVENT_NUMBER, {"event_id": e.event_id, "write": write_id}))
    return steps


def proposal_id(task_id: str, author_id: str) -> str:
    return f"{task_id}/{author_id}"


def _text(dialect: Dialect, target: cypher.TextTarget, keys: dict[str, Any], text: str) -> list[Statement]:
    return dialect.split(target.first, target.append, keys, text)


def _deliberation_props(d: Deliberation, dialect: Dialect, now_ms: int) -> tuple[dict[str, Any], list[Statement]]:
    usage = d.usage
    props: dict[str, Any] = {
        "role": d.task.role.value,
        "status": d.status.value,
        "source": d.source,
        "stage": d.stage,
        "round": d.round,
        "rounds": d.task.rounds,
        "quorum": d.quorum,
        "agents": len(d.agents),
        "winner_id": d.winner_id,
        "created_at_ms": d.created_at_ms,
        "updated_at_ms": now_ms,
        "started_at_ms": d.started_at_ms,
        "finished_at_ms": d.finished_at_ms,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "token_budget": d.task.token_budget or 0,
        "stop_code": d.progress.stop_code.value if d.progress.stop_code else "",
    }
    texts: list[Statement] = []
    key = {"id": d.task_id}
    for name, value, target in (
        ("description", d.task.description, cypher.DELIBERATION_DESCRIPTION),
        ("error_message", d.error_message, cypher.DELIBERATION_ERROR),
    ):
        if dialect.inline(value):
            props[name] = value
        else:
            texts += _text(dialect, target, key, value)
    return props, texts


def _proposal_steps(d: Deliberation, dialect: Dialect, write_id: str) -> list[Statement]:
    key = {"id": d.task_id, "write": write_id}
    rows, texts = [], []
    for proposal, ranked in _proposals(d):
        pid = proposal_id(d.task_id, proposal.author_id)
        props = _proposal_props(d.task_id, pid, proposal, ranked)
        if not dialect.inline(proposal.content):
            props["content"] = ""
            texts += _text(dialect, cypher.PROPOSAL_CONTENT, {"proposal_id": pid}, proposal.content)
        # The Agent node is the agent's, whichever of its samples this is (`agent-dev-001.s2`: agent-dev-001).
        author = agent_of(proposal.author_id)
        rows.append({"id": pid, "author_id": author, "role": proposal.author_role.value, "props": props})
    critiques, critique_texts = _critique_rows(d, dialect)
    winner = (
        [Statement(cypher.WINNER_SET, {**key, "proposal_id": proposal_id(d.task_id, d.winner_id)})]
        if d.winner_id
        else []
    )
    return [
        *dialect.batches(cypher.PROPOSALS_UPSERT, key, rows),
        *texts,
        *dialect.batches(cypher.CRITIQUES_UPSERT, key, critiques),
        *critique_texts,
        *winner,
    ]


def _proposals(d: Deliberation) -> list[tuple[Proposal, RankedProposal | None]]:
    """Ranked results first (they carry the scores), then proposals not ranked (yet), one per author."""
    ranked = {r.proposal.author_id: r for r in d.results}
    authors = dict.fromkeys([*ranked, *d.progress.proposals])
    return [(ranked[a].proposal if a in ranked else d.progress.proposals[a], ranked.get(a)) for a in authors]


def _proposal_props(task_id: str, pid: str, p: Proposal, ranked: RankedProposal | None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "id": pid,
        "deliberation_id": task_id,
        "author_id": p.author_id,
        "role": p.author_role.value,
        "content": p.content,
        "created_at_ms": p.created_at_ms,
        "revisions": len(p.revisions),
    }
    if ranked is not None:
        props |= {
            "rank": ranked.rank,
            "score": ranked.score,
            "check_score": ranked.checks.score,
            "checks_passed": ranked.checks.all_passed,
            "peer_score": ranked.peer_score,
            "prompt_tokens": ranked.usage.prompt_tokens,
            "completion_tokens": ranked.usage.completion_tokens,
        }
    return props


def _critique_rows(d: Deliberation, dialect: Dialect) -> tuple[list[dict[str, Any]], list[Statement]]:
    authors = {p.author_id for p, _ in _proposals(d)}
    every = [*d.progress.critiques, *(c for r in d.results for c in r.critiques)]
    unique: dict[str, Critique] = {}
    for c in every:
        if c.target_id in authors:
            unique.setdefault(f"{d.task_id}/{c.critic_id}>{c.target_id}@{c.round}", c)
    rows, texts = [], []
    for key, c in unique.items():
        pid = proposal_id(d.task_id, c.target_id)
        text = c.text
        if not dialect.inline(text):
            texts += _text(dialect, cypher.CRITIQUE_TEXT, {"proposal_id": pid, "key": key}, text)
            text = ""
        rows.append({"key": key, "agent_id": c.critic_id, "proposal_id": pid, "round": c.round, "text": text})
    return rows, texts


def _sweep_steps(task_id: str, write_id: str) -> list[Statement]:
    """Removes what an earlier save wrote and this one did not (proposals gone, critiques, an old winner)."""
    params = {"id": task_id, "write": write_id}
    return [
        Statement(cypher.SWEEP_CRITIQUES, params),
        Statement(cypher.SWEEP_WINNER, params),
        Statement(cypher.SWEEP_PROPOSALS, params),
    ]


def _checkpoint_steps(d: Deliberation, dialect: Dialect, now_ms: int) -> list[Statement]:
    key = {"checkpoint_id": f"{d.task_id}#{d.progress.stages_done}"}
    fields = {"id": d.task_id, "seq": d.progress.stages_done, "stage": d.stage, "round": d.round, "now": now_ms}
    return [
        Statement(cypher.CHECKPOINT_UPSERT, {**key, **fields}),
        *_text(dialect, cypher.CHECKPOINT_BODY, key, deliberation_to_json(d)),
        Statement(cypher.CHECKPOINT_COMMIT, key),
    ]


def _subtask_rows(
    plan_id: str, subtasks: Sequence[SubtaskRecord], dialect: Dialect
) -> tuple[list[dict[str, Any]], list[Statement]]:
    rows, texts = [], []
    for s in subtasks:
        key = f"{plan_id}/{s.subtask.subtask_id}"
        row: dict[str, Any] = {
            "key": key,
            "id": s.subtask.subtask_id,
            "plan_id": plan_id,
            "role": s.subtask.role.value,
            "state": s.state.value,
            "deliberation_id": s.deliberation_id,
            "winner_id": s.winner_id,
            "priority": s.subtask.priority,
            "depends_on": list(s.subtask.depends_on),
        }
        for name, value, target in (
            ("title", s.subtask.title, cypher.SUBTASK_TITLE),
            ("error", s.error, cypher.SUBTASK_ERROR),
        ):
            inline = dialect.inline(value)
            row[name] = value if inline else ""
            if not inline:
                texts += _text(dialect, target, {"key": key}, value)
        rows.append(row)
    return rows, texts
