"""A deliberation's record: the task, who takes part, what each stage produced, and how it ended."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from orchestrator.domain.budget import StopCode, TokenBudget
from orchestrator.domain.evidence import ProposalEvidence
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
    TaskSpec,
    Usage,
)


def stage_plan(rounds: int) -> tuple[tuple[Stage, int], ...]:
    """The (stage, round) sequence: propose, verify, (critique, revise, verify) x rounds, score. It has 2 + 2R LLM
    stages; verify runs code and checks, no LLM. With rounds = 0 it is best-of-N with verification."""
    middle = tuple(
        step for r in range(1, rounds + 1) for step in ((Stage.CRITIQUE, r), (Stage.REVISE, r), (Stage.VERIFY, r))
    )
    return ((Stage.PROPOSE, 0), (Stage.VERIFY, 0), *middle, (Stage.SCORE, rounds))


def default_quorum(num_agents: int) -> int:
    return max(1, math.ceil(num_agents / 2))


@dataclass(frozen=True)
class Progress:
    """What the stages produced so far; saved as a checkpoint after every stage, so a run can resume."""

    proposals: dict[str, Proposal] = field(default_factory=dict)
    """Current proposal of every agent still taking part, by author id."""
    critiques: tuple[Critique, ...] = ()
    peer_scores: tuple[PeerScore, ...] = ()
    failures: tuple[AgentFailure, ...] = ()
    calls: tuple[CallRecord, ...] = ()
    stages_done: int = 0
    checks: dict[str, CheckSuite] = field(default_factory=dict)
    """The static checks of every current proposal, from the latest verify stage."""
    evidence: dict[str, ProposalEvidence] = field(default_factory=dict)
    """The execution evidence of every current proposal, from the latest verify stage."""
    evidence_log: tuple[ProposalEvidence, ...] = ()
    """Every proposal's evidence of every round, in order: which tests ran, which passed, why others failed."""
    rounds_run: int = 0
    stop_reason: str = ""
    """Why the critique/revise rounds ended: all rounds ran, the evidence decided earlier, or the token budget."""
    stop_code: StopCode | None = None
    """`stop_reason` as a value; None while the rounds run, and when the run ended otherwise (deadline, cancel,
    quorum lost)."""
    probes: tuple[str, ...] = ()
    """The test designer's calls (inputs only) that every solution runs to be grouped by behaviour."""


@dataclass(frozen=True)
class Deliberation:
    task: TaskSpec
    agents: tuple[AgentSpec, ...]
    status: DeliberationStatus
    created_at_ms: int
    progress: Progress = Progress()
    stage: str = ""
    round: int = 0
    results: tuple[RankedProposal, ...] = ()
    winner_id: str = ""
    error_message: str = ""
    started_at_ms: int = 0
    finished_at_ms: int = 0
    quorum: int = 0
    source: str = ""
    """Who asked for it: "grpc", or "plan:<plan_id>/<subtask_id>" for auto-dispatch."""
    trace: tuple[tuple[str, str], ...] = ()
    """The trace context (W3C `traceparent`/`tracestate`) of the request that created it; empty when tracing is off.
    Every run of it, a resumed one after a restart or on another replica too, continues that trace."""

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def duration_ms(self) -> int:
        if not self.started_at_ms:
            return 0
        end = self.finished_at_ms or self.started_at_ms
        return max(0, end - self.started_at_ms)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for call in self.progress.calls:
            total = total + call.usage
        return total

    @property
    def budget(self) -> TokenBudget:
        """The effective token budget with what the run has spent so far."""
        return TokenBudget(self.task.token_budget, self.usage.total_tokens)

    def usage_by_agent(self) -> dict[str, Usage]:
        totals: dict[str, Usage] = {}
        for call in self.progress.calls:
            totals[call.agent_id] = totals.get(call.agent_id, Usage()) + call.usage
        return totals

    @property
    def failed_as_unreachable(self) -> bool:
        """It FAILED only because no agent could reach the LLM endpoint (every failure of such a kind): a
        dependency outage, which the gRPC adapter answers as UNAVAILABLE, not a result."""
        failures = self.progress.failures
        return (
            self.status is DeliberationStatus.FAILED
            and bool(failures)
            and all(f.kind.endpoint_unreachable for f in failures)
        )

    @property
    def failed_agent_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.agent_id for f in self.progress.failures))

    def alive_agents(self) -> tuple[AgentSpec, ...]:
        """Agents that still take part: before any proposal exists, every agent that has not failed."""
        failed = set(self.failed_agent_ids)
        if self.progress.stages_done == 0:
            return tuple(a for a in self.agents if a.agent_id not in failed)
        return tuple(a for a in self.agents if a.agent_id in self.progress.proposals)

    def with_progress(self, **changes: object) -> Deliberation:
        return replace(self, progress=replace(self.progress, **changes))  # type: ignore[arg-type]

    def progress_percent(self) -> int:
        if self.status.finished:
            return 100
        plan = stage_plan(self.task.rounds)
        done_calls = len(self.progress.calls)
        expected = max(1, len(plan) * len(self.agents))
        return min(99, int(100 * done_calls / expected))
