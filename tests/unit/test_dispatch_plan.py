"""dispatch_plan with in-memory fakes: councils ensured, dependencies honoured, nothing dispatched twice."""

from __future__ import annotations

import asyncio

from orchestrator.adapters.store.codec import dispatch_from_json, dispatch_to_json
from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.application.protocol.engine import Listener
from orchestrator.application.runs.admission import Admission
from orchestrator.application.service import Orchestrator
from orchestrator.compose import compose
from orchestrator.domain.budget import StopCode
from orchestrator.domain.events import RunEvent, RunFinished
from orchestrator.domain.model import DeliberationStatus, Role
from orchestrator.domain.plans import (
    ApprovedPlan,
    PlanDispatch,
    PlanSubtask,
    SubtaskRecord,
    SubtaskState,
    deliberation_id,
)
from orchestrator.testing.fakes import (
    FakeGateway,
    InMemoryCouncilStore,
    InMemoryDeliberationStore,
    fake_options,
    fake_ports,
)

PLAN = ApprovedPlan(
    plan_id="plan-7",
    story_id="story-7",
    approved_by="po",
    roles=(),
    timestamp="t",
    title="Password reset",
    acceptance_criteria=("tokens expire after 30 minutes",),
    subtasks=(
        PlanSubtask("dev", Role.DEV, "Token service", "Write the token service", ("hash tokens",)),
        PlanSubtask("qa", Role.QA, "Tests", "Test the token service", ("test expiry",), depends_on=("dev",)),
        PlanSubtask("ops", Role.DEVOPS, "Deploy", "Deploy it"),
    ),
)


def make(
    gateway: FakeGateway | None = None,
    auto_create: bool = True,
    admission: Admission | None = None,
    *,
    councils: InMemoryCouncilStore | None = None,
    store: InMemoryDeliberationStore | None = None,
    listeners: tuple[Listener, ...] = (),
) -> tuple[Orchestrator, InMemoryDeliberationStore]:
    store = store if store is not None else InMemoryDeliberationStore()
    options = fake_options(
        num_agents=2,
        admission=admission or Admission(),
        outbound_events=True,
        plans=True,
        auto_create_councils=auto_create,
        dispatch_retry_s=0.05,
        listeners=listeners,
    )
    return compose(fake_ports(gateway, councils=councils, records=store), options).orchestrator, store


async def test_a_plan_becomes_one_deliberation_per_subtask_in_dependency_order() -> None:
    app, store = make()
    assert app.dispatcher is not None
    assert await app.dispatcher.dispatch(PLAN)
    assert {c.role for c in await app.council_store.all_councils()} == {Role.DEV, Role.QA, Role.DEVOPS}
    done = await app.dispatcher.wait_finished("plan-7")
    assert done is not None and done.finished
    assert [s.state for s in done.subtasks] == [SubtaskState.COMPLETED] * 3
    dev = store.records[deliberation_id("plan-7", "dev")]
    qa = store.records[deliberation_id("plan-7", "qa")]
    assert qa.started_at_ms >= dev.finished_at_ms
    assert dev.winner_id in qa.task.description and "Builds on the completed subtask dev" in qa.task.description
    assert qa.task.metadata["depends_on.dev.winner"] == dev.winner_id
    assert "tokens expire after 30 minutes" in qa.task.rubric and qa.task.requirements == ("test expiry",)
    subjects = [e.subject for e in store.outbox.values()]
    assert subjects.count("orchestration.plan.dispatched") == 1
    assert subjects.count("orchestration.deliberation.completed") == 3


async def test_dispatching_the_same_plan_again_starts_nothing_new() -> None:
    gateway = FakeGateway()
    app, store = make(gateway)
    assert app.dispatcher is not None
    await app.dispatcher.dispatch(PLAN)
    await app.dispatcher.wait_finished("plan-7")
    calls, records, events = len(gateway.calls), dict(store.records), set(store.outbox)
    assert not await app.dispatcher.dispatch(PLAN)
    await app.dispatcher.wait_finished("plan-7")
    assert len(gateway.calls) == calls and store.records == records and set(store.outbox) == events


async def test_without_auto_creation_a_missing_council_fails_its_subtask_and_its_dependents() -> None:
    app, store = make(auto_create=False)
    assert app.dispatcher is not None
    await app.create_council(CreateCouncil(role="QA"))
    await app.dispatcher.dispatch(PLAN)
    done = await app.dispatcher.wait_finished("plan-7")
    assert done is not None
    states = {s.subtask.subtask_id: (s.state, s.error) for s in done.subtasks}
    assert states["dev"] == (SubtaskState.FAILED, "no council for role DEV and auto-creation is off")
    assert states["qa"] == (SubtaskState.FAILED, "dependency failed: dev")
    assert states["ops"] == (SubtaskState.FAILED, "no council for role DEVOPS and auto-creation is off")
    assert not store.records


async def test_a_failed_dependency_fails_the_dependent_without_running_it() -> None:
    app, store = make(FakeGateway(failing={"agent-dev-001", "agent-dev-002"}))
    assert app.dispatcher is not None
    await app.dispatcher.dispatch(PLAN)
    done = await app.dispatcher.wait_finished("plan-7")
    assert done is not None
    assert store.records[deliberation_id("plan-7", "dev")].status is DeliberationStatus.FAILED
    assert deliberation_id("plan-7", "qa") not in store.records
    assert [s.state for s in done.subtasks] == [SubtaskState.FAILED, SubtaskState.FAILED, SubtaskState.COMPLETED]
    failed = [e for e in store.outbox.values() if e.subject == "orchestration.deliberation.failed"]
    assert len(failed) == 1


async def test_a_restarted_dispatcher_finishes_the_plan_without_repeating_work() -> None:
    gateway = FakeGateway(latency_s=0.01)
    dev = deliberation_id("plan-7", "dev")
    dev_done = asyncio.Event()

    def on_dev_finished(event: RunEvent) -> None:
        if isinstance(event, RunFinished) and event.task_id == dev:
            dev_done.set()

    councils = InMemoryCouncilStore()
    app, store = make(gateway, councils=councils, listeners=(on_dev_finished,))
    assert app.dispatcher is not None
    await app.dispatcher.dispatch(PLAN)
    await asyncio.wait_for(dev_done.wait(), 10)
    await app.dispatcher.shutdown()  # the process "dies" while QA may be waiting or running
    await app.supervisor.shutdown(0)
    second, _ = make(gateway, councils=councils, store=store)
    assert second.dispatcher is not None
    await second.restore()
    done = await second.dispatcher.wait_finished("plan-7")
    assert done is not None and [s.state for s in done.subtasks] == [SubtaskState.COMPLETED] * 3
    completed = [e for e in store.outbox.values() if e.subject == "orchestration.deliberation.completed"]
    assert len(completed) == 3
    # DEV had finished before the "crash": it was not run again (interrupted stages of others may be)
    assert len([c for c in gateway.calls if c[0].startswith("agent-dev-") and c[1] == "propose"]) == 2


async def test_a_plan_waits_for_a_free_slot_without_spinning() -> None:
    gateway = FakeGateway(latency_s=0.1)
    app, store = make(gateway, admission=Admission(max_running=1, max_queued=0))
    assert app.dispatcher is not None
    await app.create_council(CreateCouncil(role="ARCHITECT", num_agents=2))
    await app.submit(Deliberate("Design the token storage", "ARCHITECT", task_id="blocker", rounds=2))
    reads = 0
    get_dispatch = store.get_dispatch

    async def counting(plan_id: str):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        return await get_dispatch(plan_id)

    store.get_dispatch = counting  # type: ignore[method-assign]
    await app.dispatcher.dispatch(PLAN)
    await asyncio.sleep(0.3)  # the slot is taken: the plan's subtasks wait, polling every retry_s (0.05 s)
    assert reads <= 20
    done = await asyncio.wait_for(app.dispatcher.wait_finished("plan-7"), timeout=30)
    assert done is not None and [s.state for s in done.subtasks] == [SubtaskState.COMPLETED] * 3
    assert "plan-7" not in app.dispatcher._drivers  # a finished plan's driver is not kept


async def test_dependency_context_is_cut_to_the_input_limits() -> None:
    long = PlanSubtask("qa", Role.QA, "Tests", "x" * 31_990, depends_on=("dev",))
    plan = ApprovedPlan(**{**PLAN.__dict__, "plan_id": "plan-long", "subtasks": (PLAN.subtasks[0], long)})
    app, store = make()
    assert app.dispatcher is not None
    await app.dispatcher.dispatch(plan)
    done = await app.dispatcher.wait_finished("plan-long")
    assert done is not None and [s.state for s in done.subtasks] == [SubtaskState.COMPLETED] * 2
    qa = store.records[deliberation_id("plan-long", "qa")]
    assert len(qa.task.description) == app.limits.max_task_chars


async def test_a_replica_shutting_down_leaves_subtasks_waiting_for_the_next_one() -> None:
    app, store = make()
    assert app.dispatcher is not None
    await app.supervisor.shutdown(0)  # SIGTERM arrived: no new deliberations here
    await app.dispatcher.dispatch(PLAN)
    await asyncio.sleep(0.3)
    await app.dispatcher.shutdown()
    waiting = await store.get_dispatch("plan-7")
    assert waiting is not None and {s.state for s in waiting.subtasks} == {SubtaskState.WAITING}
    # the next replica (or this one restarted) on the same store carries the plan through
    councils = app.council_store
    assert isinstance(councils, InMemoryCouncilStore)
    nxt, _ = make(FakeGateway(), councils=councils, store=store)
    assert nxt.dispatcher is not None
    await nxt.restore()
    done = await asyncio.wait_for(nxt.dispatcher.wait_finished("plan-7"), timeout=30)
    assert done is not None and [s.state for s in done.subtasks] == [SubtaskState.COMPLETED] * 3


TESTS = "from solution import reset_token\n\n\ndef test_token_is_long():\n    assert len(reset_token()) >= 32\n"


async def test_a_subtask_s_acceptance_tests_reach_its_deliberation_and_the_agents() -> None:
    dev = PlanSubtask("dev", Role.DEV, "Token service", "Write the token service", acceptance_tests=TESTS)
    plan = ApprovedPlan(**{**PLAN.__dict__, "plan_id": "plan-tests", "subtasks": (dev, PLAN.subtasks[2])})
    gateway = FakeGateway()
    app, store = make(gateway)
    assert app.dispatcher is not None
    await app.dispatcher.dispatch(plan)
    done = await app.dispatcher.wait_finished("plan-tests")
    assert done is not None and [s.state for s in done.subtasks] == [SubtaskState.COMPLETED] * 2
    assert store.records[deliberation_id("plan-tests", "dev")].task.acceptance_tests == TESTS
    assert store.records[deliberation_id("plan-tests", "ops")].task.acceptance_tests == ""
    proposes = [p for agent, stage, _, p in gateway.prompts if agent.startswith("agent-dev-") and stage == "propose"]
    assert proposes and all("assert len(reset_token()) >= 32" in p for p in proposes)


def test_a_plan_stored_before_subtasks_had_acceptance_tests_still_loads() -> None:
    record = PlanDispatch(PLAN, (SubtaskRecord(PLAN.subtasks[0], deliberation_id("plan-7", "dev")),), 1)
    stored = dispatch_to_json(record).replace(',"acceptance_tests":""', "")
    assert "acceptance_tests" not in stored
    assert dispatch_from_json(stored) == record


async def test_a_subtask_s_token_budget_reaches_its_deliberation_and_stops_it() -> None:
    dev = PlanSubtask("dev", Role.DEV, "Token service", "Write the token service", token_budget=1)
    plan = ApprovedPlan(**{**PLAN.__dict__, "plan_id": "plan-budget", "subtasks": (dev, PLAN.subtasks[2])})
    gateway = FakeGateway()
    app, store = make(gateway)
    assert app.dispatcher is not None
    await app.dispatcher.dispatch(plan)
    done = await app.dispatcher.wait_finished("plan-budget")
    assert done is not None and [s.state for s in done.subtasks] == [SubtaskState.COMPLETED] * 2
    budgeted = store.records[deliberation_id("plan-budget", "dev")]
    assert budgeted.task.token_budget == 1 and budgeted.progress.stop_code is StopCode.TOKEN_BUDGET
    assert store.records[deliberation_id("plan-budget", "ops")].task.token_budget is None
    assert {stage for agent, stage, _ in gateway.calls if agent.startswith("agent-dev-")} == {"propose"}


async def test_qa_sees_a_code_dependency_by_its_api_alone() -> None:
    """Shown the DEV winner's code, the embedded model's QA agents copied it instead of testing it: QA gets what DEV
    was asked to do and the signatures the winning code defines (and who wrote it), not its body."""
    dev_code = "```python\ndef word_count(text: str) -> int:\n    return len(text.split())  # BODY-MARKER\n```"
    gateway = FakeGateway(scripted={f"agent-dev-00{i}": dev_code for i in range(1, 4)})
    app, store = make(gateway)
    assert app.dispatcher is not None
    await app.dispatcher.dispatch(PLAN)
    await app.dispatcher.wait_finished("plan-7")
    dev = store.records[deliberation_id("plan-7", "dev")]
    described = store.records[deliberation_id("plan-7", "qa")].task.description
    assert f"Its winning code, by {dev.winner_id}, defines:\n- `word_count(text: str)`" in described
    assert "BODY-MARKER" not in described
    assert "Token service:\nWrite the token service" in described  # what DEV was asked to do
