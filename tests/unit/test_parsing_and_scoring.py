"""Reading model output and turning checks and peer scores into a ranking."""

from __future__ import annotations

import time

from orchestrator.domain.model import CheckSuite, DryRunResult, LintResult, PeerScore, PolicyResult, Proposal, Role
from orchestrator.domain.parsing import parse_critiques, parse_scores, strip_proposal_wrapper, strip_reasoning
from orchestrator.domain.scoring import NO_PEER_SCORE, blend, peer_score, rank

PEERS = ["agent-dev-002", "agent-dev-003"]


def test_think_blocks_are_removed_including_an_unterminated_one() -> None:
    assert strip_reasoning("<think>plan it</think>\nThe answer") == "The answer"
    assert strip_reasoning("Answer first <think>never closed") == "Answer first"


def test_scores_are_read_from_bare_fenced_or_prose_wrapped_json() -> None:
    bare = '{"scores": [{"target": "agent-dev-002", "score": 7, "rationale": "ok"}]}'
    fenced = f"Here you go:\n```json\n{bare}\n```\nbye"
    prose = f"<think>hmm</think> My scores are {bare} as requested."
    for text in (bare, fenced, prose):
        assert parse_scores(text, PEERS) == {"agent-dev-002": (7.0, "ok")}


def test_scores_fall_back_to_lines_and_are_clamped_and_limited_to_peers() -> None:
    text = "agent-dev-002: 12/10\nagent-dev-003 - score 4\nagent-dev-001: 10"
    assert parse_scores(text, PEERS) == {"agent-dev-002": (10.0, ""), "agent-dev-003": (4.0, "")}


def test_critiques_of_self_or_unknown_authors_are_dropped() -> None:
    text = (
        '{"critiques": [{"target": "agent-dev-001", "critique": "me"}, {"target": "agent-dev-003", "critique": "x"}]}'
    )
    assert parse_critiques(text, PEERS) == {"agent-dev-003": "x"}


def test_unparseable_output_gives_nothing_rather_than_an_error() -> None:
    assert parse_scores("I refuse.", PEERS) == {}
    assert parse_critiques("{broken json", PEERS) == {}


def suite(score: float, policy: PolicyResult | None = None) -> CheckSuite:
    policy = policy or PolicyResult(True)
    return CheckSuite(policy, LintResult(True), DryRunResult(True), (), policy.passed, score)


def test_self_scores_never_count_and_no_scores_means_checks_alone() -> None:
    scores = [PeerScore("a", "a", 10), PeerScore("b", "a", 4)]
    assert peer_score(scores, "a") == (4 - 1) / 9
    assert peer_score(scores, "b") == NO_PEER_SCORE
    assert blend(0.5, NO_PEER_SCORE) == 0.5
    assert blend(1.0, 1.0) == 1.0


def test_ranking_is_by_blended_score_with_deterministic_ties() -> None:
    proposals = [Proposal(x, Role.DEV, x, 0) for x in ("c", "a", "b")]
    checks = {"a": suite(0.5), "b": suite(0.5), "c": suite(0.9)}
    scores = [PeerScore("a", "c", 2), PeerScore("b", "c", 2), PeerScore("c", "a", 8), PeerScore("c", "b", 8)]
    ranked = rank(proposals, checks, scores)
    assert [(r.proposal.author_id, r.rank) for r in ranked] == [("a", 1), ("b", 2), ("c", 3)]
    assert ranked[0].score == round(0.6 * 7 / 9 + 0.4 * 0.5, 6)
    assert rank(list(reversed(proposals)), checks, scores) == ranked


def test_an_echoed_proposal_wrapper_is_removed() -> None:
    assert strip_proposal_wrapper('<proposal author="agent-dev-001">\nbody\n</proposal>') == "body"
    assert strip_proposal_wrapper("<proposal>unterminated body") == "unterminated body"
    assert strip_proposal_wrapper("plain text") == "plain text"


def test_a_proposal_with_a_policy_violation_ranks_below_every_clean_one() -> None:
    proposals = [Proposal(x, Role.DEV, x, 0) for x in ("leaky", "clean", "weak")]
    leaky = suite(0.9, PolicyResult(False, ("hardcoded-secret: PASSWORD = <redacted, 8 chars>",)))
    checks = {"leaky": leaky, "clean": suite(0.5), "weak": suite(0.1)}
    # Peers love the leaky proposal: it has the best blended score by far, and still comes last.
    scores = [PeerScore(s, "leaky", 10) for s in ("clean", "weak")]
    scores += [PeerScore(s, t, 2) for s in ("leaky", "weak", "clean") for t in ("clean", "weak") if s != t]
    ranked = rank(proposals, checks, scores)
    assert ranked[2].score > ranked[0].score
    assert [(r.proposal.author_id, r.rank) for r in ranked] == [("clean", 1), ("weak", 2), ("leaky", 3)]


def test_when_every_proposal_violates_policy_the_best_score_still_wins() -> None:
    proposals = [Proposal(x, Role.DEV, x, 0) for x in ("a", "b")]
    bad = PolicyResult(False, ("rm-rf-root: rm -rf /",))
    checks = {"a": suite(0.2, bad), "b": suite(0.7, bad)}
    assert [r.proposal.author_id for r in rank(proposals, checks, [])] == ["b", "a"]


def test_only_a_real_proposal_tag_is_unwrapped() -> None:
    assert strip_proposal_wrapper("<proposals-table>\n| a |") == "<proposals-table>\n| a |"
    assert strip_proposal_wrapper('<PROPOSAL author="x">body</Proposal>') == "body"


def test_unwrapping_long_blank_runs_takes_linear_time() -> None:
    text = '<proposal author="agent-dev-001">start' + " " * 200_000 + "end"
    started = time.perf_counter()
    assert strip_proposal_wrapper(text) == "start" + " " * 200_000 + "end"
    assert time.perf_counter() - started < 0.5
