"""Auto-dispatch: an approved plan becomes one deliberation per subtask, exactly once.

`dispatch` records the plan durably (with its `plan.dispatched` event) and returns; that is when the bus
message may be acked. A driver task per plan then starts each subtask's deliberation once its dependencies
have completed, handing it their winning proposals as context, and records every outcome. Deliberation ids
derive from (plan_id, subtask_id), so a redelivered event, a restart or a second replica finds the runs that
already exist instead of starting new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import structlog

from orchestrator.application.commands import CreateCouncil, Deliberate, Limits
from orchestrator.application.deliberations import Start
from orchestrator.application.events import plan_completed_event, plan_dispatched_event
from orchestrator.application.plan_checks import PlanChecks
from orchestrator.application.ports import Clock, CouncilStore, CrossChecker, DispatchStore
from orchestrator.application.runs.supervisor import RunSupervisor
from orchestrator.application.tracing import NoTracing, Tracing
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import (
    AlreadyExistsError,
    CapacityError,
    DependencyUnavailableError,
    OrchestratorError,
)
from orchestrator.domain.evidence import python_code, signatures
from orchestrator.domain.model import Council, DeliberationStatus, Role
from orchestrator.domain.plans import (
    ApprovedPlan,
    PlanDispatch,
    SubtaskRecord,
    SubtaskState,
    deliberation_id,
    derive_subtasks,
    plan_rubric,
)

log = structlog.get_logger(__name__)

CONTEXT_CHARS_PER_DEPENDENCY = 4_000
BLACK_BOX_ROLES = frozenset({Role.QA, Role.DEVOPS})
"""Roles that see a code dependency by what it was asked to do (its subtask's description and acceptance tests) and
its API (the winner's signatures), not its code: QA tests what the module is to do, DEVOPS runs it. Shown the DEV
winner's code, the embedded model's QA agents copied it instead of testing it."""


@dataclass
class PlanDispatcher:
    supervisor: RunSupervisor
    start: Start
    """The start-deliberation use case with its collaborators bound."""
    limits: Limits
    dispatches: DispatchStore
    councils: CouncilStore
    create_council: Callable[[CreateCouncil], Awaitable[Council]]
    """The create-council use case with its dependencies bound (awaitable)."""
    clock: Clock
    auto_create_councils: bool = True
    retry_s: float = 2.0
    on_events: Callable[[], None] | None = None
    tracing: Tracing = field(default_factory=NoTracing)
    """The plan event's trace (current while `dispatch` runs) goes on with `plan.dispatched`; the driver tasks
    created inside it carry it on to the deliberations they start (a task copies the context it is created in)."""
    cross_checker: CrossChecker | None = None
    """Runs the cross-checks once a plan's subtasks have ended (application/plan_checks.py); None: every
    cross-check says it did not run, and the plan ends `unchecked`."""
    _drivers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _checks: PlanChecks = field(init=False)

    def __post_init__(self) -> None:
        self._checks = PlanChecks(self.cross_checker, self.supervisor, self.start, self.limits)

    async def dispatch(self, plan: ApprovedPlan) -> bool:
        """Records the plan and starts driving it; False when it was dispatched before (nothing new happens)."""
        if await self.dispatches.get_dispatch(plan.plan_id) is not None:
            self._drive(plan.plan_id)  # make sure a driver runs (e.g. after a restart); idempotent
            return False
        subtasks = derive_subtasks(plan)  # InvalidArgumentError: the event can never be dispatched
        missing = await self._ensure_councils({s.role for s in subtasks})
        records = tuple(
            SubtaskRecord(
                s,
                deliberation_id(plan.plan_id, s.subtask_id),
                SubtaskState.FAILED if s.role in missing else SubtaskState.WAITING,
                error=f"no council for role {s.role.value} and auto-creation is off" if s.role in missing else "",
            )
            for s in subtasks
        )
        now = self.clock.now_ms()
        record = PlanDispatch(plan, records, now)
        created = await self.dispatches.create_dispatch(
            record, [plan_dispatched_event(record, now, self.tracing.carrier())]
        )
        if created and self.on_events:
            self.on_events()
        log.info("plan_dispatched", plan_id=plan.plan_id, subtasks=len(records), new=created)
        self._drive(plan.plan_id)
        return created

    async def resume(self) -> list[str]:
        """At start-up: every plan with unfinished subtasks gets its driver back."""
        plans = [d.plan.plan_id for d in await self.dispatches.unfinished_dispatches()]
        for plan_id in plans:
            self._drive(plan_id)
        return plans

    async def sweep(self, every_s: float) -> None:
        """For as long as the service runs: drives unfinished plans that no driver in this process follows,
        such as those of a replica that stopped. Driving a plan twice is harmless: every deliberation id is
        derived from (plan, subtask), so a subtask is never started twice."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.resume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("plan_sweep_failed", error=f"{type(exc).__name__}: {exc}")

    async def shutdown(self) -> None:
        drivers = list(self._drivers.values())
        for task in drivers:
            task.cancel()
        await asyncio.gather(*drivers, return_exceptions=True)

    async def wait_finished(self, plan_id: str) -> PlanDispatch | None:
        task = self._drivers.get(plan_id)
        if task is not None:
            await asyncio.shield(task)
        return await self.dispatches.get_dispatch(plan_id)

    async def _ensure_councils(self, roles: set[Role]) -> set[Role]:
        """Creates missing councils when allowed; returns the roles still without one."""
        missing = {r for r in roles if await self.councils.get(r) is None}
        if not self.auto_create_councils:
            return missing
        for role in sorted(missing):
            with contextlib.suppress(AlreadyExistsError):  # another request created it meanwhile
                await self.create_council(CreateCouncil(role=role.value))
            log.info("council_auto_created", role=role.value)
        return set()

    def _drive(self, plan_id: str) -> None:
        if plan_id in self._drivers and not self._drivers[plan_id].done():
            return
        self._drivers[plan_id] = asyncio.create_task(self._run_driver(plan_id), name=f"plan-{plan_id}")

    async def _run_driver(self, plan_id: str) -> None:
        bound = log.bind(plan_id=plan_id)
        try:
            while True:
                try:
                    if await self._step(plan_id):
                        bound.info("plan_finished")
                        return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # store or capacity trouble: the dispatch record is intact, try again
                    bound.warning("plan_driver_retry", error=str(exc))
                    await asyncio.sleep(self.retry_s)
        finally:
            if self._drivers.get(plan_id) is asyncio.current_task():
                del self._drivers[plan_id]

    async def _step(self, plan_id: str) -> bool:
        """Starts what can start, waits for one running subtask to end, records it. True when all are done."""
        dispatch = await self.dispatches.get_dispatch(plan_id)
        if dispatch is None or dispatch.finished:
            return True
        if dispatch.subtasks_done:
            return await self._check(dispatch)
        records = await self._start_ready(dispatch)
        if records != dispatch.subtasks:
            dispatch = replace(dispatch, subtasks=records)
            await self.dispatches.save_dispatch(dispatch)
        running = [r for r in records if r.state is SubtaskState.DISPATCHED]
        if not running:
            if dispatch.subtasks_done:
                return False  # the next step runs the cross-checks
            # Subtasks wait for a free slot (admission full) and none of this plan is running to wake us.
            await asyncio.sleep(self.retry_s)
            return False
        finished = await self._wait_any([r.deliberation_id for r in running])
        updated = tuple(
            _outcome(r, finished[r.deliberation_id]) if r.deliberation_id in finished else r for r in records
        )
        await self.dispatches.save_dispatch(replace(dispatch, subtasks=updated))
        return False

    async def _check(self, dispatch: PlanDispatch) -> bool:
        """Every subtask ended: one step of the cross-checks. True once the plan's outcome is recorded (with its
        `plan.completed` event); otherwise DEV's follow-up runs, and this waits for it."""
        checked = await self._checks.advance(dispatch)
        events = (
            [plan_completed_event(checked, self.clock.now_ms(), self.tracing.carrier())] if checked.finished else []
        )
        if checked != dispatch:
            await self.dispatches.save_dispatch(checked, events)
            if events and self.on_events:
                self.on_events()
        if checked.finished:
            return True
        if checked.follow_up is not None:
            await self._wait_any([checked.follow_up.deliberation_id])
        return False

    async def _start_ready(self, dispatch: PlanDispatch) -> tuple[SubtaskRecord, ...]:
        by_id = {r.subtask.subtask_id: r for r in dispatch.subtasks}
        records = []
        for r in dispatch.subtasks:
            deps = [by_id[d] for d in r.subtask.depends_on]
            if r.state is SubtaskState.WAITING and any(d.state is SubtaskState.FAILED for d in deps):
                failed = [d.subtask.subtask_id for d in deps if d.state is SubtaskState.FAILED]
                r = replace(r, state=SubtaskState.FAILED, error=f"dependency failed: {', '.join(failed)}")
            elif r.state is SubtaskState.WAITING and all(d.state is SubtaskState.COMPLETED for d in deps):
                r = await self._start(dispatch.plan, r, deps)
            records.append(r)
        return tuple(records)

    async def _start(self, plan: ApprovedPlan, record: SubtaskRecord, deps: list[SubtaskRecord]) -> SubtaskRecord:
        subtask = record.subtask
        limits = self.limits
        context = [await self._dependency_context(d, subtask.role) for d in deps]
        # Within the input limits whatever the plan: its own text first, dependency context cut to fit.
        description = "\n\n".join([subtask.title, subtask.description, *context]).strip()[: limits.max_task_chars]
        winners = {f"depends_on.{d.subtask.subtask_id}.winner": d.winner_id for d in deps}
        winners = dict(list(winners.items())[: max(0, limits.max_metadata_entries - 3)])
        cmd = Deliberate(
            task_description=description,
            role=subtask.role.value,
            task_id=record.deliberation_id,
            rubric=plan_rubric(plan),
            requirements=subtask.requirements or plan.acceptance_criteria,
            metadata={"story_id": plan.story_id, "plan_id": plan.plan_id, "subtask_id": subtask.subtask_id} | winners,
            source=f"plan:{plan.plan_id}/{subtask.subtask_id}",
            acceptance_tests=subtask.acceptance_tests,
            token_budget=subtask.token_budget,
        )
        try:
            await self.start(cmd)
        except (CapacityError, DependencyUnavailableError):
            # No slot, the store unreachable, or this replica shutting down: the subtask stays WAITING and the
            # driver (here, after a restart, or on another replica) tries again; none of these is the subtask's fault.
            return record
        except OrchestratorError as exc:
            return replace(record, state=SubtaskState.FAILED, error=str(exc))
        return replace(record, state=SubtaskState.DISPATCHED)

    async def _dependency_context(self, dep: SubtaskRecord, role: Role) -> str:
        done = await self.supervisor.find(dep.deliberation_id)
        winner = next((r for r in done.results if r.rank == 1), None) if done else None
        if winner is None:
            return ""
        where = f"Builds on the completed subtask {dep.subtask.subtask_id} ({dep.subtask.role.value})"
        api = signatures(python_code(winner.proposal.content)) if role in BLACK_BOX_ROLES else []
        if not api:
            text = winner.proposal.content[:CONTEXT_CHARS_PER_DEPENDENCY]
            return f"{where}; its winning proposal, by {winner.proposal.author_id}:\n{text}"
        listed = "\n".join(f"- `{s}`" for s in api)
        spec = f"{dep.subtask.title}:\n{dep.subtask.description.strip()}"
        if dep.subtask.acceptance_tests.strip():
            spec += f"\nIts acceptance tests:\n{dep.subtask.acceptance_tests.strip()}"
        spec = spec[:CONTEXT_CHARS_PER_DEPENDENCY]
        return f"{where}, {spec}\nIts winning code, by {winner.proposal.author_id}, defines:\n{listed}"

    async def _wait_any(self, ids: list[str]) -> dict[str, Deliberation]:
        waits = {asyncio.create_task(self.supervisor.wait(i)): i for i in ids}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        finished = {waits[t]: t.result() for t in done if not t.cancelled() and t.exception() is None}
        finished = {k: v for k, v in finished.items() if v.status.finished}
        if not finished:
            await asyncio.sleep(self.retry_s)  # not running here yet (e.g. resuming); look again shortly
        return finished


def _outcome(record: SubtaskRecord, d: Deliberation) -> SubtaskRecord:
    if d.status is DeliberationStatus.COMPLETED:
        return replace(record, state=SubtaskState.COMPLETED, winner_id=d.winner_id)
    return replace(record, state=SubtaskState.FAILED, error=f"{d.status.value}: {d.error_message}"[:500])
