"""The deliberation protocol: propose -> verify -> (critique -> revise -> verify) x R -> score.

Verify (application/protocol/verification.py) runs the static and execution checks of every proposal; its evidence goes
into the next critique and revise prompts, can end the rounds early, and decides the ranking (domain/ranking.py).
The stages themselves are in application/protocol/stages.py; this module runs them in order and owns the record.

Every LLM stage is one concurrent fan-out (`asyncio.gather`) over the agents still taking part, so the wall time
is (2 + 2R) calls whatever the council size. Each finished call is applied to the live record at once, so a
deadline or a cancellation keeps what already finished, and watchers see agents finish one by one.

An LLM endpoint that is down for everyone (`LLMCallError.endpoint_down`) pauses the run instead of dropping its
agents: the failed calls wait with one shared, capped, jittered exponential backoff and are tried again, until
the endpoint answers or the deadline ends the run. However a run ends early, the proposals that had finished
are ranked and kept.

A token budget (protocol/budgeting.py) is checked before every LLM stage after propose: when it is reached, or
the next stage would pass it, the run goes straight to ranking what exists, as an early stop does, and completes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import structlog

from orchestrator.application.ports import AgentCall, AgentGateway, Checker, Clock, Completion, Verifier
from orchestrator.application.protocol import budgeting, stages, verification
from orchestrator.application.protocol.pause import EndpointPause, describe
from orchestrator.application.tracing import NoTracing, StageInfo, Tracing
from orchestrator.domain import prompts
from orchestrator.domain.budget import StopCode
from orchestrator.domain.deliberation import Deliberation, stage_plan
from orchestrator.domain.errors import LLMCallError
from orchestrator.domain.events import (
    AgentDropped,
    CallFinished,
    EndpointBack,
    EndpointPaused,
    RunEvent,
    StageFinished,
    StageStarted,
)
from orchestrator.domain.model import (
    AgentFailure,
    AgentSpec,
    CallRecord,
    DeliberationStatus,
    Proposal,
    Stage,
    Usage,
    agent_of,
)

log = structlog.get_logger(__name__)

Listener = Callable[[RunEvent], None]
"""Told of every event of the run (domain/events.py), on the event loop, as it happens."""

Checkpoint = Callable[[Deliberation], Awaitable[None]]


@dataclass
class DeliberationRun:
    """One run of the protocol over a record; `snapshot` is always the latest state."""

    snapshot: Deliberation
    gateway: AgentGateway
    checker: Checker
    checkpoint: Checkpoint
    listener: Listener
    clock: Clock
    peer_review: bool = True
    verifier: Verifier | None = None
    early_stop: bool = True
    pause: EndpointPause = field(default_factory=EndpointPause)
    tracing: Tracing = field(default_factory=NoTracing)
    """A `stage <name>` span around each stage; the agent calls inside it are its children."""
    _stalled: dict[str, AgentFailure] = field(default_factory=dict, init=False)
    """Agents whose current call is waiting for the endpoint, with the error that made it wait."""
    _dropped: dict[str, Proposal] = field(default_factory=dict, init=False)
    """The last finished proposal of each agent that dropped out after proposing."""

    async def execute(self) -> Deliberation:
        """Runs the remaining stages; returns the finished record (COMPLETED, or FAILED with the finished
        proposals ranked when too few agents are left)."""
        started = self.snapshot.started_at_ms or self.clock.now_ms()
        self.update(status=DeliberationStatus.IN_PROGRESS, started_at_ms=started)
        plan = stage_plan(self.snapshot.task.rounds)
        index = self.snapshot.progress.stages_done
        while index < len(plan):
            if budgeting.stops_before(self, plan[index][0]):
                index = len(plan) - 1  # rank what exists, as an early stop does
            stage, round_ = plan[index]
            self.update(stage=stage.value, round=round_)
            self.emit(StageStarted(self.snapshot))
            with self.tracing.span(StageInfo(stage.value, round_, callers=len(self.snapshot.alive_agents()))):
                await self._run_stage(stage, round_)
            index = self._next_stage(plan, index, stage, round_)
            self.snapshot = self.snapshot.with_progress(stages_done=index)
            if (failure := self._quorum_failure()) is not None:
                # Still FAILED (the protocol did not finish with a quorum, so nothing downstream takes it for a
                # decision), but the work that finished is kept: a council deleted mid-run drops every agent
                # at once, and their proposals would otherwise be lost.
                finished = {**self._dropped, **self.snapshot.progress.proposals}
                return await self._conclude(DeliberationStatus.FAILED, failure, list(finished.values()))
            self.emit(StageFinished(self.snapshot))
            if stage is not Stage.SCORE:
                await self.checkpoint(self.snapshot)
        return self.snapshot

    def _next_stage(self, plan: tuple[tuple[Stage, int], ...], index: int, stage: Stage, round_: int) -> int:
        """The index of the next stage: the score stage at once when the evidence already decides."""
        rounds = self.snapshot.task.rounds
        if stage is Stage.REVISE:
            self.snapshot = self.snapshot.with_progress(rounds_run=round_)
        if stage is not Stage.VERIFY or self.snapshot.progress.stop_reason:
            return index + 1
        reason, code = "", StopCode.ROUNDS_DONE
        if round_ >= rounds:
            reason = "best-of-N: no rounds asked" if rounds == 0 else f"all {rounds} rounds ran"
        elif self.early_stop:
            progress = self.snapshot.progress
            reason = verification.decided(self.snapshot.task, progress.checks, progress.evidence) or ""
            code = StopCode.EVIDENCE_DECIDED
        if not reason:
            return index + 1
        self.snapshot = self.snapshot.with_progress(stop_reason=reason, stop_code=code)
        return len(plan) - 1

    async def conclude_early(self, status: DeliberationStatus, reason: str) -> Deliberation:
        """Ends the run as TIMEOUT/CANCELLED, ranking the proposals that exist by their checks alone.

        A deadline that comes while the LLM endpoint is down names the agents that were waiting for it (in the
        failures too); if no proposal exists at all, the run ends FAILED as the endpoint being unreachable, which
        the gRPC adapter answers as UNAVAILABLE, as before the pause existed."""
        if status is DeliberationStatus.TIMEOUT and self._stalled:
            stalled = tuple(self._stalled.values())
            since = self.pause.since
            lasted = f" for the last {self.clock.monotonic() - since:.1f}s" if since is not None else ""
            reason = f"{reason}; the LLM endpoint was unreachable{lasted}: {describe(stalled)}"
            self.snapshot = self.snapshot.with_progress(failures=(*self.snapshot.progress.failures, *stalled))
            if not self.snapshot.progress.proposals:
                status = DeliberationStatus.FAILED
        return await self._conclude(status, reason, list(self.snapshot.progress.proposals.values()))

    async def _conclude(self, status: DeliberationStatus, reason: str, proposals: list[Proposal]) -> Deliberation:
        checks = await stages.check_all(self, proposals)
        results = stages.rank(self, proposals, checks)
        self.update(results=results, winner_id=results[0].proposal.author_id if results else "")
        return self.finish(status, error=reason)

    def emit(self, event: RunEvent) -> None:
        self.listener(event)

    def update(self, **changes: object) -> None:
        self.snapshot = replace(self.snapshot, **changes)  # type: ignore[arg-type]

    def finish(self, status: DeliberationStatus, error: str = "") -> Deliberation:
        self.update(status=status, error_message=error, finished_at_ms=self.clock.now_ms())
        return self.snapshot

    def _quorum_failure(self) -> str | None:
        proposals = self.snapshot.progress.proposals
        alive = sum(a.agent_id in proposals for a in self.snapshot.agents)  # agents, not their extra samples
        if alive >= self.snapshot.quorum:
            return None
        return (
            f"only {alive} of {len(self.snapshot.agents)} agents still have a proposal, "
            f"quorum is {self.snapshot.quorum}: {describe(self.snapshot.progress.failures)}"
        )

    async def _run_stage(self, stage: Stage, round_: int) -> None:
        if stage is Stage.SCORE:
            await stages.score(self, round_)
            return
        if stage is Stage.VERIFY:
            await stages.verify(self, round_)
            return
        step = stages.AGENT_STEPS[stage]
        await asyncio.gather(*(step(self, agent, round_) for agent in self.snapshot.alive_agents()))

    async def call(
        self, agent: AgentSpec, stage: Stage, round_: int, prompt: prompts.Prompt, *, drop: bool = True
    ) -> Completion | None:
        """One agent call with its accounting (every attempt is recorded). While the endpoint is down for
        everyone the call waits and is tried again; any other final failure drops the agent (its error is never
        a proposal), unless `drop` is False (a call besides the agent's own part, such as the test designer's)."""
        while True:
            started = self.clock.monotonic()
            try:
                completion = await self.gateway.complete(agent, AgentCall(self.snapshot.task_id, stage, round_, prompt))
            except LLMCallError as exc:
                latency = (self.clock.monotonic() - started) * 1000
                self._record(agent, stage, round_, Usage(), latency, error=str(exc))
                failure = AgentFailure(agent.agent_id, stage, round_, f"{exc.code}: {exc.detail}", exc.kind)
                if exc.endpoint_down:
                    self._stalled[agent.agent_id] = failure
                    await self._wait_for_endpoint(failure)
                    continue
                self._endpoint_answered(agent.agent_id)  # with an error about this call only: it is up
                if not drop:
                    return None
                self.drop(failure, stage)
                self.emit(AgentDropped(self.snapshot, failure))
                return None
            self._endpoint_answered(agent.agent_id)
            self._record(agent, stage, round_, completion.usage, completion.latency_ms, model=completion.model)
            return completion

    async def _wait_for_endpoint(self, failure: AgentFailure) -> None:
        delay, new_wave = self.pause.wait_for(self.clock.monotonic())
        if new_wave:
            log.warning(
                "llm_endpoint_unavailable_pausing",
                deliberation_id=self.snapshot.task_id,
                stage=failure.stage.value,
                round=failure.round,
                waiting_agents=sorted(self._stalled),
                attempt=self.pause.attempt,
                retry_in_s=round(delay, 2),
                error=failure.error[:300],
            )
            # Shown to watchers and GetDeliberationResult while the run waits; cleared when it carries on.
            self.update(error_message=f"paused: the LLM endpoint is unreachable, retrying in {delay:.1f}s")
            self.emit(EndpointPaused(self.snapshot))
        await asyncio.sleep(delay)

    def _endpoint_answered(self, agent_id: str) -> None:
        self._stalled.pop(agent_id, None)
        if not self.pause.active:
            return
        lasted = self.pause.end(self.clock.monotonic())
        log.info("llm_endpoint_back", deliberation_id=self.snapshot.task_id, paused_s=round(lasted, 2))
        self.update(error_message="")
        self.emit(EndpointBack(self.snapshot))

    def _record(
        self,
        agent: AgentSpec,
        stage: Stage,
        round_: int,
        usage: Usage,
        latency: float,
        *,
        model: str = "",
        error: str = "",
    ) -> None:
        record = CallRecord(
            agent.agent_id,
            stage,
            round_,
            usage,
            round(latency, 3),
            model or agent.model,
            agent.temperature,
            agent.seed,
            ok=not error,
            error=error,
        )
        self.snapshot = self.snapshot.with_progress(calls=(*self.snapshot.progress.calls, record))
        self.emit(CallFinished(self.snapshot, record))

    def drop(self, failure: AgentFailure, stage: Stage) -> None:
        proposals = dict(self.snapshot.progress.proposals)
        # A scorer's own proposal is already final and still ranks; any other stage takes it out of the run.
        if stage is not Stage.SCORE:
            if (last := proposals.pop(failure.agent_id, None)) is not None:
                self._dropped[failure.agent_id] = last
            proposals = {a: p for a, p in proposals.items() if agent_of(a) != failure.agent_id}  # and its samples
        self.snapshot = self.snapshot.with_progress(
            proposals=proposals, failures=(*self.snapshot.progress.failures, failure)
        )

    def set_proposal(self, proposal: Proposal) -> None:
        proposals = {**self.snapshot.progress.proposals, proposal.author_id: proposal}
        self.snapshot = self.snapshot.with_progress(proposals=proposals)
