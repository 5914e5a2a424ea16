"""Submit, watch, cancel, list and admission control, at the application level with in-memory fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from orchestrator.adapters.checks.checker import ThreadedChecker
from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.application.runs.admission import Admission
from orchestrator.application.service import Orchestrator
from orchestrator.compose import compose
from orchestrator.domain.errors import CapacityError, DependencyUnavailableError, InvalidArgumentError, NotFoundError
from orchestrator.domain.model import CheckSuite, DeliberationStatus
from orchestrator.testing.fakes import FakeGateway, fake_options, fake_ports

TASK = "Write a Python function that chunks a list into pages"


class SlowChecker(ThreadedChecker):
    """Checks that take a while, so a run spends time concluding after a cancel."""

    async def check(self, content: str, requirements: Sequence[str]) -> CheckSuite:
        await asyncio.sleep(0.2)
        return await super().check(content, requirements)


async def make_app(
    gateway: FakeGateway, admission: Admission | None = None, checker: ThreadedChecker | None = None
) -> Orchestrator:
    options = fake_options(admission=admission or Admission())
    app = compose(fake_ports(gateway, checker=checker), options).orchestrator
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    return app


async def test_watch_reports_every_stage_and_agent_then_the_final_state() -> None:
    app = await make_app(FakeGateway(latency_s=0.01))
    record, created = await app.submit(Deliberate(TASK, "DEV", task_id="w-1", rounds=1))
    assert created and record.status is DeliberationStatus.PENDING
    events = [(u.event, u.snapshot.stage, u.agent_id) async for u in app.watch("w-1")]
    assert events[0][0] == "current"
    stages = [stage for event, stage, _ in events if event == "stage_started"]
    assert stages == ["propose", "verify", "critique", "revise", "verify", "score"]
    assert sum(1 for event, _, _ in events if event == "agent_finished") == 2 * 4
    assert events[-1][0] == "finished"
    final = await app.get_result("w-1")
    assert final.status is DeliberationStatus.COMPLETED


async def test_a_watcher_of_a_finished_deliberation_gets_one_final_update() -> None:
    app = await make_app(FakeGateway())
    await app.deliberate(Deliberate(TASK, "DEV", task_id="w-2"))
    updates = [u async for u in app.watch("w-2")]
    assert len(updates) == 1 and updates[0].final
    with pytest.raises(NotFoundError):
        [u async for u in app.watch("missing")]


async def test_cancel_keeps_finished_proposals_and_a_second_cancel_is_a_no_op() -> None:
    gateway = FakeGateway(hang={"agent-dev-002"})
    app = await make_app(gateway)
    await app.submit(Deliberate(TASK, "DEV", task_id="c-1", rounds=1))
    await asyncio.sleep(0.2)
    record, cancelled = await app.cancel("c-1")
    assert cancelled and record.status is DeliberationStatus.CANCELLED
    assert [r.proposal.author_id for r in record.results] == ["agent-dev-001"]
    again, cancelled_again = await app.cancel("c-1")
    assert not cancelled_again and again.status is DeliberationStatus.CANCELLED
    with pytest.raises(NotFoundError):
        await app.cancel("nope")


async def test_beyond_running_and_queued_limits_new_work_is_refused() -> None:
    app = await make_app(FakeGateway(latency_s=0.3), Admission(max_running=1, max_queued=1))
    await app.submit(Deliberate(TASK, "DEV", task_id="q-1", rounds=0))
    await app.submit(Deliberate(TASK, "DEV", task_id="q-2", rounds=0))
    await asyncio.sleep(0.05)
    assert app.supervisor.queue_depth == 1
    assert (await app.get_result("q-2")).status is DeliberationStatus.PENDING
    with pytest.raises(CapacityError, match="1 queued"):
        await app.submit(Deliberate(TASK, "DEV", task_id="q-3"))
    # an existing task_id is still answered: idempotency comes before admission
    assert (await app.submit(Deliberate(TASK, "DEV", task_id="q-1")))[1] is False
    assert (await app.supervisor.wait("q-2")).status is DeliberationStatus.COMPLETED


async def test_a_slow_deliberation_does_not_delay_another() -> None:
    gateway = FakeGateway(hang={"agent-qa-001"})
    app = await make_app(gateway)
    await app.create_council(CreateCouncil(role="QA", num_agents=1))
    await app.submit(Deliberate(TASK, "QA", task_id="slow"))
    fast = await asyncio.wait_for(app.deliberate(Deliberate(TASK, "DEV", task_id="fast")), timeout=10)
    assert fast.status is DeliberationStatus.COMPLETED
    assert (await app.get_result("slow")).status is DeliberationStatus.IN_PROGRESS
    await app.cancel("slow")


async def test_listing_is_newest_first_filtered_and_paged() -> None:
    app = await make_app(FakeGateway())
    for i in range(5):
        await app.deliberate(Deliberate(TASK, "DEV", task_id=f"l-{i}", rounds=0))
        await asyncio.sleep(0.002)
    page, token = await app.list_deliberations(status=None, role="DEV", page_size=2, page_token="")
    assert [d.task_id for d in page] == ["l-4", "l-3"] and token == "2"
    page, token = await app.list_deliberations(status=None, role="", page_size=2, page_token="4")
    assert [d.task_id for d in page] == ["l-0"] and token == ""
    failed, _ = await app.list_deliberations(status=DeliberationStatus.FAILED, role="", page_size=0, page_token="")
    assert failed == []
    with pytest.raises(InvalidArgumentError):
        await app.list_deliberations(status=None, role="", page_size=10, page_token="abc")


async def test_stream_cancels_the_run_it_started_when_the_caller_leaves() -> None:
    app = await make_app(FakeGateway(latency_s=1.0))
    stream = app.stream(Deliberate(TASK, "DEV", task_id="s-1"))
    first = await anext(stream)
    assert first.event == "current"
    await stream.aclose()
    assert (await app.supervisor.wait("s-1")).status is DeliberationStatus.CANCELLED


async def test_a_second_cancel_while_the_first_is_concluding_still_ends_cancelled() -> None:
    gateway = FakeGateway(hang={"agent-dev-002"})
    app = await make_app(gateway, checker=SlowChecker())
    await app.submit(Deliberate(TASK, "DEV", task_id="c-2", rounds=1))
    await asyncio.sleep(0.2)
    first = asyncio.create_task(app.cancel("c-2"))
    later = []
    for _ in range(5):  # more cancels arrive while the first one's conclusion (checks, final write) runs
        await asyncio.sleep(0.05)
        later.append(asyncio.create_task(app.cancel("c-2")))
    results = await asyncio.wait_for(asyncio.gather(first, *later), timeout=10)
    assert {record.status for record, _ in results} == {DeliberationStatus.CANCELLED}
    stored = await app.supervisor.records.get("c-2")
    assert stored is not None and stored.status is DeliberationStatus.CANCELLED
    assert not app.supervisor.running()
    updates = [u async for u in app.watch("c-2")]  # a watcher sees the end instead of waiting forever
    assert len(updates) == 1 and updates[0].final


async def test_no_new_work_is_taken_while_shutting_down() -> None:
    app = await make_app(FakeGateway(latency_s=0.05))
    await app.deliberate(Deliberate(TASK, "DEV", task_id="s-1", rounds=0))
    await app.supervisor.shutdown(0.1)
    with pytest.raises(DependencyUnavailableError, match="shutting down"):
        await app.submit(Deliberate(TASK, "DEV", task_id="s-2"))
    # an existing deliberation is still answered
    assert (await app.submit(Deliberate(TASK, "DEV", task_id="s-1")))[0].status is DeliberationStatus.COMPLETED
