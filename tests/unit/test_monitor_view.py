"""`orchestrator monitor` and `orchestrator watch`: the LLM and sandbox status, the verify stage, and the evidence
on a deliberation's final update, rendered from the service's messages (no server)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.entrypoints.monitor import deliberations_table, snapshot, status_line, update_lines


class FakeClient:
    """What `snapshot` calls on the orchestrator client, answering with fixed messages."""

    def __init__(self, status: pb.GetStatusResponse, listing: pb.ListDeliberationsResponse) -> None:
        self._status, self._listing = status, listing

    def status(self) -> pb.GetStatusResponse:
        return self._status

    def list_deliberations(self, page_size: int) -> pb.ListDeliberationsResponse:
        return self._listing


def text_of(renderable: Any, width: int = 160) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


def test_the_once_snapshot_shows_the_llm_and_sandbox_status() -> None:
    status = pb.GetStatusResponse(
        status="SERVING", llm_status="SERVING", sandbox_status="available (bubblewrap on Ray workers)"
    )
    text = text_of(snapshot(FakeClient(status, pb.ListDeliberationsResponse()), 5))
    assert "LLM SERVING  sandbox available (bubblewrap on Ray workers)" in text


def test_an_unavailable_sandbox_is_shown_with_its_reason_and_warning_style() -> None:
    reason = "unavailable (bubblewrap): bwrap: No permissions to creating new namespace; execution checks are skipped"
    line = status_line(pb.GetStatusResponse(status="SERVING", llm_status="NOT_SERVING", sandbox_status=reason))
    assert line.plain.splitlines()[-1] == f"LLM NOT_SERVING  sandbox {reason}"
    styles = {line.plain[s.start : s.end]: str(s.style) for s in line.spans}
    assert styles == {"NOT_SERVING": "red", reason: "yellow"}
    unsafe = status_line(pb.GetStatusResponse(sandbox_status="UNSAFE: code runs without a sandbox (operator)"))
    assert {str(s.style) for s in unsafe.spans} == {"yellow", "bold red"}  # LLM UNKNOWN, sandbox UNSAFE
    assert unsafe.plain.endswith("LLM UNKNOWN  sandbox UNSAFE: code runs without a sandbox (operator)")


def test_the_verify_stage_after_a_revise_shows_its_round_like_critique_and_revise() -> None:
    listing = pb.ListDeliberationsResponse(
        deliberations=[
            pb.DeliberationSummary(task_id="d-verify0", current_stage="verify", current_round=0, rounds=2),
            pb.DeliberationSummary(task_id="d-verify1", current_stage="verify", current_round=1, rounds=2),
            pb.DeliberationSummary(task_id="d-revise1", current_stage="revise", current_round=1, rounds=2),
        ]
    )
    rows = [line for line in text_of(deliberations_table(listing)).splitlines() if "d-" in line]
    stage = {cells[0]: cells[3] for cells in ([c.strip() for c in row.strip("│").split("│")] for row in rows)}
    assert stage == {"d-verify0": "verify", "d-verify1": "verify r1/2", "d-revise1": "revise r1/2"}


def test_watch_prints_verify_steps_with_their_round() -> None:
    first = pb.DeliberationUpdate(status="IN_PROGRESS", progress_percent=30, current_step="verify", stage="verify")
    later = pb.DeliberationUpdate(
        status="IN_PROGRESS", progress_percent=70, current_step="verify", stage="verify", round=1
    )
    assert update_lines(first, "12:00:00") == ["12:00:00 IN_PROGRESS  30% verify"]
    assert update_lines(later, "12:00:01") == ["12:00:01 IN_PROGRESS  70% verify r1"]


def test_watch_prints_the_winner_with_its_evidence_rank_reason_and_the_stop_reason() -> None:
    winner = pb.DeliberationResult(
        proposal=pb.Proposal(author_id="agent-dev-002"),
        score=0.812,
        rank=1,
        rank_reason="passes 2/2 specification tests; ahead of agent-dev-001 on specification tests (2/2 vs 0/2)",
        evidence=pb.ProposalEvidence(
            spec_passed=2, spec_total=2, agent_tests_passed=3, agent_tests_total=4, agreement=6, group=["agent-dev-002"]
        ),
    )
    final = pb.DeliberationUpdate(
        status="COMPLETED",
        progress_percent=100,
        current_step="score",
        stage="score",
        round=1,
        winner_id="agent-dev-002",
        results=[winner],
        rounds_run=1,
        stop_reason="evidence decided: agent-dev-002 passes all 2 specification tests",
        tokens_spent=1834,
    )
    assert update_lines(final, "12:00:09") == [
        "12:00:09 COMPLETED   100% score",
        "  winner agent-dev-002 (score 0.812; spec 2/2, agents' tests 3/4, group agent-dev-002 (score 6))",
        "  why it won: passes 2/2 specification tests; ahead of agent-dev-001 on specification tests (2/2 vs 0/2)",
        "  rounds run: 1; stopped: evidence decided: agent-dev-002 passes all 2 specification tests",
        "  tokens spent: 1834 (no budget)",
    ]


def test_watch_explains_a_winner_whose_code_could_not_run() -> None:
    winner = pb.DeliberationResult(
        proposal=pb.Proposal(author_id="agent-dev-001"),
        rank=1,
        rank_reason="not executed (no sandbox), checks 0.90, peers 0.70",
        evidence=pb.ProposalEvidence(skipped="no sandbox"),
    )
    final = pb.DeliberationUpdate(
        status="COMPLETED", winner_id="agent-dev-001", results=[winner], stop_reason="all 1 rounds ran", rounds_run=1
    )
    lines = update_lines(final, "t")
    assert lines[1] == "  winner agent-dev-001 (score 0.000; not executed: no sandbox)"
    assert lines[2] == "  why it won: not executed (no sandbox), checks 0.90, peers 0.70"


def test_the_services_warnings_are_shown_a_line_each_in_warning_style() -> None:
    tokens = "AUTH_TOKENS_FILE /etc/orchestrator/tokens: the file is gone; still serving with the 2 tokens last read"
    certificate = "GRPC_TLS_CERT /etc/orchestrator/tls.crt expires in 6 days (2026-12-13T00:00:00+00:00)"
    status = pb.GetStatusResponse(status="SERVING", sandbox_status="available", warnings=[tokens, certificate])
    line = status_line(status)
    assert line.plain.splitlines()[-2:] == [f"warning: {tokens}", f"warning: {certificate}"]
    styles = {line.plain[s.start : s.end]: str(s.style) for s in line.spans}
    assert styles[f"warning: {tokens}"] == styles[f"warning: {certificate}"] == "bold yellow"
    text = text_of(snapshot(FakeClient(status, pb.ListDeliberationsResponse()), 5), width=200)
    assert f"warning: {tokens}" in text and f"warning: {certificate}" in text


def test_many_or_multi_line_warnings_stay_a_few_single_lines() -> None:
    status = pb.GetStatusResponse(warnings=[f"problem {i}\nwith a second line\x1b[31m" for i in range(8)])
    lines = status_line(status).plain.splitlines()
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 6 and warnings[-1] == "warning: 3 more (GetStatus lists them all)"
    assert all("\x1b" not in line for line in warnings) and warnings[0].startswith("warning: problem 0")
    assert status_line(pb.GetStatusResponse()).plain.count("warning") == 0
