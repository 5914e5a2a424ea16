"""The SQLite store against a real database file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.adapters.store.sqlite import SqliteStore, sqlite_path
from orchestrator.domain.deliberation import Deliberation, Progress
from orchestrator.domain.errors import DependencyUnavailableError
from orchestrator.domain.model import AgentSpec, Council, DeliberationStatus, Proposal, Role, TaskSpec

pytestmark = pytest.mark.integration

AGENT = AgentSpec("agent-qa-001", Role.QA, "m", 0.5, 1000, 256)


def council(role: Role = Role.QA) -> Council:
    return Council(f"council-{role.value}", role, (AGENT,), 2, "m", True, {"k": "v"}, 1)


def record(task_id: str, created: int, status: DeliberationStatus = DeliberationStatus.PENDING) -> Deliberation:
    return Deliberation(TaskSpec(task_id, "test it", Role.QA, 1, 1, requirements=("a",)), (AGENT,), status, created)


async def test_councils_and_deliberations_survive_reopening_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sub/orch.db"
    store = await SqliteStore.open(url)
    assert await store.add(council())
    assert not await store.add(council())
    deliberations = store.records
    done = replace(
        record("t-1", 5),
        status=DeliberationStatus.COMPLETED,
        progress=Progress(proposals={"agent-qa-001": Proposal("agent-qa-001", Role.QA, "text", 1, ("r1",))}),
    )
    assert await deliberations.create(record("t-1", 5))
    assert not await deliberations.create(record("t-1", 5))
    await deliberations.save(done, checkpoint=True)
    await store.close()

    reopened = await SqliteStore.open(url)
    assert await reopened.all_councils() == [council()]
    again = reopened.records
    assert await again.get("t-1") == done
    assert await again.checkpoints("t-1") == [done]
    assert await again.get("missing") is None
    await reopened.close()


async def test_search_is_newest_first_and_filters_by_status_and_role() -> None:
    store = await SqliteStore.open("sqlite://:memory:")
    deliberations = store.records
    for i, status in enumerate(
        [DeliberationStatus.COMPLETED, DeliberationStatus.IN_PROGRESS, DeliberationStatus.PENDING]
    ):
        await deliberations.create(record(f"t-{i}", i, status))
    assert [d.task_id for d in await deliberations.search()] == ["t-2", "t-1", "t-0"]
    assert [d.task_id for d in await deliberations.search(status=DeliberationStatus.COMPLETED)] == ["t-0"]
    assert await deliberations.search(role=Role.DEV) == []
    assert [d.task_id for d in await deliberations.search(limit=1, offset=1)] == ["t-1"]
    assert [d.task_id for d in await deliberations.unfinished()] == ["t-1", "t-2"]
    assert (await deliberations.counts())[DeliberationStatus.PENDING] == 1
    assert await store.remove(Role.QA) is False
    await store.close()


def test_sqlite_urls_are_understood() -> None:
    assert sqlite_path("sqlite:////abs/x.db") == "/abs/x.db"
    assert sqlite_path("sqlite:///rel.db") == "rel.db"
    assert sqlite_path("sqlite://:memory:") == ":memory:"


async def test_a_database_that_refuses_writes_is_unavailable_and_keeps_nothing_half_written(tmp_path: Path) -> None:
    store = await SqliteStore.open(f"sqlite:///{tmp_path}/ro.db")
    try:
        assert await store.records.create(record("t-ro", 1))
        await store.connection.execute("PRAGMA query_only = ON")  # the file refuses writes from here on
        with pytest.raises(DependencyUnavailableError, match="sqlite: attempt to write a readonly database"):
            await store.records.save(replace(record("t-ro", 1), status=DeliberationStatus.IN_PROGRESS))
        with pytest.raises(DependencyUnavailableError):
            await store.add(council(Role.DEV))
        await store.connection.execute("PRAGMA query_only = OFF")  # back: the next write goes through whole
        assert await store.add(council(Role.DEV))
        stored = await store.records.get("t-ro")
        assert stored is not None and stored.status is DeliberationStatus.PENDING
    finally:
        await store.close()


async def test_a_database_that_cannot_serve_a_read_is_unavailable(tmp_path: Path) -> None:
    import sqlite3

    store = await SqliteStore.open(f"sqlite:///{tmp_path}/broken.db")
    try:
        with sqlite3.connect(tmp_path / "broken.db") as other:  # the file loses a table under the service
            other.execute("DROP TABLE dispatches")
        with pytest.raises(DependencyUnavailableError, match="sqlite: no such table: dispatches"):
            await store.records.get_dispatch("p-1")
        assert await store.records.get("nothing") is None  # the rest still serves
    finally:
        await store.close()
