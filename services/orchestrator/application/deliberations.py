"""Deliberation use cases: start (idempotent on task_id), deliberate (start and wait), get, cancel, watch, stream
and list. Each takes one command and, by keyword, exactly the collaborators it uses; the composition root binds
them (compose.py). The runs themselves belong to the supervisor."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from orchestrator.application.commands import (
    CancelDeliberation,
    Deliberate,
    GetDeliberation,
    ListDeliberations,
    RunDefaults,
    WatchDeliberation,
)
from orchestrator.application.councils import council_samples
from orchestrator.application.ports import Clock, CouncilStore, DeliberationStore
from orchestrator.application.requests import same_request, validate
from orchestrator.application.runs.admission import AdmissionControl
from orchestrator.application.runs.leasing import Leasing
from orchestrator.application.runs.supervisor import RunSupervisor
from orchestrator.application.runs.updates import Update
from orchestrator.application.tracing import Tracing
from orchestrator.domain.budget import resolve_budget
from orchestrator.domain.deliberation import Deliberation, default_quorum
from orchestrator.domain.errors import CouncilMissingError, DependencyUnavailableError, InvalidArgumentError
from orchestrator.domain.model import Council, DeliberationStatus, TaskSpec
from orchestrator.domain.validation import parse_page_token, parse_role

Start = Callable[[Deliberate], Awaitable[tuple[Deliberation, bool]]]
"""`start_deliberation` with its collaborators bound: (record, created)."""

MAX_PAGE_SIZE = 500


async def start_deliberation(
    cmd: Deliberate,
    *,
    councils: CouncilStore,
    supervisor: RunSupervisor,
    admission: AdmissionControl,
    leasing: Leasing,
    records: DeliberationStore,
    clock: Clock,
    tracing: Tracing,
    defaults: RunDefaults,
) -> tuple[Deliberation, bool]:
    """Creates and starts a deliberation; an existing task_id returns that one (created=False) when the
    request is the same, and raises TaskIdConflictError when it asks for something else."""
    validate(cmd, defaults.limits)
    role = parse_role(cmd.role)
    if cmd.task_id and (existing := await supervisor.find(cmd.task_id)) is not None:
        return same_request(existing, cmd, role), False
    admission.admit(supervisor.running_count)
    try:
        council = await councils.get(role)
        if council is None:
            raise CouncilMissingError(role.value)
        record = new_record(cmd, council, defaults, created_at_ms=clock.now_ms(), trace=tracing.carrier())
        task_id = record.task_id
        # The lease is taken last, just before the record exists, so no refusal above can leave one behind.
        if not await leasing.acquire(task_id):
            return same_request(await _created_elsewhere(task_id, supervisor), cmd, role), False
        if not await records.create(record):  # lost a race with another request for the same id
            await leasing.release(task_id)
            return same_request(await supervisor.get(task_id), cmd, role), False
        if admission.shutting_down:  # began while this request awaited: the stored record resumes at the next start
            await leasing.release(task_id)
            return record, True
        supervisor.launch(record, peer_review=council.enable_peer_review)
        return record, True
    finally:
        admission.release_place()  # launched (its run now holds the place) or refused


def new_record(
    cmd: Deliberate, council: Council, defaults: RunDefaults, *, created_at_ms: int, trace: Mapping[str, str]
) -> Deliberation:
    role = council.role
    num_agents = cmd.num_agents or len(council.agents)
    if num_agents > len(council.agents):
        raise InvalidArgumentError(
            "num_agents", f"the {role.value} council has {len(council.agents)} agents, {num_agents} requested"
        )
    task = TaskSpec(
        task_id=cmd.task_id or f"delib-{uuid.uuid4().hex[:12]}",
        description=cmd.task_description,
        role=role,
        rounds=cmd.rounds if cmd.rounds is not None else council.rounds,
        num_agents=num_agents,
        rubric=cmd.rubric,
        requirements=tuple(cmd.requirements),
        metadata=dict(cmd.metadata),
        timeout_s=float(cmd.timeout_s) or defaults.timeout_s,
        acceptance_tests=cmd.acceptance_tests,
        token_budget=resolve_budget(cmd.token_budget, council.token_budget, defaults.token_budget),
        samples=cmd.samples if cmd.samples is not None else council_samples(council.custom_params, defaults.limits),
    )
    return Deliberation(
        task=task,
        agents=council.agents[:num_agents],
        status=DeliberationStatus.PENDING,
        created_at_ms=created_at_ms,
        quorum=default_quorum(num_agents),
        source=cmd.source,
        trace=tuple(sorted(trace.items())),
    )


async def _created_elsewhere(task_id: str, supervisor: RunSupervisor) -> Deliberation:
    """The record of a task_id whose lease another replica took a moment ago, to create it."""
    for _ in range(20):
        if (found := await supervisor.find(task_id)) is not None:
            return found
        await asyncio.sleep(supervisor.poll_s)
    raise DependencyUnavailableError("orchestrator", f"another replica is starting {task_id}; retry shortly")


async def deliberate(cmd: Deliberate, *, start: Start, supervisor: RunSupervisor) -> Deliberation:
    """Starts (or attaches to) a deliberation and waits for its end. If the caller goes away, a
    deliberation it started is cancelled; one it merely attached to runs on."""
    record, created = await start(cmd)
    try:
        return await supervisor.wait(record.task_id)
    except asyncio.CancelledError:
        if created:
            await supervisor.cancel(record.task_id)
        raise


async def get_deliberation(cmd: GetDeliberation, *, supervisor: RunSupervisor) -> Deliberation:
    return await supervisor.get(cmd.task_id)


async def cancel_deliberation(cmd: CancelDeliberation, *, supervisor: RunSupervisor) -> tuple[Deliberation, bool]:
    """(record, True) once the run has ended cancelled; (record, False) when it had already finished."""
    return await supervisor.cancel(cmd.task_id)


def watch_deliberation(cmd: WatchDeliberation, *, supervisor: RunSupervisor) -> AsyncIterator[Update]:
    return supervisor.watch(cmd.task_id)


async def stream_deliberation(cmd: Deliberate, *, start: Start, supervisor: RunSupervisor) -> AsyncIterator[Update]:
    """Starts (or attaches to) a deliberation and yields its updates; a run this call started is cancelled
    when the caller stops listening before it ends."""
    record, created = await start(cmd)
    finished = False
    try:
        async for update in supervisor.watch(record.task_id):
            finished = update.final
            yield update
    finally:
        if created and not finished:
            await supervisor.cancel(record.task_id)


async def list_deliberations(cmd: ListDeliberations, *, supervisor: RunSupervisor) -> tuple[list[Deliberation], str]:
    """A page of deliberations, newest first, and the token of the next page ("" at the end)."""
    if not 0 <= cmd.page_size <= MAX_PAGE_SIZE:
        raise InvalidArgumentError("page_size", f"must be 0..{MAX_PAGE_SIZE}")
    size = cmd.page_size or 50
    offset = parse_page_token(cmd.page_token)
    role = parse_role(cmd.role) if cmd.role else None
    page = await supervisor.search(status=cmd.status, role=role, limit=size + 1, offset=offset)
    return page[:size], str(offset + size) if len(page) > size else ""
