"""Admission limits under parallel requests, status that tells the truth, and reuse of a task_id (issue 13)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.application.ports import OutboundEvent
from orchestrator.application.runs.admission import Admission
from orchestrator.application.service import Orchestrator
from orchestrator.compose import compose
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import (
    CapacityError,
    CouncilMissingError,
    DependencyUnavailableError,
    TaskIdConflictError,
)
from orchestrator.testing.fakes import FakeGateway, InMemoryDeliberationStore, fake_options, fake_ports

TASK = "Write a Python function that merges two sorted lists"


@dataclass
class YieldingStore(InMemoryDeliberationStore):
    """The in-memory store, but every call gives the event loop a turn, as a real store's I/O does."""

    async def get(self, task_id: str) -> Deliberation | None:
        await asyncio.sleep(0)
        return await super().get(task_id)

    async def create(self, deliberation: Deliberation) -> bool:
        await asyncio.sleep(0)
        return await super().create(deliberation)

    async def save(
        self, deliberation: Deliberation, *, checkpoint: bool = False, events: Sequence[OutboundEvent] = ()
    ) -> None:
        await asyncio.sleep(0)
        await super().save(deliberation, checkpoint=checkpoint, events=events)


def build(admission: Admission, gateway: FakeGateway | None = None) -> Orchestrator:
    ports = fake_ports(gateway, records=YieldingStore())
    return compose(ports, fake_options(admission=admission)).orchestrator


async def test_parallel_submits_admit_no_more_than_the_running_and_queued_limits() -> None:
    app = build(Admission(max_running=2, max_queued=3), FakeGateway(hang={"agent-dev-001"}))
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    outcomes = await asyncio.gather(
        *(app.submit(Deliberate(TASK, "DEV", task_id=f"p-{i}")) for i in range(20)), return_exceptions=True
    )
    accepted = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(accepted) == 5
    assert len(refused) == 15 and all(isinstance(e, CapacityError) for e in refused)
    await app.supervisor.shutdown(0)


async def test_a_refused_or_failed_submit_gives_its_place_back() -> None:
    app = build(Admission(max_running=1, max_queued=0), FakeGateway(hang={"agent-dev-001"}))
    with pytest.raises(CouncilMissingError):  # refused after the place was taken
        await app.submit(Deliberate(TASK, "DEV", task_id="early"))
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    await app.submit(Deliberate(TASK, "DEV", task_id="only"))
    with pytest.raises(CapacityError):
        await app.submit(Deliberate(TASK, "DEV", task_id="extra"))
    await app.cancel("only")
    await app.submit(Deliberate(TASK, "DEV", task_id="after"))  # the cancelled run's place is free again
    await app.supervisor.shutdown(0)


async def test_status_never_counts_more_running_than_the_limit() -> None:
    app = build(Admission(max_running=2, max_queued=10), FakeGateway(hang={"agent-dev-001"}))
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    for i in range(6):
        await app.submit(Deliberate(TASK, "DEV", task_id=f"s-{i}"))
        assert (await app.status()).running <= 2
    await asyncio.sleep(0.05)
    report = await app.status()
    assert (report.running, report.queued) == (2, 4)
    await app.supervisor.shutdown(0)


async def test_status_is_not_serving_once_shutdown_begins() -> None:
    app = build(Admission(), FakeGateway(hang={"agent-dev-001"}))
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    await app.submit(Deliberate(TASK, "DEV", task_id="in-flight"))
    assert (await app.status()).serving
    shutdown = asyncio.create_task(app.supervisor.shutdown(1.0))
    await asyncio.sleep(0.05)
    assert not (await app.status()).serving
    with pytest.raises(DependencyUnavailableError):
        await app.submit(Deliberate(TASK, "DEV", task_id="late"))
    await shutdown


async def test_status_reports_whether_the_llm_endpoint_answers() -> None:
    app = build(Admission())
    assert (await app.status()).llm_reachable is None  # no probe yet
    up = True

    async def probe() -> None:
        if not up:
            raise DependencyUnavailableError("LLM endpoint", "connection refused")

    app.llm_probe = probe
    assert await app.check_llm() is True and (await app.status()).llm_reachable is True
    up = False
    assert await app.check_llm() is False and (await app.status()).llm_reachable is False


async def test_a_probe_that_hangs_counts_as_unreachable() -> None:
    app = build(Admission())

    async def hangs() -> None:
        await asyncio.Event().wait()

    app.llm_probe = hangs
    assert await app.check_llm(timeout_s=0.05) is False


async def test_an_identical_request_for_an_existing_task_id_returns_that_deliberation() -> None:
    app = build(Admission())
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    request = Deliberate(TASK, "DEV", task_id="same-1", rounds=2, requirements=("typed",), metadata={"k": "v"})
    first, created = await app.submit(request)
    again, created_again = await app.submit(request)
    assert created and not created_again and again.task_id == first.task_id
    defaults = Deliberate(TASK, "dev", task_id="same-1", requirements=("typed",), metadata={"k": "v"})
    assert (await app.submit(defaults))[0].task_id == "same-1"  # rounds 0 = the default: not a difference
    await app.supervisor.shutdown(0)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"role": "QA"}, "role QA (existing: DEV)"),
        ({"task_description": "Something else entirely"}, "task_description"),
        ({"rounds": 3}, "rounds 3 (existing: 2)"),
        ({"num_agents": 1}, "num_agents 1 (existing: 2)"),
        ({"requirements": ("other",)}, "constraints.requirements"),
        ({"rubric": "strict"}, "constraints.rubric"),
    ],
)
async def test_reusing_a_task_id_for_other_work_is_refused_naming_the_difference(
    change: dict[str, object], named: str
) -> None:
    app = build(Admission())
    for role in ("DEV", "QA"):
        await app.create_council(CreateCouncil(role=role, num_agents=2))
    base = {"task_description": TASK, "role": "DEV", "task_id": "reused-1", "rounds": 2}
    await app.submit(Deliberate(**base))  # type: ignore[arg-type]
    with pytest.raises(TaskIdConflictError) as info:
        await app.submit(Deliberate(**{**base, **change}))  # type: ignore[arg-type]
    assert named in info.value.differences and named in str(info.value)
    assert (await app.get_result("reused-1")).task.role.value == "DEV"  # the first one is untouched
    await app.supervisor.shutdown(0)


async def test_a_conflict_names_long_client_text_without_repeating_it() -> None:
    app = build(Admission())
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    await app.submit(Deliberate(TASK, "DEV", task_id="long-1"))
    with pytest.raises(TaskIdConflictError) as info:
        await app.submit(Deliberate("x" * 20_000, "DEV", task_id="long-1", rubric="y" * 5_000))
    assert len(str(info.value)) < 300 and "xxxx" not in str(info.value)
    await app.supervisor.shutdown(0)
