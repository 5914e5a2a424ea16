"""`orchestrator deliberate` output: the ranking with the evidence behind it, and why the winner won."""

from __future__ import annotations

import io

from rich.console import Console

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.entrypoints.cli_render import render_result, token_budget_label

CLEAN = pb.CheckSuite(policy=pb.PolicyResult(passed=True), lint=pb.LintResult(passed=True))


def ranked(author: str, rank: int, evidence: pb.ProposalEvidence | None, reason: str) -> pb.DeliberationResult:
    return pb.DeliberationResult(
        proposal=pb.Proposal(author_id=author, content=f"solution by {author}"),
        checks=CLEAN,
        score=0.9 - rank / 10,
        rank=rank,
        peer_score=0.5,
        rank_reason=reason,
        evidence=evidence,
    )


WINNER = ranked(
    "agent-dev-002",
    1,
    pb.ProposalEvidence(
        round=1,
        spec_passed=3,
        spec_total=3,
        agent_tests_passed=5,
        agent_tests_total=6,
        agreement=10,
        group=["agent-dev-002", "agent-dev-003"],
        failures=["agent-dev-001/t2: AssertionError: 1 != 2"],
    ),
    "passes 3/3 specification tests; ahead of agent-dev-001 on specification tests (3/3 vs 1/3)",
)
LOSER = ranked(
    "agent-dev-001",
    2,
    pb.ProposalEvidence(
        round=1,
        spec_passed=1,
        spec_total=3,
        agent_tests_passed=2,
        agent_tests_total=6,
        agreement=2,
        group=["agent-dev-001"],
        failures=[f"example-{i}: expected {i}, got 0" for i in range(5)],
    ),
    "passes 1/3 specification tests",
)


def render(
    response: pb.DeliberateResponse | pb.GetDeliberationResultResponse, *, full: bool = False, width: int = 220
) -> str:
    out = io.StringIO()
    render_result(Console(file=out, width=width, color_system=None), response, full=full)
    return out.getvalue()


def response(**fields: object) -> pb.DeliberateResponse:
    base: dict[str, object] = {
        "task_id": "t-1",
        "status": pb.DELIBERATION_STATUS_COMPLETED,
        "winner_id": "agent-dev-002",
        "results": [WINNER, LOSER],
        "rounds_run": 1,
        "stop_reason": "evidence decided: agent-dev-002 passes all 3 specification tests",
    }
    return pb.DeliberateResponse(**(base | fields))


def row_of(text: str, author: str) -> str:
    """The table row of `author`: it starts with the rank."""
    return next(
        line
        for line in text.splitlines()
        if line.split()[:1] != [] and line.split()[0].isdigit() and f" {author} " in line
    )


def test_each_proposal_row_shows_its_tests_passed_and_agreement_group() -> None:
    text = render(response())
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["rank", "agent"])
    assert lines[header - 1].split() == ["spec", "agent"]  # the evidence columns' two-line headers
    assert lines[header].split()[-4:] == ["revs", "tests", "tests", "group"]
    assert row_of(text, "agent-dev-002").split()[-5:] == ["0", "3/3", "5/6", "A", "(10)"]
    assert row_of(text, "agent-dev-001").split()[-5:] == ["0", "1/3", "2/6", "B", "(2)"]
    legend = (
        "agreement groups (pass the same agent tests): "
        "A = agent-dev-002, agent-dev-003 (score 10); B = agent-dev-001 (score 2)"
    )
    assert legend in text


def test_proposals_in_the_same_agreement_group_share_its_letter() -> None:
    partner = ranked("agent-dev-003", 2, WINNER.evidence, "agrees with agent-dev-002")
    text = render(response(results=[WINNER, partner, LOSER]))
    assert row_of(text, "agent-dev-003").split()[-2:] == ["A", "(10)"]
    assert row_of(text, "agent-dev-001").split()[-2:] == ["B", "(2)"]
    assert "A = agent-dev-002, agent-dev-003 (score 10); B = agent-dev-001 (score 2)" in text


def test_the_winner_says_why_it_won_and_the_others_their_rank_reason() -> None:
    text = render(response())
    assert (
        "why it won: passes 3/3 specification tests; ahead of agent-dev-001 on specification tests (3/3 vs 1/3)" in text
    )
    assert "  #2 agent-dev-001: passes 1/3 specification tests" in text


def test_the_rounds_run_and_why_they_stopped_are_printed() -> None:
    assert "rounds run: 1; stopped: evidence decided: agent-dev-002 passes all 3 specification tests" in render(
        response()
    )
    result = pb.GetDeliberationResultResponse(
        task_id="t-2",
        status=pb.DELIBERATION_STATUS_COMPLETED,
        results=[WINNER],
        rounds=2,
        rounds_run=2,
        stop_reason="all 2 rounds ran",
    )
    assert "rounds run: 2 of 2; stopped: all 2 rounds ran" in render(result)


def test_the_shown_proposals_list_at_most_three_failing_tests() -> None:
    text = render(response(), full=True)
    assert "  test failed: agent-dev-001/t2: AssertionError: 1 != 2" in text
    assert "  test failed: example-2: expected 2, got 0" in text
    assert "example-3" not in text
    assert "  … 2 more failing tests" in text
    assert "example-0" not in render(response())  # without --full only the winner's failures


def test_a_proposal_that_could_not_run_says_why_instead_of_counting_zero_tests() -> None:
    skipped = ranked("agent-dev-001", 1, pb.ProposalEvidence(skipped="no sandbox: bwrap not found"), "not executed")
    text = render(response(results=[skipped], winner_id="agent-dev-001"))
    assert row_of(text, "agent-dev-001").split()[-3:] == ["skipped", "skipped", "-"]
    assert "agreement groups" not in text
    assert "  not executed: no sandbox: bwrap not found" in text
    no_evidence = ranked("agent-dev-001", 1, None, "")
    assert row_of(render(response(results=[no_evidence])), "agent-dev-001").split()[-3:] == ["-", "-", "-"]


def test_untrusted_failure_output_stays_on_one_line_and_is_not_markup() -> None:
    hostile = ranked(
        "agent-dev-002", 1, pb.ProposalEvidence(spec_total=1, failures=["t1: [red]boom[/red]\n\x1b[2Jnext"]), "x"
    )
    text = render(response(results=[hostile]))
    assert "test failed: t1: [red]boom[/red]  [2Jnext" in text
    assert "\x1b" not in text


def test_in_an_80_column_terminal_ids_and_evidence_stay_whole_and_only_the_checks_wrap() -> None:
    text = render(response(), width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert row_of(text, "agent-dev-002").split()[:4] == ["1", "agent-dev-002", "0.800", "0.50"]
    assert row_of(text, "agent-dev-002").split()[-5:] == ["0", "3/3", "5/6", "A", "(10)"]


def test_councils_list_says_where_a_council_s_token_budget_comes_from() -> None:
    assert token_budget_label(None) == "service default"
    assert token_budget_label(0) == "unlimited"
    assert token_budget_label(25_000) == "25,000"
