"""How proposals are scored and ranked.

score = PEER_WEIGHT * peer + CHECK_WEIGHT * checks, both in [0, 1]:
- `peer` is the mean of the scores (1..10) the *other* agents gave the proposal, mapped to [0, 1] by
  (mean - 1) / 9. Self-scores never count.
- `checks` is `CheckSuite.score`, the weighted result of the deterministic checks (see adapters/checks).
When nobody scored a proposal (peer review off, or every scorer failed) the score is the check score alone.

Ranking puts every proposal without policy violations (hard-coded secrets, `rm -rf /`, `curl | sh`...) above
every proposal with one, whatever the scores: peers may praise a proposal that leaks a credential, and a
council must not ship it over a clean alternative. Within each of the two groups the order is by score, then
check score, then peer score (all descending), then author id, so equal inputs always produce the same order.
A proposal with violations still ranks (and wins when no clean proposal exists); its score is not changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from orchestrator.domain.model import CheckSuite, Critique, PeerScore, Proposal, RankedProposal, Usage

PEER_WEIGHT = 0.6
CHECK_WEIGHT = 0.4
NO_PEER_SCORE = -1.0


def peer_score(scores: Iterable[PeerScore], author_id: str) -> float:
    """Mean peer score of `author_id` in [0, 1], or NO_PEER_SCORE when no peer scored it."""
    values = [s.score for s in scores if s.target_id == author_id and s.scorer_id != author_id]
    if not values:
        return NO_PEER_SCORE
    return (sum(values) / len(values) - 1.0) / 9.0


def blend(check_score: float, peer: float) -> float:
    if peer == NO_PEER_SCORE:
        return round(check_score, 6)
    return round(PEER_WEIGHT * peer + CHECK_WEIGHT * check_score, 6)


def rank(
    proposals: Sequence[Proposal],
    checks: Mapping[str, CheckSuite],
    scores: Sequence[PeerScore],
    critiques: Sequence[Critique] = (),
    usage: Mapping[str, Usage] | None = None,
) -> tuple[RankedProposal, ...]:
    """Ranks proposals 1..n, clean ones before any with a policy violation; every proposal needs a CheckSuite."""
    usage = usage or {}
    scored = []
    for p in proposals:
        peer = peer_score(scores, p.author_id)
        suite = checks[p.author_id]
        scored.append((blend(suite.score, peer), suite.score, peer, p, suite))
    scored.sort(key=lambda s: (not s[4].policy.passed, -s[0], -s[1], -s[2], s[3].author_id))
    return tuple(
        RankedProposal(
            proposal=p,
            checks=suite,
            peer_score=peer,
            score=total,
            rank=i,
            peer_scores=tuple(s for s in scores if s.target_id == p.author_id and s.scorer_id != p.author_id),
            critiques=tuple(c for c in critiques if c.target_id == p.author_id),
            usage=usage.get(p.author_id, Usage()),
        )
        for i, (total, _, peer, p, suite) in enumerate(scored, start=1)
    )
