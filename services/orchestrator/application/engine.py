"""The deliberation protocol: propose -> verify -> (critique -> revise -> verify) x R -> score.

Verify (application/verification.py) runs the static and execution checks of every proposal; its evidence goes
into the next critique and revise prompts, can end the rounds early, and decides the ranking (domain/ranking.py).

Every LLM stage is one concurrent fan-out (`asyncio.gather`) over the agents still taking part, so the wall time
is (2 + 2R) calls whatever the council size. Each finished call is applied to the live record at once, so a
deadline or a cancellation keeps what already finished, and watchers see agents finish one by one.

An LLM endpoint that is down for everyone (`LLMCallError.endpoint_down`) pauses the run instead of dropping its
agents: the failed calls wait with one shared, capped, jittered exponential backoff and are tried again, until
the endpoint answers or the deadline ends the run. However a run ends early, the proposals that had finished
are ranked and kept.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace

import structlog

from orchestrator.application import verification
from orchestrator.application.ports import AgentCall, AgentGateway, Checker, Completion, Verifier
from orchestrator.domain import prompts
from orchestrator.domain.deliberation import Deliberation, stage_plan
from orchestrator.domain.errors import LLMCallError
from orchestrator.domain.evidence import findings_text
from orchestrator.domain.model import (
    AgentFailure,
    AgentSpec,
    CallRecord,
    CheckSuite,
    Critique,
    DeliberationStatus,
    PeerScore,
    Proposal,
    RankedProposal,
    Stage,
    Usage,
)
from orchestrator.domain.parsing import parse_critiques, parse_scores, strip_proposal_wrapper
from orchestrator.domain.ranking import rank_by_evidence

log = structlog.get_logger(__name__)

Listener = Callable[[Deliberation, str, str], None]
"""Called with (snapshot, event, agent_id) on stage start/end, on every finished agent call, and with
`llm_unavailable` / `llm_back` when the run pauses for the LLM endpoint and carries on."""

Checkpoint = Callable[[Deliberation], Awaitable[None]]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class EndpointPause:
    """How a run waits while the LLM endpoint is down for everyone: one backoff shared by all its calls, so
    the calls that failed retry together in waves (delays doubling from `first_s` up to `max_s`, each cut by a
    random 0-50 % so runs do not retry in step), rather than each hammering a recovering server on its own.
    There is no limit of its own: the deliberation's deadline ends the wait."""

    first_s: float = 0.5
    max_s: float = 10.0
    since: float | None = None
    """`time.monotonic()` when the outage was first seen; None while the endpoint answers."""
    attempt: int = 0
    resume_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.since is not None

    def wait_for(self, now: float) -> tuple[float, bool]:
        """How long a call that failed at `now` waits, and whether it opened a new wave (calls that fail
        before that wave starts join it instead of pushing it further out)."""
        if self.since is None:
            self.since, self.attempt = now, 0
        elif self.resume_at > now:
            return self.resume_at - now, False
        else:
            self.attempt += 1
        delay = min(self.max_s, self.first_s * 2 ** min(self.attempt, 32)) * random.uniform(0.5, 1.0)
        self.resume_at = now + delay
        return delay, True

    def end(self, now: float) -> float:
        """The endpoint answered: the pause is over. Returns how long it lasted."""
        lasted = now - self.since if self.since is not None else 0.0
        self.since, self.attempt, self.resume_at = None, 0, 0.0
        return lasted


def _describe(failures: Iterable[AgentFailure]) -> str:
    return "; ".join(f"{f.agent_id} ({f.stage} r{f.round}): {f.error}" for f in failures)


@dataclass
class DeliberationRun:
    """One run of the protocol over a record; `snapshot` is always the latest state."""

    snapshot: Deliberation
    gateway: AgentGateway
    checker: Checker
    checkpoint: Checkpoint
    listener: Listener
    peer_review: bool = True
    verifier: Verifier | None = None
    early_stop: bool = True
    pause: EndpointPause = field(default_factory=EndpointPause)
    _stalled: dict[str, AgentFailure] = field(default_factory=dict, init=False)
    """Agents whose current call is waiting for the endpoint, with the error that made it wait."""
    _dropped: dict[str, Proposal] = field(default_factory=dict, init=False)
    """The last finished proposal of each agent that dropped out after proposing."""

    async def execute(self) -> Deliberation:
        """Runs the remaining stages; returns the finished record (COMPLETED, or FAILED with the finished
        proposals ranked when too few agents are left)."""
        self._update(status=DeliberationStatus.IN_PROGRESS, started_at_ms=self.snapshot.started_at_ms or now_ms())
        plan = stage_plan(self.snapshot.task.rounds)
        index = self.snapshot.progress.stages_done
        while index < len(plan):
            stage, round_ = plan[index]
            self._update(stage=stage.value, round=round_)
            self.listener(self.snapshot, "stage_started", "")
            await self._run_stage(stage, round_)
            index = self._next_stage(plan, index, stage, round_)
            self.snapshot = self.snapshot.with_progress(stages_done=index)
            if (failure := self._quorum_failure()) is not None:
                # Still FAILED (the protocol did not finish with a quorum, so nothing downstream takes it for a
                # decision), but the work that finished is kept: a council deleted mid-run drops every agent
                # at once, and their proposals would otherwise be lost.
                finished = {**self._dropped, **self.snapshot.progress.proposals}
                return await self._conclude(DeliberationStatus.FAILED, failure, list(finished.values()))
            self.listener(self.snapshot, "stage_finished", "")
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
        reason = ""
        if round_ >= rounds:
            reason = "best-of-N: no rounds asked" if rounds == 0 else f"all {rounds} rounds ran"
        elif self.early_stop:
            progress = self.snapshot.progress
            reason = verification.decided(self.snapshot.task, progress.checks, progress.evidence) or ""
        if not reason:
            return index + 1
        self.snapshot = self.snapshot.with_progress(stop_reason=reason)
        return len(plan) - 1

    async def conclude_early(self, status: DeliberationStatus, reason: str) -> Deliberation:
        """Ends the run as TIMEOUT/CANCELLED, ranking the proposals that exist by their checks alone.

        A deadline that comes while the LLM endpoint is down names the agents that were waiting for it (in the
        failures too); if no proposal exists at all, the run ends FAILED as the endpoint being unreachable, which
        the gRPC adapter answers as UNAVAILABLE, as before the pause existed."""
        if status is DeliberationStatus.TIMEOUT and self._stalled:
            stalled = tuple(self._stalled.values())
            since = self.pause.since
            lasted = f" for the last {time.monotonic() - since:.1f}s" if since is not None else ""
            reason = f"{reason}; the LLM endpoint was unreachable{lasted}: {_describe(stalled)}"
            self.snapshot = self.snapshot.with_progress(failures=(*self.snapshot.progress.failures, *stalled))
            if not self.snapshot.progress.proposals:
                status = DeliberationStatus.FAILED
        return await self._conclude(status, reason, list(self.snapshot.progress.proposals.values()))

    async def _conclude(self, status: DeliberationStatus, reason: str, proposals: list[Proposal]) -> Deliberation:
        checks = await self._check_all(proposals)
        results = self._rank(proposals, checks)
        self._update(results=results, winner_id=results[0].proposal.author_id if results else "")
        return self._finish(status, error=reason)

    def _update(self, **changes: object) -> None:
        self.snapshot = replace(self.snapshot, **changes)  # type: ignore[arg-type]

    def _finish(self, status: DeliberationStatus, error: str = "") -> Deliberation:
        self._update(status=status, error_message=error, finished_at_ms=now_ms())
        return self.snapshot

    def _quorum_failure(self) -> str | None:
        alive = len(self.snapshot.progress.proposals)
        if alive >= self.snapshot.quorum:
            return None
        return (
            f"only {alive} of {len(self.snapshot.agents)} agents still have a proposal, "
            f"quorum is {self.snapshot.quorum}: {_describe(self.snapshot.progress.failures)}"
        )

    async def _run_stage(self, stage: Stage, round_: int) -> None:
        if stage is Stage.SCORE:
            await self._score(round_)
            return
        if stage is Stage.VERIFY:
            await self._verify(round_)
            return
        step = {Stage.PROPOSE: self._propose, Stage.CRITIQUE: self._critique, Stage.REVISE: self._revise}[stage]
        await asyncio.gather(*(step(agent, round_) for agent in self.snapshot.alive_agents()))

    async def _call(self, agent: AgentSpec, stage: Stage, round_: int, prompt: prompts.Prompt) -> Completion | None:
        """One agent call with its accounting (every attempt is recorded). While the endpoint is down for
        everyone the call waits and is tried again; any other final failure drops the agent (its error is never
        a proposal)."""
        while True:
            started = time.perf_counter()
            try:
                completion = await self.gateway.complete(agent, AgentCall(self.snapshot.task_id, stage, round_, prompt))
            except LLMCallError as exc:
                latency = (time.perf_counter() - started) * 1000
                self._record(agent, stage, round_, Usage(), latency, error=str(exc))
                failure = AgentFailure(agent.agent_id, stage, round_, f"{exc.kind}: {exc.detail}")
                if exc.endpoint_down:
                    self._stalled[agent.agent_id] = failure
                    await self._wait_for_endpoint(failure)
                    continue
                self._endpoint_answered(agent.agent_id)  # with an error about this call only: it is up
                self._drop(failure, stage)
                self.listener(self.snapshot, "agent_failed", agent.agent_id)
                return None
            self._endpoint_answered(agent.agent_id)
            self._record(agent, stage, round_, completion.usage, completion.latency_ms, model=completion.model)
            return completion

    async def _wait_for_endpoint(self, failure: AgentFailure) -> None:
        delay, new_wave = self.pause.wait_for(time.monotonic())
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
            self._update(error_message=f"paused: the LLM endpoint is unreachable, retrying in {delay:.1f}s")
            self.listener(self.snapshot, "llm_unavailable", "")
        await asyncio.sleep(delay)

    def _endpoint_answered(self, agent_id: str) -> None:
        self._stalled.pop(agent_id, None)
        if not self.pause.active:
            return
        lasted = self.pause.end(time.monotonic())
        log.info("llm_endpoint_back", deliberation_id=self.snapshot.task_id, paused_s=round(lasted, 2))
        self._update(error_message="")
        self.listener(self.snapshot, "llm_back", "")

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

    def _drop(self, failure: AgentFailure, stage: Stage) -> None:
        proposals = dict(self.snapshot.progress.proposals)
        # A scorer's own proposal is already final and still ranks; any other stage takes it out of the run.
        if stage is not Stage.SCORE and (last := proposals.pop(failure.agent_id, None)) is not None:
            self._dropped[failure.agent_id] = last
        self.snapshot = self.snapshot.with_progress(
            proposals=proposals, failures=(*self.snapshot.progress.failures, failure)
        )

    def _set_proposal(self, proposal: Proposal) -> None:
        proposals = {**self.snapshot.progress.proposals, proposal.author_id: proposal}
        self.snapshot = self.snapshot.with_progress(proposals=proposals)

    async def _propose(self, agent: AgentSpec, round_: int) -> None:
        completion = await self._call(agent, Stage.PROPOSE, round_, prompts.propose(self.snapshot.task))
        if completion is None:
            return
        content = strip_proposal_wrapper(completion.content)
        if not content:
            self._drop(
                AgentFailure(agent.agent_id, Stage.PROPOSE, round_, "empty: the model returned no text"),
                Stage.PROPOSE,
            )
            return
        self._set_proposal(Proposal(agent.agent_id, agent.role, content, now_ms()))
        self.listener(self.snapshot, "agent_finished", agent.agent_id)

    def _peers_of(self, agent_id: str) -> list[Proposal]:
        return [p for aid, p in sorted(self.snapshot.progress.proposals.items()) if aid != agent_id]

    async def _critique(self, agent: AgentSpec, round_: int) -> None:
        peers = self._peers_of(agent.agent_id)
        if not peers:
            return
        prompt = prompts.critique(
            self.snapshot.task, round_, peers, {p.author_id: self._findings(p.author_id) for p in peers}
        )
        completion = await self._call(agent, Stage.CRITIQUE, round_, prompt)
        if completion is None:
            return
        found = parse_critiques(completion.content, [p.author_id for p in peers])
        new = tuple(Critique(agent.agent_id, target, round_, text) for target, text in sorted(found.items()))
        self.snapshot = self.snapshot.with_progress(critiques=(*self.snapshot.progress.critiques, *new))
        self.listener(self.snapshot, "agent_finished", agent.agent_id)

    async def _revise(self, agent: AgentSpec, round_: int) -> None:
        own = self.snapshot.progress.proposals.get(agent.agent_id)
        if own is None:
            return
        progress = self.snapshot.progress
        if verification.fails_nothing(progress.evidence.get(own.author_id), progress.checks.get(own.author_id)):
            return  # kept as it is: nothing failed, so its critiques are not taken as substantive
        received = sorted(  # by critic, so the prompt does not depend on which peer answered first
            f"{c.critic_id}: {c.text}"
            for c in self.snapshot.progress.critiques
            if c.target_id == agent.agent_id and c.round == round_
        )
        completion = await self._call(
            agent,
            Stage.REVISE,
            round_,
            prompts.revise(self.snapshot.task, round_, own, received, self._findings(own.author_id)),
        )
        if completion is None:
            return
        # An empty revision keeps the previous text as this round's revision rather than losing the proposal.
        text = strip_proposal_wrapper(completion.content) or own.content
        current = self.snapshot.progress.proposals.get(agent.agent_id, own)
        self._set_proposal(replace(current, content=text, revisions=(*current.revisions, text)))
        checks = {a: c for a, c in self.snapshot.progress.checks.items() if a != agent.agent_id}
        self.snapshot = self.snapshot.with_progress(checks=checks)
        self.listener(self.snapshot, "agent_finished", agent.agent_id)

    async def _score_one(self, agent: AgentSpec, round_: int) -> None:
        peers = self._peers_of(agent.agent_id)
        if not peers:
            return
        labels = prompts.blind_labels(agent.agent_id, self.snapshot.task_id, (p.author_id for p in peers))
        by_author = {p.author_id: p for p in peers}
        prompt = prompts.score(self.snapshot.task, [(label, by_author[author]) for label, author in labels])
        completion = await self._call(agent, Stage.SCORE, round_, prompt)
        if completion is None:
            return
        author_of = dict(labels)
        found = parse_scores(completion.content, list(author_of))
        new = tuple(PeerScore(agent.agent_id, author_of[t], s, why) for t, (s, why) in sorted(found.items()))
        self.snapshot = self.snapshot.with_progress(peer_scores=(*self.snapshot.progress.peer_scores, *new))
        self.listener(self.snapshot, "agent_finished", agent.agent_id)

    async def _current_checks(self, proposals: list[Proposal]) -> dict[str, CheckSuite]:
        """The latest verify stage's checks, when they are of these very proposals; else checked now."""
        known = self.snapshot.progress.checks  # a revision drops its author's entry until the next verify
        if all(p.author_id in known for p in proposals):
            return {p.author_id: known[p.author_id] for p in proposals}
        return await self._check_all(proposals)

    async def _check_all(self, proposals: list[Proposal]) -> dict[str, CheckSuite]:
        requirements = self.snapshot.task.requirements
        suites = await asyncio.gather(*(self.checker.check(p.content, requirements) for p in proposals))
        return {p.author_id: suite for p, suite in zip(proposals, suites, strict=True)}

    def _findings(self, author_id: str) -> str:
        progress = self.snapshot.progress
        suite = progress.checks.get(author_id)
        return findings_text(
            progress.evidence.get(author_id),
            verification.spec_of(self.snapshot.task),
            suite.lint.errors if suite else (),
            suite.policy.violations if suite else (),
        )

    async def _verify(self, round_: int) -> None:
        progress = self.snapshot.progress
        checks, evidence = await verification.verify(
            self.snapshot.task, progress.proposals, round_, checker=self.checker, verifier=self.verifier
        )
        self.snapshot = self.snapshot.with_progress(
            checks=checks, evidence=evidence, evidence_log=(*progress.evidence_log, *evidence.values())
        )

    def _rank(self, proposals: list[Proposal], checks: dict[str, CheckSuite]) -> tuple[RankedProposal, ...]:
        progress = self.snapshot.progress
        return rank_by_evidence(
            proposals,
            checks,
            progress.peer_scores,
            evidence=progress.evidence,
            spec=verification.spec_of(self.snapshot.task),
            critiques=progress.critiques,
            usage=self.snapshot.usage_by_agent(),
        )

    async def _score(self, round_: int) -> None:
        """Peer review (LLM) and any missing checks at the same time; then the verification-first ranking. With
        rounds = 0 (best-of-N with verification) there is no peer review."""
        final = list(self.snapshot.progress.proposals.values())
        review = self.peer_review and self.snapshot.task.rounds > 0
        scorers = self.snapshot.alive_agents() if review else ()
        checks, _ = await asyncio.gather(
            self._current_checks(final), asyncio.gather(*(self._score_one(a, round_) for a in scorers))
        )
        progress = self.snapshot.progress
        ranked = self._rank(
            [progress.proposals[p.author_id] for p in final if p.author_id in progress.proposals], checks
        )
        self._update(results=ranked, winner_id=ranked[0].proposal.author_id if ranked else "")
        if ranked:
            self._finish(DeliberationStatus.COMPLETED)
