"""Runs statements over the async Neo4j driver: managed transactions, bounded retries, errors in domain words.

Retries are ours, not the driver's: its managed-transaction retry starts at 1 s and may sleep past its own
budget, so the driver gets `max_transaction_retry_time=0` (one attempt per `execute_*`) and this module retries
the whole transaction function with exponential backoff and jitter until `RetryPolicy.budget_s` has passed.
Retrying a write is safe because every write is idempotent (MERGE on ids, claims keyed by a token that is the
same on every attempt). When the budget is spent, `DependencyUnavailableError("neo4j", ...)` is raised.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, LiteralString, TypeVar

import neo4j
from neo4j.exceptions import DriverError, Neo4jError, ServiceUnavailable, SessionExpired, TransientError

from orchestrator.adapters.store.dialect import Dialect, Statement
from orchestrator.adapters.store.graph_plan import Write
from orchestrator.domain.errors import DependencyUnavailableError

T = TypeVar("T")
Work = Callable[[neo4j.AsyncManagedTransaction], Awaitable[T]]

# Connection loss shows up as these, or as OSError from the socket when the driver does not wrap it.
TRANSIENT: tuple[type[BaseException], ...] = (ServiceUnavailable, SessionExpired, TransientError, OSError)


@dataclass(frozen=True)
class RetryPolicy:
    """How long a store call keeps trying while the server cannot be reached."""

    budget_s: float = 10.0
    first_delay_s: float = 0.05
    max_delay_s: float = 1.0
    jitter: float = 0.2
    """Each delay is moved at random by up to this fraction, so that many callers do not retry in step."""

    def delays(self) -> Iterator[float]:
        delay = self.first_delay_s
        while True:
            yield delay * (1 + random.uniform(-self.jitter, self.jitter))
            delay = min(self.max_delay_s, delay * 2)


class BoltRunner:
    """One driver's sessions, transactions and retries, for one dialect and database."""

    def __init__(
        self, driver: neo4j.AsyncDriver, dialect: Dialect, policy: RetryPolicy, database: str | None = None
    ) -> None:
        self.driver = driver
        self.dialect = dialect
        self.policy = policy
        self.database = database

    async def write(self, write: Write) -> bool:
        """Runs `write` in one transaction; False (and nothing else run) when its claim returns no row."""

        async def work(tx: neo4j.AsyncManagedTransaction) -> bool:
            if write.claim is not None and not await self._run(tx, write.claim):
                return False
            for step in write.steps:
                await self._run(tx, step)
            return True

        return await self.retrying(lambda: self._execute(work, write=True))

    async def read(
        self, query: LiteralString, params: Mapping[str, Any] | None = None, *, write: bool = False
    ) -> list[dict[str, Any]]:
        """One statement's rows; `write` runs it in a write transaction (a delete that reports what it did)."""
        statement = Statement(query, params or {})

        async def work(tx: neo4j.AsyncManagedTransaction) -> list[dict[str, Any]]:
            return await self._run(tx, statement)

        return await self.retrying(lambda: self._execute(work, write=write))

    async def read_texts(
        self, query: LiteralString, params: Mapping[str, Any], slices: LiteralString, key: str = "key"
    ) -> list[dict[str, Any]]:
        """Rows of `query` (which returns `body`, or NULL and `size` when too long for one reply) with every
        `body` filled in, the long ones read through `slices` by the row's `key`."""
        rows = await self.read(query, {**params, "inline": self.dialect.reply_chars})
        for row in rows:
            if row["body"] is None:
                row["body"] = await self._read_slices(slices, row[key], int(row["size"]))
        return rows

    async def _read_slices(self, query: LiteralString, key: str, size: int) -> str:
        step = self.dialect.reply_chars

        async def work(tx: neo4j.AsyncManagedTransaction) -> str:
            parts = []
            # Never past the end: FalkorDB's substring returns garbage there.
            for start in range(0, size, step):
                rows = await self._run(
                    tx, Statement(query, {"key": key, "start": start, "length": min(step, size - start)})
                )
                parts.append(str(rows[0]["part"]) if rows else "")
            return "".join(parts)

        return await self.retrying(lambda: self._execute(work, write=False))

    async def run_once(self, query: LiteralString, *, write: bool = False) -> list[dict[str, Any]]:
        """One attempt, no retry: for schema statements and probes, whose errors the caller interprets."""

        async def work(tx: neo4j.AsyncManagedTransaction) -> list[dict[str, Any]]:
            return await self._run(tx, Statement(query, {}))

        return await self._execute(work, write=write)

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self.policy.budget_s
        delays = self.policy.delays()
        while True:
            try:
                return await attempt()
            except (DriverError, Neo4jError, OSError) as exc:
                if not _transient(exc):
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DependencyUnavailableError("neo4j", f"{type(exc).__name__}: {exc}") from exc
                # The last sleep is cut short so that one more attempt lands on the deadline.
                await asyncio.sleep(min(next(delays), remaining))

    async def _execute(self, work: Work[T], *, write: bool) -> T:
        async with self.driver.session(database=self.database) as session:
            if write:
                return await session.execute_write(work)
            return await session.execute_read(work)

    async def _run(self, tx: neo4j.AsyncManagedTransaction, statement: Statement) -> list[dict[str, Any]]:
        result = await tx.run(statement.query, self.dialect.encode(statement.params))
        return [record.data() async for record in result]


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT):
        return True
    return isinstance(exc, DriverError | Neo4jError) and exc.is_retryable()
