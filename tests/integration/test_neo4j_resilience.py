"""The Neo4j store while its server goes away and comes back, on FalkorDB's Bolt server.

The server is stopped in the middle of a run of writes and started again on the same ports; the same store
object (never re-opened) must report DependencyUnavailableError after its bounded retry while the server is
down, and read and write again once it is back. FalkorDB runs with `--save ""`, so what was written before
the restart is gone after it: these tests only look at what is written after.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from orchestrator.adapters.store.bolt import RetryPolicy
from orchestrator.adapters.store.neo4j_store import Neo4jOptions, Neo4jStore
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import DependencyUnavailableError
from orchestrator.domain.model import AgentSpec, DeliberationStatus, Role, TaskSpec
from orchestrator.testing.falkordb import FalkorDBServer

pytestmark = pytest.mark.integration

AGENT = AgentSpec("agent-qa-001", Role.QA, "m", 0.5, 1000, 256)
BUDGET_S = 1.5


def record(task_id: str) -> Deliberation:
    return Deliberation(TaskSpec(task_id, "test it", Role.QA, 1, 1), (AGENT,), DeliberationStatus.PENDING, 1)


@pytest.fixture
def server() -> Iterator[FalkorDBServer]:
    with FalkorDBServer() as falkordb:
        yield falkordb


@pytest.fixture
async def store(server: FalkorDBServer) -> AsyncIterator[Neo4jStore]:
    options = Neo4jOptions(retry=RetryPolicy(budget_s=BUDGET_S), connect_timeout_s=1.0)
    opened = await Neo4jStore.open(server.bolt_uri, options=options)
    yield opened
    await opened.close()


async def test_a_run_of_writes_fails_fast_while_the_server_is_down_and_resumes_after_a_restart(
    server: FalkorDBServer, store: Neo4jStore
) -> None:
    ports = (server.port, server.bolt_port)
    outcomes: list[str] = []
    stop_writing = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop_writing.is_set():
            n += 1
            try:
                await store.records.save(record(f"w-{n}"))
                outcomes.append("ok")
            except DependencyUnavailableError as exc:
                assert exc.dependency == "neo4j"
                outcomes.append("unavailable")
            await asyncio.sleep(0.02)

    task = asyncio.create_task(writer())
    await wait_for(lambda: outcomes.count("ok") >= 5)
    await asyncio.to_thread(server.stop)
    await wait_for(lambda: "unavailable" in outcomes, timeout_s=BUDGET_S * 4)
    await asyncio.to_thread(server.start)
    assert (server.port, server.bolt_port) == ports
    down_at = outcomes.index("unavailable")
    await wait_for(lambda: outcomes[down_at:].count("ok") >= 5, timeout_s=BUDGET_S * 4)
    stop_writing.set()
    await task
    assert await store.records.get("after-restart") is None
    assert await store.records.create(record("after-restart"))
    assert await store.records.get("after-restart") == record("after-restart")


async def test_a_call_gives_up_after_its_retry_budget(server: FalkorDBServer, store: Neo4jStore) -> None:
    assert await store.records.create(record("before"))
    await asyncio.to_thread(server.stop)
    calls = [lambda: store.records.get("before"), lambda: store.records.create(record("down"))]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(DependencyUnavailableError) as info:
            await call()
        elapsed = time.monotonic() - started
        assert info.value.dependency == "neo4j" and info.value.detail
        assert BUDGET_S <= elapsed <= BUDGET_S + 1.0
    with pytest.raises(DependencyUnavailableError):
        await store.ping()


async def test_a_write_started_while_the_server_is_down_succeeds_when_it_returns_in_time(
    server: FalkorDBServer,
) -> None:
    options = Neo4jOptions(retry=RetryPolicy(budget_s=10.0), connect_timeout_s=1.0)
    store = await Neo4jStore.open(server.bolt_uri, options=options)
    try:
        await asyncio.to_thread(server.stop)
        write = asyncio.create_task(store.records.create(record("patient")))
        await asyncio.sleep(0.5)
        assert not write.done()
        await asyncio.to_thread(server.start)
        assert await asyncio.wait_for(write, 10)
        assert await store.records.get("patient") == record("patient")
    finally:
        await store.close()


async def wait_for(condition: object, timeout_s: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
