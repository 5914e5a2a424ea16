"""Verification-first ranking: evidence decides, peer opinion only separates otherwise equal proposals.

Proposals are ordered by these keys, each one deciding only among proposals equal on every key before it:

1. policy: no policy violation (a leaked secret, `rm -rf /`...) before any violation;
2. answers the task: its solution parses and defines every function and class the task names, before one that
   does not (never a winner that does not parse while one that does exists);
3. specification: passes every test of the specification (the task's examples and the client's acceptance tests)
   before failing any, then more of them passed;
4. behaviour: the size of its behaviour group (solutions giving the same values on the test designer's probes and
   the same verdicts on the specification: MBR-exec, AlphaCode's clustering), larger first;
5. agreement: the CodeT dual-agreement score on the agents' own tests, where proposals still carry tests;
6. static checks: `CheckSuite.score` (lint, parse/dry-run, policy, requirements, manifests);
7. peers: the mean peer score (blind review, self-scores excluded), asked only when keys 1-6 leave a tie at the top
   between proposals that behave differently;
8. the author id, so the same inputs always give the same order.

`score` is not the sort key: it stays the documented blend of peer and check scores (domain/scoring.py), a
summary for humans. Every result carries `rank_reason`: its evidence, and the key on which it is ahead of the
proposal ranked just below it. Without execution evidence (no sandbox, no Python code, no tests) keys 2 and 3
are equal for everyone and the ranking falls back to checks, then peers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from orchestrator.domain.evidence import ProposalEvidence, Specification, UnitSource
from orchestrator.domain.model import CheckSuite, Critique, PeerScore, Proposal, RankedProposal, Usage
from orchestrator.domain.scoring import NO_PEER_SCORE, blend, peer_score


@dataclass(frozen=True)
class _Entry:
    proposal: Proposal
    suite: CheckSuite
    evidence: ProposalEvidence | None
    spec_passed: int
    spec_total: int
    peer: float
    asks_for_solution: bool = True

    @property
    def spec_all(self) -> bool:
        return self.spec_total > 0 and self.spec_passed == self.spec_total

    @property
    def agreement(self) -> int:
        return self.evidence.agreement if self.evidence else 0

    @property
    def answers(self) -> bool:
        """Has a solution that parses and defines what the task names. Without execution evidence (no sandbox) it
        is not known and taken as yes; a proposal without any Python solution is a no. A task whose proposals are
        not the solution (QA's tests, DEVOPS's manifests) does not ask it."""
        if self.evidence is None or not self.asks_for_solution:
            return True
        if not self.evidence.solution_found:
            return False
        return bool(self.evidence.skipped) or self.evidence.defines_task

    @property
    def behaviour(self) -> int:
        """A solution that does not answer the task has no behaviour worth a vote: its group never lifts it."""
        if self.evidence is None or not self.answers:
            return 0
        return len(self.evidence.behaviour_group)

    def evidence_key(self) -> tuple[object, ...]:
        return (
            not self.suite.policy.passed,
            not self.answers,
            not self.spec_all,
            -self.spec_passed,
            -self.behaviour,
            -self.agreement,
            -round(self.suite.score, 6),
        )

    def key(self) -> tuple[object, ...]:
        return (*self.evidence_key(), -self.peer, self.proposal.author_id)


def _entry(p: Proposal, suite: CheckSuite, ev: ProposalEvidence | None, spec: Specification, peer: float) -> _Entry:
    passed, total = ev.counts(spec.units, UnitSource.EXAMPLE) if ev else (0, 0)
    a_passed, a_total = ev.counts(spec.units, UnitSource.ACCEPTANCE) if ev else (0, 0)
    return _Entry(p, suite, ev, passed + a_passed, total + a_total, peer, spec.asks_for_solution)


def _describe(e: _Entry) -> str:
    parts = []
    if not e.suite.policy.passed:
        parts.append("policy violation")
    if e.evidence is not None and e.evidence.skipped:
        parts.append(f"not executed ({e.evidence.skipped})")
    elif e.spec_total:
        parts.append(f"passes {e.spec_passed}/{e.spec_total} specification tests")
    if not e.answers:
        parts.append("does not parse or define what the task names")
    if e.evidence is not None and e.evidence.behaviour_group:
        parts.append(f"behaves like {len(e.evidence.behaviour_group)} ({', '.join(e.evidence.behaviour_group)})")
    if e.evidence is not None and e.evidence.group and e.agreement:
        parts.append(f"agreement {e.agreement} (group of {len(e.evidence.group)})")
    parts.append(f"checks {e.suite.score:.2f}")
    parts.append(f"peers {e.peer:.2f}" if e.peer != NO_PEER_SCORE else "no peer score")
    return ", ".join(parts)


def _ahead_on(a: _Entry, b: _Entry) -> str:
    if a.suite.policy.passed != b.suite.policy.passed:
        return "policy (the next one has a violation)"
    if a.answers != b.answers:
        return "answering the task (the next one does not parse or define what the task names)"
    if a.spec_all != b.spec_all or a.spec_passed != b.spec_passed:
        return f"specification tests ({a.spec_passed}/{a.spec_total} vs {b.spec_passed}/{b.spec_total})"
    if a.behaviour != b.behaviour:
        split = a.evidence.split_by if a.evidence else ()
        where = f"; they differ on `{split[0]}`" if split else ""
        return f"behaviour (a group of {a.behaviour} vs {b.behaviour}{where})"
    if a.agreement != b.agreement:
        return f"agreement on the agents' tests ({a.agreement} vs {b.agreement})"
    if round(a.suite.score, 6) != round(b.suite.score, 6):
        return f"static checks ({a.suite.score:.2f} vs {b.suite.score:.2f})"
    if a.peer != b.peer:
        return f"peer score ({a.peer:.2f} vs {b.peer:.2f})"
    return "author id (equal on all evidence)"


def evidence_decides(
    proposals: Sequence[Proposal],
    checks: Mapping[str, CheckSuite],
    evidence: Mapping[str, ProposalEvidence],
    spec: Specification,
) -> bool:
    """Whether the evidence alone (keys 1-6) leaves one proposal, or one behaviour group, on top: peer scores could
    not change the winner, or only for one that behaves the same."""
    if len(proposals) < 2:
        return True
    entries = sorted(
        (_entry(p, checks[p.author_id], evidence.get(p.author_id), spec, NO_PEER_SCORE) for p in proposals),
        key=_Entry.key,
    )
    top = [e for e in entries if e.evidence_key() == entries[0].evidence_key()]
    if len(top) == 1:
        return True
    groups = {e.evidence.behaviour_group if e.evidence else () for e in top}
    return len(groups) == 1 and bool(next(iter(groups)))


def rank_by_evidence(
    proposals: Sequence[Proposal],
    checks: Mapping[str, CheckSuite],
    scores: Sequence[PeerScore],
    *,
    evidence: Mapping[str, ProposalEvidence] | None = None,
    spec: Specification | None = None,
    critiques: Sequence[Critique] = (),
    usage: Mapping[str, Usage] | None = None,
) -> tuple[RankedProposal, ...]:
    """Ranks proposals 1..n by the keys above; every proposal needs a CheckSuite, evidence is optional."""
    evidence, usage = evidence or {}, usage or {}
    spec = spec if spec is not None else Specification()  # an empty one is falsy, yet says what the task asks
    entries = sorted(
        (
            _entry(p, checks[p.author_id], evidence.get(p.author_id), spec, peer_score(scores, p.author_id))
            for p in proposals
        ),
        key=_Entry.key,
    )
    ranked = []
    for i, e in enumerate(entries):
        reason = _describe(e)
        if i + 1 < len(entries):
            reason += f"; ahead of {entries[i + 1].proposal.author_id} on {_ahead_on(e, entries[i + 1])}"
        p = e.proposal
        ranked.append(
            RankedProposal(
                proposal=p,
                checks=e.suite,
                peer_score=e.peer,
                score=blend(e.suite.score, e.peer),
                rank=i + 1,
                peer_scores=tuple(s for s in scores if s.target_id == p.author_id and s.scorer_id != p.author_id),
                critiques=tuple(c for c in critiques if c.target_id == p.author_id),
                usage=usage.get(p.author_id, Usage()),
            )
        )
        ranked[-1] = replace(ranked[-1], rank_reason=reason, evidence=e.evidence)
    return tuple(ranked)
