"""The Cypher the Neo4j store runs: constants only, every value a parameter.

Statements are small on purpose (FalkorDB rebuilds each one in a 4 KiB buffer, see `dialect`): a write is a
sequence of them in one managed transaction. Conventions:
- `create_token`: set by the MERGE that created a node; a claim returns a row only to the caller that created it,
  and again to the same caller when it retries with the same token.
- `write_id`: stamped on the proposal sub-graph by each save; what a save did not stamp is swept away.
- `body_next`: long JSON is written in parts there and moved to `body` by the last statement, so that a reader
  never sees half a record (FalkorDB has no transactions to hide it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import LiteralString


@dataclass(frozen=True)
class TextTarget:
    """Where one long text goes: `first` sets `$part`, `append` adds the next `$part` to it."""

    first: LiteralString
    append: LiteralString


def _text(match: LiteralString, prop: LiteralString) -> TextTarget:
    return TextTarget(match + " SET n." + prop + " = $part", match + " SET n." + prop + " = n." + prop + " + $part")


def _body_of(var: LiteralString, key: LiteralString) -> LiteralString:
    """The record columns of a read: the body when it is short enough to come back in one reply (`$inline`
    characters), else NULL and its size, to be read in slices through the node's key."""
    return (
        var + "." + key + " AS key, size(" + var + ".body) AS size, "
        "CASE WHEN size(" + var + ".body) <= $inline THEN " + var + ".body ELSE NULL END AS body"
    )


_BODY_OF_C = _body_of("c", "role")
_BODY_OF_D = _body_of("d", "id")
_BODY_OF_P = _body_of("p", "id")

# councils
COUNCIL_CLAIM: LiteralString = (
    "MERGE (c:Council {role: $role}) ON CREATE SET c.create_token = $token "
    "WITH c WHERE c.create_token = $token RETURN c.role AS role"
)
COUNCIL_AGENTS: LiteralString = (
    "MATCH (c:Council {role: $role}) UNWIND $rows AS a MERGE (g:Agent {id: a.id}) SET g += a "
    "MERGE (c)-[:HAS_AGENT]->(g)"
)
COUNCIL_BODY = _text("MATCH (n:Council {role: $role})", "body_next")
COUNCIL_COMMIT: LiteralString = (
    "MATCH (c:Council {role: $role}) SET c += $props, c.body = c.body_next SET c.body_next = NULL"
)
COUNCIL_GET: LiteralString = "MATCH (c:Council {role: $role}) WHERE c.body IS NOT NULL RETURN " + _BODY_OF_C
COUNCIL_ALL: LiteralString = "MATCH (c:Council) WHERE c.body IS NOT NULL RETURN " + _BODY_OF_C + " ORDER BY c.role"
COUNCIL_REMOVE: LiteralString = (
    "MATCH (c:Council {role: $role}) WHERE c.body IS NOT NULL DETACH DELETE c RETURN count(*) AS removed"
)

# deliberations
DELIBERATION_CLAIM: LiteralString = (
    "MERGE (d:Deliberation {id: $id}) ON CREATE SET d.create_token = $token "
    "WITH d WHERE d.create_token = $token RETURN d.id AS id"
)
DELIBERATION_MERGE: LiteralString = "MERGE (d:Deliberation {id: $id}) RETURN d.id AS id"
DELIBERATION_BODY = _text("MATCH (n:Deliberation {id: $id})", "body_next")
DELIBERATION_DESCRIPTION = _text("MATCH (n:Deliberation {id: $id})", "description")
DELIBERATION_ERROR = _text("MATCH (n:Deliberation {id: $id})", "error_message")
DELIBERATION_COMMIT: LiteralString = (
    "MATCH (d:Deliberation {id: $id}) SET d += $props, d.body = d.body_next SET d.body_next = NULL"
)
PROPOSALS_UPSERT: LiteralString = (
    "MATCH (d:Deliberation {id: $id}) UNWIND $rows AS p MERGE (x:Proposal {id: p.id}) SET x = p.props "
    "SET x.write_id = $write MERGE (d)-[:HAS_PROPOSAL]->(x) "
    "MERGE (a:Agent {id: p.author_id}) ON CREATE SET a.role = p.role MERGE (a)-[:AUTHORED]->(x)"
)
PROPOSAL_CONTENT = _text("MATCH (n:Proposal {id: $proposal_id})", "content")
CRITIQUES_UPSERT: LiteralString = (
    "UNWIND $rows AS c MATCH (x:Proposal {id: c.proposal_id}) MERGE (a:Agent {id: c.agent_id}) "
    "MERGE (a)-[r:CRITIQUED {key: c.key}]->(x) "
    "SET r.round = c.round, r.text = c.text, r.deliberation_id = $id, r.write_id = $write"
)
CRITIQUE_TEXT = TextTarget(
    "MATCH (:Proposal {id: $proposal_id})<-[r:CRITIQUED {key: $key}]-() SET r.text = $part",
    "MATCH (:Proposal {id: $proposal_id})<-[r:CRITIQUED {key: $key}]-() SET r.text = r.text + $part",
)
WINNER_SET: LiteralString = (
    "MATCH (d:Deliberation {id: $id}) MATCH (x:Proposal {id: $proposal_id}) "
    "MERGE (d)-[w:WINNER]->(x) SET w.write_id = $write"
)
SWEEP_PROPOSALS: LiteralString = (
    "MATCH (:Deliberation {id: $id})-[:HAS_PROPOSAL]->(x:Proposal) WHERE x.write_id <> $write DETACH DELETE x"
)
SWEEP_CRITIQUES: LiteralString = (
    "MATCH (:Deliberation {id: $id})-[:HAS_PROPOSAL]->(:Proposal)<-[r:CRITIQUED]-() WHERE r.write_id <> $write DELETE r"
)
SWEEP_WINNER: LiteralString = "MATCH (:Deliberation {id: $id})-[w:WINNER]->() WHERE w.write_id <> $write DELETE w"
SUBTASK_LINK: LiteralString = (
    "MATCH (d:Deliberation {id: $id}) MATCH (s:Subtask {deliberation_id: $id}) MERGE (s)-[:DELIBERATED_IN]->(d)"
)
CHECKPOINT_UPSERT: LiteralString = (
    "MATCH (d:Deliberation {id: $id}) MERGE (c:Checkpoint {id: $checkpoint_id}) "
    "SET c.task_id = $id, c.seq = $seq, c.stage = $stage, c.round = $round, c.created_at_ms = $now "
    "MERGE (d)-[:HAS_CHECKPOINT]->(c)"
)
CHECKPOINT_BODY = _text("MATCH (n:Checkpoint {id: $checkpoint_id})", "body_next")
CHECKPOINT_COMMIT: LiteralString = (
    "MATCH (c:Checkpoint {id: $checkpoint_id}) SET c.body = c.body_next SET c.body_next = NULL"
)

DELIBERATION_GET: LiteralString = "MATCH (d:Deliberation {id: $id}) WHERE d.body IS NOT NULL RETURN " + _BODY_OF_D
DELIBERATION_SEARCH: LiteralString = (
    "MATCH (d:Deliberation) WHERE d.body IS NOT NULL "
    "AND ($status IS NULL OR d.status = $status) AND ($role IS NULL OR d.role = $role) "
    "RETURN " + _BODY_OF_D + " ORDER BY d.created_at_ms DESC, d.id SKIP $offset LIMIT $limit"
)
DELIBERATION_UNFINISHED: LiteralString = (
    "MATCH (d:Deliberation) WHERE d.body IS NOT NULL AND d.status IN $statuses "
    "RETURN " + _BODY_OF_D + " ORDER BY d.created_at_ms, d.id"
)
DELIBERATION_COUNTS: LiteralString = (
    "MATCH (d:Deliberation) WHERE d.body IS NOT NULL RETURN d.status AS status, count(*) AS n"
)
CHECKPOINTS_GET: LiteralString = (
    "MATCH (k:Checkpoint {task_id: $id}) WHERE k.body IS NOT NULL RETURN " + _body_of("k", "id") + " ORDER BY k.seq"
)

# dispatches
PLAN_CLAIM: LiteralString = (
    "MERGE (p:Plan {id: $plan_id}) ON CREATE SET p.create_token = $token "
    "WITH p WHERE p.create_token = $token RETURN p.id AS id"
)
PLAN_EXISTS: LiteralString = "MATCH (p:Plan {id: $plan_id}) WHERE p.body IS NOT NULL RETURN p.id AS id"
PLAN_STORY: LiteralString = "MATCH (p:Plan {id: $plan_id}) MERGE (s:Story {id: $story_id}) MERGE (s)-[:HAS_PLAN]->(p)"
SUBTASKS_UPSERT: LiteralString = (
    "MATCH (p:Plan {id: $plan_id}) UNWIND $rows AS t MERGE (s:Subtask {key: t.key}) SET s += t "
    "MERGE (p)-[:HAS_SUBTASK]->(s) WITH s MATCH (d:Deliberation {id: s.deliberation_id}) "
    "MERGE (s)-[:DELIBERATED_IN]->(d)"
)
SUBTASK_TITLE = _text("MATCH (n:Subtask {key: $key})", "title")
SUBTASK_ERROR = _text("MATCH (n:Subtask {key: $key})", "error")
PLAN_BODY = _text("MATCH (n:Plan {id: $plan_id})", "body_next")
PLAN_COMMIT: LiteralString = (
    "MATCH (p:Plan {id: $plan_id}) SET p += $props, p.body = p.body_next SET p.body_next = NULL"
)
PLAN_GET: LiteralString = "MATCH (p:Plan {id: $plan_id}) WHERE p.body IS NOT NULL RETURN " + _BODY_OF_P
PLAN_UNFINISHED: LiteralString = (
    "MATCH (p:Plan) WHERE p.body IS NOT NULL AND p.finished = false "
    "RETURN " + _BODY_OF_P + " ORDER BY p.received_at_ms, p.id"
)
PLAN_FOR_STORY: LiteralString = (
    "MATCH (p:Plan {story_id: $story_id}) WHERE p.body IS NOT NULL "
    "RETURN " + _BODY_OF_P + " ORDER BY p.received_at_ms, p.id"
)

# outbox: an event is written (payload in parts), then numbered; only numbered events are pending.
EVENT_PAYLOAD = TextTarget(
    "MERGE (o:OutboxEvent {event_id: $event_id}) ON CREATE SET o.write_id = $write "
    "WITH o WHERE o.seq IS NULL "
    "SET o.write_id = $write, o.subject = $subject, o.created_at_ms = $created_at_ms, o.payload = $part",
    "MATCH (o:OutboxEvent {event_id: $event_id}) WHERE o.write_id = $write AND o.seq IS NULL "
    "SET o.payload = o.payload + $part",
)
EVENT_NUMBER: LiteralString = (
    "MERGE (q:OutboxSequence {id: 'outbox'}) ON CREATE SET q.next = 0 "
    "WITH q MATCH (o:OutboxEvent {event_id: $event_id}) WHERE o.write_id = $write AND o.seq IS NULL "
    "SET o.seq = q.next SET q.next = q.next + 1"
)
EVENTS_PENDING: LiteralString = (
    "MATCH (o:OutboxEvent) WHERE o.seq IS NOT NULL "
    "RETURN o.event_id AS event_id, o.subject AS subject, o.created_at_ms AS created_at_ms, "
    "size(o.payload) AS size, CASE WHEN size(o.payload) <= $inline THEN o.payload ELSE NULL END AS body "
    "ORDER BY o.seq LIMIT $limit"
)
EVENTS_DELETE: LiteralString = "UNWIND $rows AS id MATCH (o:OutboxEvent {event_id: id}) DELETE o"

# A long text read in slices (FalkorDB cannot send a reply over 64 KiB); `substring` counts characters there.
COUNCIL_SLICE: LiteralString = "MATCH (n:Council {role: $key}) RETURN substring(n.body, $start, $length) AS part"
DELIBERATION_SLICE: LiteralString = (
    "MATCH (n:Deliberation {id: $key}) RETURN substring(n.body, $start, $length) AS part"
)
CHECKPOINT_SLICE: LiteralString = "MATCH (n:Checkpoint {id: $key}) RETURN substring(n.body, $start, $length) AS part"
PLAN_SLICE: LiteralString = "MATCH (n:Plan {id: $key}) RETURN substring(n.body, $start, $length) AS part"
EVENT_SLICE: LiteralString = (
    "MATCH (n:OutboxEvent {event_id: $key}) RETURN substring(n.payload, $start, $length) AS part"
)

PING: LiteralString = "RETURN 1 AS ok"

# leases (which replica works on a deliberation or a plan). The first SET takes the node's write lock on Neo4j,
# so the owner test after it reads what the last committed writer left (FalkorDB runs writes one at a time).
LEASE_ACQUIRE: LiteralString = (
    "MERGE (l:Lease {key: $key}) ON CREATE SET l.owner = $owner, l.until_ms = $until, l.cancel = false "
    "SET l.touched_ms = $now WITH l WHERE l.owner = $owner OR l.until_ms < $now "
    "SET l.owner = $owner, l.until_ms = $until RETURN l.key AS key"
)
LEASE_RENEW: LiteralString = (
    "UNWIND $keys AS k MATCH (l:Lease {key: k}) WHERE l.owner = $owner SET l.until_ms = $until "
    "RETURN l.key AS key, l.cancel AS cancel"
)
LEASE_RELEASE: LiteralString = "MATCH (l:Lease {key: $key}) WHERE l.owner = $owner DELETE l"
LEASE_CANCEL: LiteralString = (
    "MATCH (l:Lease {key: $key}) WHERE l.until_ms >= $now SET l.cancel = true RETURN count(l) AS n"
)
