"""The messages of one proposal and one agent call: a ranked result with its checks, evidence and usage, and the
per-call accounting. Built from the domain records only (see `mapping.py` for the requests and responses)."""

from __future__ import annotations

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.evidence import ProposalEvidence, is_probe
from orchestrator.domain.model import (
    CallRecord,
    CheckSuite,
    DryRunResult,
    LintResult,
    PolicyResult,
    Proposal,
    RankedProposal,
    Usage,
)
from orchestrator.domain.text import ellipsize


def usage_pb(usage: Usage) -> pb.TokenUsage:
    return pb.TokenUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def checks_pb(suite: CheckSuite) -> pb.CheckSuite:
    return pb.CheckSuite(
        policy=pb.PolicyResult(
            passed=suite.policy.passed, violations=list(suite.policy.violations), message=suite.policy.message
        ),
        lint=pb.LintResult(
            passed=suite.lint.passed,
            error_count=suite.lint.error_count,
            warning_count=suite.lint.warning_count,
            errors=list(suite.lint.errors),
        ),
        dryrun=pb.DryRunResult(
            passed=suite.dryrun.passed,
            output=suite.dryrun.output,
            exit_code=suite.dryrun.exit_code,
            message=suite.dryrun.message,
        ),
        additional_checks=[
            pb.CheckResult(
                check_type=c.check_type,
                passed=c.passed,
                score=c.score,
                message=c.message,
                details=dict(c.details),
            )
            for c in suite.additional
        ],
        all_passed=suite.all_passed,
    )


def result_pb(r: RankedProposal) -> pb.DeliberationResult:
    p = r.proposal
    return pb.DeliberationResult(
        proposal=pb.Proposal(
            author_id=p.author_id,
            author_role=p.author_role.value,
            content=p.content,
            created_at_ms=p.created_at_ms,
            revisions=list(p.revisions),
        ),
        checks=checks_pb(r.checks),
        score=r.score,
        rank=r.rank,
        peer_score=r.peer_score,
        check_score=r.checks.score,
        peer_scores=[
            pb.PeerScore(scorer_id=s.scorer_id, target_id=s.target_id, score=s.score, rationale=s.rationale)
            for s in r.peer_scores
        ],
        critiques=[
            pb.Critique(critic_id=c.critic_id, target_id=c.target_id, round=c.round, text=c.text) for c in r.critiques
        ],
        usage=usage_pb(r.usage),
        rank_reason=r.rank_reason,
        evidence=evidence_pb(r.evidence),
    )


def evidence_pb(e: ProposalEvidence | None) -> pb.ProposalEvidence | None:
    if e is None:
        return None
    spec_passed, spec_total, agent_passed, agent_total = e.tally()
    return pb.ProposalEvidence(
        round=e.round,
        spec_passed=spec_passed,
        spec_total=spec_total,
        agent_tests_passed=agent_passed,
        agent_tests_total=agent_total,
        agreement=e.agreement,
        group=list(e.group),
        failures=[ellipsize(f"{o.test_id}: {o.failure}", 500) for o in e.failures(limit=10) if not is_probe(o.test_id)],
        skipped=e.skipped,
        behaviour_group=list(e.behaviour_group),
        split_by=[ellipsize(call, 300) for call in e.split_by[:10]],
        defines_task=e.defines_task,
    )


def partial_results(d: Deliberation) -> list[pb.DeliberationResult]:
    """The ranked results once it has ended; while it runs, the current proposals, unranked (rank 0)."""
    if d.results or d.status.finished:
        return [result_pb(r) for r in d.results]
    return [result_pb(unranked(p)) for _, p in sorted(d.progress.proposals.items())]


_NOT_CHECKED = CheckSuite(PolicyResult(False, (), "not checked yet"), LintResult(False), DryRunResult(False))


def unranked(p: Proposal) -> RankedProposal:
    return RankedProposal(p, _NOT_CHECKED, peer_score=-1.0, score=0.0, rank=0)


def call_pb(c: CallRecord) -> pb.CallRecord:
    return pb.CallRecord(
        agent_id=c.agent_id,
        stage=c.stage.value,
        round=c.round,
        prompt_tokens=c.usage.prompt_tokens,
        completion_tokens=c.usage.completion_tokens,
        latency_ms=c.latency_ms,
        model=c.model,
        temperature=c.temperature,
        seed=c.seed,
        ok=c.ok,
        error=c.error,
    )


def failures_pb(d: Deliberation) -> list[pb.AgentFailure]:
    return [
        pb.AgentFailure(agent_id=f.agent_id, stage=f.stage.value, round=f.round, error=f.error)
        for f in d.progress.failures
    ]
