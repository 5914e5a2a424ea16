"""Several replicas on one store: a run goes on in exactly one of them, the others follow it through the store,
a cancel reaches its owner, and the runs of a replica that stopped are taken over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from orchestrator.adapters.clock import SystemClock
from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.application.service import Orchestrator
from orchestrator.compose import compose
from orchestrator.domain.deliberation import Deliberation, default_quorum
from orchestrator.domain.model import DeliberationStatus, Role, TaskSpec
from orchestrator.testing.fakes import (
    FakeGateway,
    InMemoryCouncilStore,
    InMemoryDeliberationStore,
    InMemoryLeases,
    fake_options,
    fake_ports,
)

TASK = "Write a Python function that chunks a list into pages"
now_ms = SystemClock().now_ms


@dataclass
class Shared:
    councils: InMemoryCouncilStore
    store: InMemoryDeliberationStore
    leases: InMemoryLeases


def replica(shared: Shared, name: str, gateway: FakeGateway) -> Orchestrator:
    ports = fake_ports(gateway, councils=shared.councils, records=shared.store, leases=shared.leases)
    options = fake_options(owner=name, lease_ttl_s=0.6, renew_every_s=0.05, poll_s=0.05)
    return compose(ports, options).orchestrator


@pytest.fixture
async def shared() -> AsyncIterator[Shared]:
    s = Shared(InMemoryCouncilStore(), InMemoryDeliberationStore(), InMemoryLeases())
    yield s


async def running(*apps: Orchestrator) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(a.supervisor.maintain()) for a in apps]


async def stop(tasks: list[asyncio.Task[None]], *apps: Orchestrator) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for a in apps:
        await a.supervisor.shutdown(0)


async def test_a_run_goes_on_in_one_replica_and_the_other_follows_it(shared: Shared) -> None:
    a_gateway, b_gateway = FakeGateway(latency_s=0.1), FakeGateway(latency_s=0.1)
    a, b = replica(shared, "replica-a", a_gateway), replica(shared, "replica-b", b_gateway)
    tasks = await running(a, b)
    try:
        await a.create_council(CreateCouncil(role="DEV", num_agents=2))
        _, created = await a.submit(Deliberate(TASK, "DEV", task_id="r-1", rounds=1))
        assert created
        again, created_again = await b.submit(Deliberate(TASK, "DEV", task_id="r-1", rounds=1))
        assert not created_again and again.task_id == "r-1"
        assert await b.supervisor.resume_unfinished() == []  # replica-a holds it
        watched = [u async for u in b.watch("r-1")]
        final = await b.supervisor.wait("r-1")
        assert final.status is DeliberationStatus.COMPLETED
        assert watched[-1].final and watched[-1].snapshot.status is DeliberationStatus.COMPLETED
        assert len(watched) >= 3  # current, stage progress read from the store, the end
        assert not b_gateway.calls and len(a_gateway.calls) == 2 * 4
        await a.supervisor.wait("r-1")  # the owner's run has ended too (its record was saved first)
        assert "r-1" not in shared.leases.leases  # released when the run ended
    finally:
        await stop(tasks, a, b)


async def test_a_cancel_asked_on_another_replica_reaches_the_owner(shared: Shared) -> None:
    a = replica(shared, "replica-a", FakeGateway(hang={"agent-dev-002"}))
    b = replica(shared, "replica-b", FakeGateway())
    tasks = await running(a, b)
    try:
        await a.create_council(CreateCouncil(role="DEV", num_agents=2))
        await a.submit(Deliberate(TASK, "DEV", task_id="r-2", rounds=1))
        await asyncio.sleep(0.2)
        record, cancelled = await asyncio.wait_for(b.cancel("r-2"), timeout=30)
        assert cancelled and record.status is DeliberationStatus.CANCELLED
        assert [r.proposal.author_id for r in record.results] == ["agent-dev-001"]
        stored = await shared.store.get("r-2")
        assert stored is not None and stored.status is DeliberationStatus.CANCELLED
    finally:
        await stop(tasks, a, b)


def orphan(task_id: str, shared: Shared, owner: str) -> Deliberation:
    """A run left IN_PROGRESS by a replica that died: its lease is about to run out."""
    council = next(iter(shared.councils.councils.values()))
    task = TaskSpec(task_id, TASK, Role.DEV, 1, 2, timeout_s=60)
    record = Deliberation(
        task, council.agents, DeliberationStatus.IN_PROGRESS, now_ms(), quorum=default_quorum(2), stage="propose"
    )
    shared.store.records[task_id] = record
    shared.leases.leases[task_id] = (owner, now_ms() + 300, False)
    return record


async def test_the_runs_of_a_replica_that_stopped_are_taken_over(shared: Shared) -> None:
    b = replica(shared, "replica-b", FakeGateway())
    await b.create_council(CreateCouncil(role="DEV", num_agents=2))
    orphan("r-3", shared, "replica-dead")
    assert await b.supervisor.resume_unfinished() == []  # its lease is still live
    tasks = await running(b)
    try:
        final = await asyncio.wait_for(b.supervisor.wait("r-3"), timeout=10)
        assert final.status is DeliberationStatus.COMPLETED and final.winner_id
    finally:
        await stop(tasks, b)


async def test_cancelling_a_run_whose_owner_is_gone_ends_it_here(shared: Shared) -> None:
    b = replica(shared, "replica-b", FakeGateway())
    await b.create_council(CreateCouncil(role="DEV", num_agents=2))
    orphan("r-4", shared, "replica-dead")
    shared.leases.leases["r-4"] = ("replica-dead", now_ms() - 1, False)  # expired
    record, cancelled = await asyncio.wait_for(b.cancel("r-4"), timeout=30)
    assert cancelled and record.status is DeliberationStatus.CANCELLED
    await b.supervisor.shutdown(0)


async def test_a_lost_lease_stops_the_run_without_writing_over_the_new_owner(shared: Shared) -> None:
    a = replica(shared, "replica-a", FakeGateway(hang={"agent-dev-001", "agent-dev-002"}))
    tasks = await running(a)
    try:
        await a.create_council(CreateCouncil(role="DEV", num_agents=2))
        await a.submit(Deliberate(TASK, "DEV", task_id="r-5", rounds=1))
        await asyncio.sleep(0.2)
        shared.leases.leases["r-5"] = ("replica-b", now_ms() + 60_000, False)  # taken over meanwhile
        for _ in range(100):
            if "r-5" not in a.supervisor.registry:
                break
            await asyncio.sleep(0.05)
        assert "r-5" not in a.supervisor.registry
        stored = await shared.store.get("r-5")
        assert stored is not None and stored.status is DeliberationStatus.IN_PROGRESS  # left to its new owner
    finally:
        await stop(tasks, a)


async def test_a_refused_start_leaves_no_lease_that_would_block_another_replica(shared: Shared) -> None:
    from orchestrator.domain.errors import CouncilMissingError

    a = replica(shared, "replica-a", FakeGateway())
    b = replica(shared, "replica-b", FakeGateway())
    with pytest.raises(CouncilMissingError):
        await a.submit(Deliberate(TASK, "QA", task_id="r-6"))
    assert "r-6" not in shared.leases.leases
    await b.create_council(CreateCouncil(role="QA", num_agents=2))
    _, created = await b.submit(Deliberate(TASK, "QA", task_id="r-6", rounds=0))
    assert created and (await b.supervisor.wait("r-6")).status is DeliberationStatus.COMPLETED
    await stop([], a, b)
