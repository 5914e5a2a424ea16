"""Neo4j store (production): councils, deliberations, checkpoints, dispatched plans and the outbox as a graph.

`Neo4jStore` is the CouncilStore; its `deliberations` attribute is the DeliberationStore, DispatchStore and
Outbox, with the same semantics as the SQLite store. It also runs on FalkorDB's Bolt server (the tests' server);
what differs between the two lives in `dialect`. See docs/neo4j.md for the graph model.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import neo4j
from neo4j.exceptions import Neo4jError

from orchestrator.adapters.store import cypher
from orchestrator.adapters.store.bolt import BoltRunner, RetryPolicy
from orchestrator.adapters.store.codec import council_from_json, deliberation_from_json, dispatch_from_json
from orchestrator.adapters.store.dialect import FALKORDB_INDEXES, PROBE, Dialect, Server
from orchestrator.adapters.store.graph_plan import Stamp, Write, council_write, deliberation_write, dispatch_write
from orchestrator.application.ports import OutboundEvent
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.model import Council, DeliberationStatus, Role
from orchestrator.domain.plans import PlanDispatch

UNFINISHED = [DeliberationStatus.PENDING.value, DeliberationStatus.IN_PROGRESS.value]


@dataclass(frozen=True)
class Neo4jOptions:
    """Connection settings beyond the URI and credentials."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout_s: float = 5.0
    """Bounds a TCP connect and the Bolt handshake (the driver's acquisition timeout)."""
    database: str | None = None
    """Neo4j database, or FalkorDB graph name; None is the server's default."""


class Neo4jStore:
    """CouncilStore over Bolt; `deliberations` shares its driver. One per process: `open`, then `close`."""

    def __init__(self, runner: BoltRunner) -> None:
        self._runner = runner
        self.records = Neo4jDeliberationStore(runner)
        self.leases = Neo4jLeases(runner)

    @classmethod
    async def open(
        cls, uri: str, user: str = "", password: str = "", options: Neo4jOptions | None = None
    ) -> Neo4jStore:
        """Connects (within the retry budget), finds out which server it is, and creates the schema.

        Credentials are sent only when a password is given: FalkorDB takes no authentication over Bolt."""
        options = options or Neo4jOptions()
        driver = neo4j.AsyncGraphDatabase.driver(
            uri,
            auth=(user, password) if password else None,
            max_transaction_retry_time=0.0,
            connection_timeout=options.connect_timeout_s,
            connection_acquisition_timeout=options.connect_timeout_s,
            # Server hints (e.g. "cartesian product") are not errors; under `python -X dev` the driver would
            # raise them as Python warnings.
            warn_notification_severity="OFF",
        )
        try:
            runner = BoltRunner(driver, Dialect(Server.NEO4J), options.retry, options.database)
            runner.dialect = await runner.retrying(lambda: _detect(runner))
            await runner.retrying(lambda: _ensure_schema(runner))
        except BaseException:
            await driver.close()
            raise
        return cls(runner)

    @property
    def driver(self) -> neo4j.AsyncDriver:
        return self._runner.driver

    @property
    def dialect(self) -> Dialect:
        return self._runner.dialect

    async def close(self) -> None:
        await self._runner.driver.close()

    async def ping(self) -> None:
        """One round trip, no retry: raises DependencyUnavailableError when the server does not answer."""
        fast = BoltRunner(self._runner.driver, self.dialect, RetryPolicy(budget_s=0.0), self._runner.database)
        await fast.read(cypher.PING)

    async def add(self, council: Council) -> bool:
        return await self._runner.write(council_write(council, self.dialect, _stamp()))

    async def get(self, role: Role) -> Council | None:
        rows = await self._runner.read_texts(cypher.COUNCIL_GET, {"role": role.value}, cypher.COUNCIL_SLICE)
        return council_from_json(rows[0]["body"]) if rows else None

    async def all_councils(self) -> list[Council]:
        rows = await self._runner.read_texts(cypher.COUNCIL_ALL, {}, cypher.COUNCIL_SLICE)
        return [council_from_json(row["body"]) for row in rows]

    async def remove(self, role: Role) -> bool:
        rows = await self._runner.read(cypher.COUNCIL_REMOVE, {"role": role.value}, write=True)
        return bool(rows and rows[0]["removed"])


class Neo4jDeliberationStore:
    """DeliberationStore, DispatchStore and Outbox over the driver of a Neo4jStore."""

    def __init__(self, runner: BoltRunner) -> None:
        self._runner = runner

    @property
    def _dialect(self) -> Dialect:
        return self._runner.dialect

    async def create(self, deliberation: Deliberation) -> bool:
        return await self._runner.write(deliberation_write(deliberation, self._dialect, _stamp(), create=True))

    async def save(
        self, deliberation: Deliberation, *, checkpoint: bool = False, events: Sequence[OutboundEvent] = ()
    ) -> None:
        write = deliberation_write(
            deliberation, self._dialect, _stamp(), create=False, checkpoint=checkpoint, events=events
        )
        await self._runner.write(write)

    async def get(self, task_id: str) -> Deliberation | None:
        rows = await self._runner.read_texts(cypher.DELIBERATION_GET, {"id": task_id}, cypher.DELIBERATION_SLICE)
        return deliberation_from_json(rows[0]["body"]) if rows else None

    async def search(
        self,
        *,
        status: DeliberationStatus | None = None,
        role: Role | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Deliberation]:
        params = {
            "status": status.value if status else None,
            "role": role.value if role else None,
            "limit": limit,
            "offset": offset,
        }
        rows = await self._runner.read_texts(cypher.DELIBERATION_SEARCH, params, cypher.DELIBERATION_SLICE)
        return [deliberation_from_json(r["body"]) for r in rows]

    async def unfinished(self) -> list[Deliberation]:
        params = {"statuses": UNFINISHED}
        rows = await self._runner.read_texts(cypher.DELIBERATION_UNFINISHED, params, cypher.DELIBERATION_SLICE)
        return [deliberation_from_json(r["body"]) for r in rows]

    async def counts(self) -> dict[DeliberationStatus, int]:
        rows = await self._runner.read(cypher.DELIBERATION_COUNTS)
        return {DeliberationStatus(r["status"]): int(r["n"]) for r in rows}

    async def checkpoints(self, task_id: str) -> list[Deliberation]:
        rows = await self._runner.read_texts(cypher.CHECKPOINTS_GET, {"id": task_id}, cypher.CHECKPOINT_SLICE)
        return [deliberation_from_json(r["body"]) for r in rows]

    # dispatches
    async def create_dispatch(self, dispatch: PlanDispatch, events: Sequence[OutboundEvent] = ()) -> bool:
        return await self._runner.write(dispatch_write(dispatch, self._dialect, _stamp(), create=True, events=events))

    async def save_dispatch(self, dispatch: PlanDispatch, events: Sequence[OutboundEvent] = ()) -> None:
        await self._runner.write(dispatch_write(dispatch, self._dialect, _stamp(), create=False, events=events))

    async def get_dispatch(self, plan_id: str) -> PlanDispatch | None:
        rows = await self._runner.read_texts(cypher.PLAN_GET, {"plan_id": plan_id}, cypher.PLAN_SLICE)
        return dispatch_from_json(rows[0]["body"]) if rows else None

    async def unfinished_dispatches(self) -> list[PlanDispatch]:
        rows = await self._runner.read_texts(cypher.PLAN_UNFINISHED, {}, cypher.PLAN_SLICE)
        return [dispatch_from_json(r["body"]) for r in rows]

    async def dispatches_for_story(self, story_id: str) -> list[PlanDispatch]:
        rows = await self._runner.read_texts(cypher.PLAN_FOR_STORY, {"story_id": story_id}, cypher.PLAN_SLICE)
        return [dispatch_from_json(r["body"]) for r in rows]

    # outbox
    async def pending_events(self, limit: int = 100) -> list[OutboundEvent]:
        params = {"limit": limit}
        rows = await self._runner.read_texts(cypher.EVENTS_PENDING, params, cypher.EVENT_SLICE, key="event_id")
        return [OutboundEvent(r["event_id"], r["subject"], r["body"], int(r["created_at_ms"])) for r in rows]

    async def mark_sent(self, event_ids: Sequence[str]) -> None:
        steps = self._dialect.batches(cypher.EVENTS_DELETE, {}, list(event_ids))
        await self._runner.write(Write(None, tuple(steps)))


class Neo4jLeases:
    """Leases as `(:Lease {key, owner, until_ms, cancel})` nodes."""

    RENEW_BATCH = 20
    """Keys per renew statement: FalkorDB inlines parameters into a 4 KiB statement buffer."""

    def __init__(self, runner: BoltRunner) -> None:
        self._runner = runner

    async def acquire(self, key: str, owner: str, now_ms: int, ttl_ms: int) -> bool:
        params = {"key": key, "owner": owner, "now": now_ms, "until": now_ms + ttl_ms}
        return bool(await self._runner.read(cypher.LEASE_ACQUIRE, params, write=True))

    async def renew(self, owner: str, keys: Sequence[str], now_ms: int, ttl_ms: int) -> dict[str, bool]:
        held: dict[str, bool] = {}
        for start in range(0, len(keys), self.RENEW_BATCH):
            params = {"keys": list(keys[start : start + self.RENEW_BATCH]), "owner": owner, "until": now_ms + ttl_ms}
            rows = await self._runner.read(cypher.LEASE_RENEW, params, write=True)
            held.update({str(r["key"]): bool(r["cancel"]) for r in rows})
        return held

    async def release(self, key: str, owner: str) -> None:
        await self._runner.read(cypher.LEASE_RELEASE, {"key": key, "owner": owner}, write=True)

    async def request_cancel(self, key: str, now_ms: int) -> bool:
        rows = await self._runner.read(cypher.LEASE_CANCEL, {"key": key, "now": now_ms}, write=True)
        return bool(rows and rows[0]["n"])


async def _detect(runner: BoltRunner) -> Dialect:
    """Neo4j answers `dbms.components()`; FalkorDB (which calls itself Neo4j in its HELLO) does not have it."""
    try:
        await runner.run_once(PROBE)
    except Neo4jError as exc:
        if exc.is_retryable():  # a Neo4j that is not ready yet: ask again
            raise
        return Dialect(Server.FALKORDB)
    return Dialect(Server.NEO4J)


async def _ensure_schema(runner: BoltRunner) -> None:
    existing: list[tuple[str, str]] = []
    if runner.dialect.server is Server.FALKORDB:
        rows = await runner.run_once(FALKORDB_INDEXES)
        existing = [(r["label"], prop) for r in rows for prop in r["properties"]]
    for statement in runner.dialect.schema(existing):
        await runner.run_once(statement, write=True)


def _stamp() -> Stamp:
    return Stamp(token=uuid.uuid4().hex, write_id=uuid.uuid4().hex, now_ms=int(time.time() * 1000))
