"""SQLite store (the default): councils, deliberation records, stage checkpoints, in one WAL-mode file.

Records are stored whole as JSON next to the columns that queries filter on. One connection per process,
used through aiosqlite's own thread, so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiosqlite

from orchestrator.adapters.clock import SystemClock
from orchestrator.adapters.store.codec import (
    council_from_json,
    council_to_json,
    deliberation_from_json,
    deliberation_to_json,
    dispatch_from_json,
    dispatch_to_json,
)
from orchestrator.application.ports import Clock, OutboundEvent
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import ConfigError, DependencyUnavailableError
from orchestrator.domain.model import Council, DeliberationStatus, Role
from orchestrator.domain.plans import PlanDispatch

SCHEMA = """
CREATE TABLE IF NOT EXISTS councils (
    role TEXT PRIMARY KEY,
    council_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deliberations (
    task_id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliberations_by_status ON deliberations (status, created_at_ms);
CREATE INDEX IF NOT EXISTS deliberations_by_created ON deliberations (created_at_ms);
CREATE TABLE IF NOT EXISTS dispatches (
    plan_id TEXT PRIMARY KEY,
    story_id TEXT NOT NULL,
    finished INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dispatches_by_story ON dispatches (story_id, received_at_ms);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until_ms INTEGER NOT NULL,
    cancel INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS checkpoints (
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    stage TEXT NOT NULL,
    round INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);
"""

UNFINISHED = (DeliberationStatus.PENDING.value, DeliberationStatus.IN_PROGRESS.value)


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db`, `sqlite://:memory:` or a bare path."""
    if url.startswith("sqlite://"):
        rest = url.removeprefix("sqlite://")
        path = rest.removeprefix("/") if rest.startswith("/") else rest
        return path or ":memory:"
    if "://" in url:
        raise ConfigError(f"not a SQLite URL: {url!r}")
    return url


class SqliteStore:
    """All the store ports on one SQLite database: councils here, the rest through `deliberations`.

    One connection is shared; writes that must land together take `lock`, so another coroutine's commit
    can never split them.
    """

    def __init__(self, db: aiosqlite.Connection, clock: Clock | None = None) -> None:
        self._db = db
        self.lock = asyncio.Lock()
        self.records = SqliteDeliberationStore(db, self.lock, clock or SystemClock())
        self.leases = SqliteLeases(db, self.lock)

    @classmethod
    async def open(cls, url: str, clock: Clock | None = None) -> SqliteStore:
        path = sqlite_path(url)
        if path != ":memory:":
            path = await asyncio.to_thread(_prepare_directory, path)
        db = await aiosqlite.connect(path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA busy_timeout=5000")
        await db.executescript(SCHEMA)
        await db.commit()
        return cls(db, clock)

    @property
    def connection(self) -> aiosqlite.Connection:
        return self._db

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        await self._db.execute("SELECT 1")

    # councils
    async def add(self, council: Council) -> bool:
        async with _writing(self._db, self.lock):
            cursor = await self._db.execute(
                "INSERT OR IGNORE INTO councils (role, council_id, body, created_at_ms) VALUES (?, ?, ?, ?)",
                (council.role.value, council.council_id, council_to_json(council), council.created_at_ms),
            )
            await self._db.commit()
        return cursor.rowcount == 1

    async def get(self, role: Role) -> Council | None:
        async with _reading(self._db, "SELECT body FROM councils WHERE role = ?", (role.value,)) as cur:
            row = await cur.fetchone()
        return council_from_json(row[0]) if row else None

    async def all_councils(self) -> list[Council]:
        async with _reading(self._db, "SELECT body FROM councils ORDER BY role") as cur:
            return [council_from_json(row[0]) async for row in cur]

    async def remove(self, role: Role) -> bool:
        async with _writing(self._db, self.lock):
            cursor = await self._db.execute("DELETE FROM councils WHERE role = ?", (role.value,))
            await self._db.commit()
        return cursor.rowcount == 1


class SqliteDeliberationStore:
    """DeliberationStore, DispatchStore and Outbox, sharing the connection of a SqliteStore."""

    def __init__(self, db: aiosqlite.Connection, lock: asyncio.Lock, clock: Clock) -> None:
        self._db = db
        self._lock = lock
        self._clock = clock

    async def create(self, deliberation: Deliberation) -> bool:
        d = deliberation
        body = deliberation_to_json(d)
        async with _writing(self._db, self._lock):
            cursor = await self._db.execute(
                "INSERT OR IGNORE INTO deliberations (task_id, role, status, created_at_ms, updated_at_ms, body) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (d.task_id, d.task.role.value, d.status.value, d.created_at_ms, self._clock.now_ms(), body),
            )
            await self._db.commit()
        return cursor.rowcount == 1

    async def save(
        self, deliberation: Deliberation, *, checkpoint: bool = False, events: Sequence[OutboundEvent] = ()
    ) -> None:
        d = deliberation
        body = deliberation_to_json(d)
        async with _writing(self._db, self._lock):
            await self._save(d, body, checkpoint)
            await self._enqueue(events)
            await self._db.commit()

    async def _save(self, d: Deliberation, body: str, checkpoint: bool) -> None:
        await self._db.execute(
            "INSERT INTO deliberations (task_id, role, status, created_at_ms, updated_at_ms, body) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET "
            "status = excluded.status, updated_at_ms = excluded.updated_at_ms, body = excluded.body",
            (d.task_id, d.task.role.value, d.status.value, d.created_at_ms, self._clock.now_ms(), body),
        )
        if checkpoint:
            await self._db.execute(
                "INSERT OR REPLACE INTO checkpoints (task_id, seq, stage, round, created_at_ms, body) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (d.task_id, d.progress.stages_done, d.stage, d.round, self._clock.now_ms(), body),
            )

    async def _enqueue(self, events: Sequence[OutboundEvent]) -> None:
        await self._db.executemany(
            "INSERT OR IGNORE INTO outbox (event_id, subject, payload, created_at_ms) VALUES (?, ?, ?, ?)",
            [(e.event_id, e.subject, e.payload, e.created_at_ms) for e in events],
        )

    async def get(self, task_id: str) -> Deliberation | None:
        async with _reading(self._db, "SELECT body FROM deliberations WHERE task_id = ?", (task_id,)) as cur:
            row = await cur.fetchone()
        return deliberation_from_json(row[0]) if row else None

    async def search(
        self,
        *,
        status: DeliberationStatus | None = None,
        role: Role | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Deliberation]:
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status.value)
        if role is not None:
            where.append("role = ?")
            args.append(role.value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        query = f"SELECT body FROM deliberations {clause} ORDER BY created_at_ms DESC, task_id LIMIT ? OFFSET ?"
        async with _reading(self._db, query, (*args, limit, offset)) as cur:
            return [deliberation_from_json(row[0]) async for row in cur]

    async def unfinished(self) -> list[Deliberation]:
        query = "SELECT body FROM deliberations WHERE status IN (?, ?) ORDER BY created_at_ms"
        async with _reading(self._db, query, UNFINISHED) as cur:
            return [deliberation_from_json(row[0]) async for row in cur]

    async def counts(self) -> dict[DeliberationStatus, int]:
        # All rows in one step on the connection's thread: a GROUP BY read step by step (it streams along the
        # status index) can see a write of the same connection between steps, and yields a NULL status then.
        query = "SELECT status, COUNT(*) FROM deliberations GROUP BY status"
        try:
            rows = await self._db.execute_fetchall(query)
        except sqlite3.Error as exc:
            if isinstance(exc, _BUGS):
                raise
            raise DependencyUnavailableError("store", f"sqlite: {exc}") from exc
        return {DeliberationStatus(row[0]): int(row[1]) for row in rows}

    async def checkpoints(self, task_id: str) -> list[Deliberation]:
        query = "SELECT body FROM checkpoints WHERE task_id = ? ORDER BY seq"
        async with _reading(self._db, query, (task_id,)) as cur:
            return [deliberation_from_json(row[0]) async for row in cur]

    # dispatches
    async def create_dispatch(self, dispatch: PlanDispatch, events: Sequence[OutboundEvent] = ()) -> bool:
        async with _writing(self._db, self._lock):
            cursor = await self._db.execute(
                "INSERT OR IGNORE INTO dispatches (plan_id, story_id, finished, received_at_ms, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    dispatch.plan.plan_id,
                    dispatch.plan.story_id,
                    int(dispatch.finished),
                    dispatch.received_at_ms,
                    dispatch_to_json(dispatch),
                ),
            )
            created = cursor.rowcount == 1
            if created:
                await self._enqueue(events)
            await self._db.commit()
        return created

    async def save_dispatch(self, dispatch: PlanDispatch, events: Sequence[OutboundEvent] = ()) -> None:
        async with _writing(self._db, self._lock):
            await self._db.execute(
                "UPDATE dispatches SET finished = ?, body = ? WHERE plan_id = ?",
                (int(dispatch.finished), dispatch_to_json(dispatch), dispatch.plan.plan_id),
            )
            await self._enqueue(events)
            await self._db.commit()

    async def get_dispatch(self, plan_id: str) -> PlanDispatch | None:
        async with _reading(self._db, "SELECT body FROM dispatches WHERE plan_id = ?", (plan_id,)) as cur:
            row = await cur.fetchone()
        return dispatch_from_json(row[0]) if row else None

    async def unfinished_dispatches(self) -> list[PlanDispatch]:
        query = "SELECT body FROM dispatches WHERE finished = 0 ORDER BY received_at_ms"
        async with _reading(self._db, query) as cur:
            return [dispatch_from_json(row[0]) async for row in cur]

    async def dispatches_for_story(self, story_id: str) -> list[PlanDispatch]:
        query = "SELECT body FROM dispatches WHERE story_id = ? ORDER BY received_at_ms"
        async with _reading(self._db, query, (story_id,)) as cur:
            return [dispatch_from_json(row[0]) async for row in cur]

    # outbox
    async def pending_events(self, limit: int = 100) -> list[OutboundEvent]:
        query = "SELECT event_id, subject, payload, created_at_ms FROM outbox ORDER BY seq LIMIT ?"
        async with _reading(self._db, query, (limit,)) as cur:
            return [OutboundEvent(row[0], row[1], row[2], int(row[3])) async for row in cur]

    async def mark_sent(self, event_ids: Sequence[str]) -> None:
        async with _writing(self._db, self._lock):
            await self._db.executemany("DELETE FROM outbox WHERE event_id = ?", [(e,) for e in event_ids])
            await self._db.commit()


_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)
"""SQLite errors that mean a defect in this code, not a database that cannot serve."""


@contextlib.asynccontextmanager
async def _reading(
    db: aiosqlite.Connection, query: str, params: Sequence[object] = ()
) -> AsyncIterator[aiosqlite.Cursor]:
    """One query's cursor; a database that cannot serve it (locked, I/O error, corrupt file) is the store being
    unavailable, as for writes."""
    try:
        async with db.execute(query, params) as cursor:
            yield cursor
    except sqlite3.Error as exc:
        if isinstance(exc, _BUGS):
            raise
        raise DependencyUnavailableError("store", f"sqlite: {exc}") from exc


@contextlib.asynccontextmanager
async def _writing(db: aiosqlite.Connection, lock: asyncio.Lock) -> AsyncIterator[None]:
    """One write under the connection's lock. A database that cannot take it (disk full, locked, I/O error,
    corrupt file) rolls back what was started, so the next writer's commit cannot persist half of it, and
    surfaces as the store being unavailable: callers wait it out, clients see UNAVAILABLE."""
    async with lock:
        try:
            yield
        except sqlite3.Error as exc:
            if isinstance(exc, _BUGS):
                raise  # a bug, not an outage
            with contextlib.suppress(sqlite3.Error):
                await db.rollback()
            raise DependencyUnavailableError("store", f"sqlite: {exc}") from exc


class SqliteLeases:
    """Leases in the same file: an upsert that only takes a free, expired or own lease is atomic in SQLite."""

    def __init__(self, db: aiosqlite.Connection, lock: asyncio.Lock) -> None:
        self._db = db
        self._lock = lock

    async def acquire(self, key: str, owner: str, now_ms: int, ttl_ms: int) -> bool:
        async with _writing(self._db, self._lock):
            cursor = await self._db.execute(
                "INSERT INTO leases (key, owner, until_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms "
                "WHERE leases.owner = excluded.owner OR leases.until_ms < ?",
                (key, owner, now_ms + ttl_ms, now_ms),
            )
            await self._db.commit()
        return cursor.rowcount == 1

    async def renew(self, owner: str, keys: Sequence[str], now_ms: int, ttl_ms: int) -> dict[str, bool]:
        held: dict[str, bool] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            async with _writing(self._db, self._lock):
                await self._db.execute(
                    f"UPDATE leases SET until_ms = ? WHERE owner = ? AND key IN ({marks})",
                    (now_ms + ttl_ms, owner, *chunk),
                )
                await self._db.commit()
            query = f"SELECT key, cancel FROM leases WHERE owner = ? AND key IN ({marks})"
            async with _reading(self._db, query, (owner, *chunk)) as cursor:
                held.update({row[0]: bool(row[1]) async for row in cursor})
        return held

    async def release(self, key: str, owner: str) -> None:
        async with _writing(self._db, self._lock):
            await self._db.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, owner))
            await self._db.commit()

    async def request_cancel(self, key: str, now_ms: int) -> bool:
        async with _writing(self._db, self._lock):
            cursor = await self._db.execute(
                "UPDATE leases SET cancel = 1 WHERE key = ? AND until_ms >= ?", (key, now_ms)
            )
            await self._db.commit()
        return cursor.rowcount == 1


def _prepare_directory(path: str) -> str:
    resolved = Path(path).expanduser()
    resolved.parent.mkdir(parents=True, exist_ok=True)
    return str(resolved)
