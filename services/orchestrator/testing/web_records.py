"""Finished deliberation records of a chosen size, for the web view's tests and benchmark: N ranked proposals with
code, revisions, critiques, peer scores, calls, and evidence over examples, acceptance tests and every agent's tests
(a deterministic mix of passes and failures)."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.deliberation import Deliberation, Progress
from orchestrator.domain.evidence import ProposalEvidence, UnitOutcome
from orchestrator.domain.model import (
    AgentSpec,
    CallRecord,
    CheckSuite,
    Critique,
    DeliberationStatus,
    DryRunResult,
    LintResult,
    PeerScore,
    PolicyResult,
    Proposal,
    RankedProposal,
    Role,
    Stage,
    TaskSpec,
    Usage,
)


def _code(author: str, i: int, extra: str) -> str:
    return (
        f"Approach of {author}: clamp the value.\n{extra}\n"
        "```python\n"
        f"def clamp(x: int, low: int, high: int) -> int:\n    # variant {i}\n    return max(low, min(x, high))\n"
        "```\n"
        "```python\n# tests\nassert clamp(5, 0, 10) == 5\n```\n"
    )


def _tests(agents: int, tests: int) -> list[str]:
    """`tests` test ids: a sixth examples, a sixth acceptance tests, the rest spread over the agents."""
    examples = max(1, tests // 6)
    acceptance = max(1, tests // 6)
    ids = [f"example-{i}" for i in range(examples)] + [f"acceptance-{i}" for i in range(acceptance)]
    rest = tests - len(ids)
    ids += [f"agent-dev-{a % agents + 1:03d}:test-{a // agents}" for a in range(rest)]
    return ids


SUITE = CheckSuite(PolicyResult(True), LintResult(True), DryRunResult(True, message="parses"), all_passed=True)


@dataclass(frozen=True)
class _Entry:
    result: RankedProposal
    critique: Critique
    score: PeerScore
    calls: tuple[CallRecord, ...]


def _entry(specs: tuple[AgentSpec, ...], rank: int, ids: list[str], extra: str, created_at_ms: int) -> _Entry:
    """The proposal ranked `rank`: every test passes for the winner, a third fail for the others."""
    author, agents = specs[rank - 1].agent_id, len(specs)
    content = _code(author, rank, extra)
    outcomes = tuple(
        UnitOutcome(t, True) if rank == 1 or (j + rank) % 3 else UnitOutcome(t, False, f"expected {j}, got {j + rank}")
        for j, t in enumerate(ids)
    )
    group = tuple(s.agent_id for s in specs[:2]) if rank <= 2 else (author,)
    evidence = ProposalEvidence(author, 1, outcomes, agreement=len(group) * 3, group=group)
    critic = specs[rank % agents].agent_id
    reason = f"passes {sum(o.passed for o in outcomes)}/{len(outcomes)} tests {extra}".strip()
    if rank < agents:
        reason += f"; ahead of {specs[rank].agent_id} on specification tests"
    revisions = (content.replace("# variant", "# first try, variant"), content)
    result = RankedProposal(
        proposal=Proposal(author, Role.DEV, content, created_at_ms, revisions),
        checks=SUITE,
        peer_score=(9 - rank) / 10,
        score=1 - rank / 100,
        rank=rank,
        usage=Usage(1200, 480),
        rank_reason=reason,
        evidence=evidence,
    )
    calls = tuple(
        CallRecord(author, stage, 0 if stage is Stage.PROPOSE else 1, Usage(300, 120), 800.0, "fake-llm", 0.7, 0)
        for stage in (Stage.PROPOSE, Stage.CRITIQUE, Stage.REVISE, Stage.SCORE)
    )
    critique = Critique(critic, author, 1, f"{critic} on {author}: check the bounds. {extra}")
    return _Entry(result, critique, PeerScore(critic, author, 9 - rank, f"clear {extra}"), calls)


def ranked_deliberation(
    task_id: str, *, agents: int = 3, tests: int = 12, hostile: str = "", created_at_ms: int = 1_700_000_000_000
) -> Deliberation:
    """A COMPLETED record: agent-dev-001 wins, every proposal was revised twice, `hostile` text is in the last
    author's proposal, critique and rank reason."""
    specs = tuple(AgentSpec(f"agent-dev-{i + 1:03d}", Role.DEV, "fake-llm", 0.7, i, 256) for i in range(agents))
    ids = _tests(agents, tests)
    entries = [
        _entry(specs, rank, ids, hostile if rank == agents else "", created_at_ms) for rank in range(1, agents + 1)
    ]
    results = tuple(e.result for e in entries)
    task = TaskSpec(task_id, "Implement `clamp(x, low, high)`.\n>>> clamp(5, 0, 10)\n5\n", Role.DEV, 1, agents)
    return Deliberation(
        task=task,
        agents=specs,
        status=DeliberationStatus.COMPLETED,
        created_at_ms=created_at_ms,
        progress=Progress(
            proposals={r.proposal.author_id: r.proposal for r in results},
            critiques=tuple(e.critique for e in entries),
            peer_scores=tuple(e.score for e in entries),
            calls=tuple(c for e in entries for c in e.calls),
            stages_done=6,
            evidence={r.proposal.author_id: r.evidence for r in results if r.evidence},
            evidence_log=tuple(r.evidence for r in results if r.evidence),
            rounds_run=1,
            stop_reason="all 1 rounds ran",
        ),
        stage="score",
        round=1,
        results=results,
        winner_id=specs[0].agent_id,
        started_at_ms=created_at_ms,
        finished_at_ms=created_at_ms + 4200,
        quorum=1,
        source="grpc",
    )
