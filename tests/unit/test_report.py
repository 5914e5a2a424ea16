"""The demo's Markdown report: each check's findings stand under that check; each proposal's evidence and rank
reason, and the rounds that ran, under its subtask."""

from __future__ import annotations

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.entrypoints.report import _checks, _subtask


def test_lint_findings_follow_the_lint_line() -> None:
    result = pb.DeliberationResult(
        checks=pb.CheckSuite(
            policy=pb.PolicyResult(passed=True),
            lint=pb.LintResult(passed=False, error_count=1, errors=["python block 1 line 22: F821 Undefined name"]),
            dryrun=pb.DryRunResult(passed=True, message="no YAML, JSON, shell or Dockerfile blocks to validate"),
        )
    )
    lines = _checks(result)
    assert lines[1] == "- lint: FAILED (1 errors, 0 warnings)"
    assert lines[2] == "  - python block 1 line 22: F821 Undefined name"
    assert lines[3] == "- dry-run (YAML/JSON/shell): passed: no YAML, JSON, shell or Dockerfile blocks to validate"


SUBTASK = pb.PlanSubtaskInfo(subtask_id="dev-1", role="DEV", title="parse durations", state="COMPLETED")


def evidenced(author: str, rank: int, evidence: pb.ProposalEvidence | None, reason: str) -> pb.DeliberationResult:
    return pb.DeliberationResult(
        proposal=pb.Proposal(author_id=author, content="```python\ndef f(): ...\n```"),
        rank=rank,
        rank_reason=reason,
        evidence=evidence,
    )


WINNER = evidenced(
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
LOSER = evidenced(
    "agent-dev-001",
    2,
    pb.ProposalEvidence(
        round=1,
        spec_passed=1,
        spec_total=3,
        agent_tests_total=6,
        group=["agent-dev-001"],
        failures=[f"example-{i}: expected {i},\n got ```{i}```" for i in range(5)],
    ),
    "passes 1/3 specification tests",
)


def subtask_report(**fields: object) -> list[str]:
    base: dict[str, object] = {
        "task_id": "d-1",
        "status": pb.DELIBERATION_STATUS_COMPLETED,
        "winner_id": "agent-dev-002",
        "results": [WINNER, LOSER],
        "rounds": 2,
        "rounds_run": 1,
        "stop_reason": "evidence decided: agent-dev-002 passes all 3 specification tests",
    }
    return _subtask(SUBTASK, pb.GetDeliberationResultResponse(**(base | fields)))


def section(lines: list[str], heading: str) -> list[str]:
    """The lines of one proposal's section, from its `####` heading to the next one."""
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#### ")), len(lines))
    return lines[start:end]


def test_a_subtask_says_how_many_rounds_ran_why_they_stopped_and_why_the_winner_won() -> None:
    lines = subtask_report()
    assert lines[2].startswith(
        "Deliberation `d-1`: COMPLETED in 0.0s, 1 of at most 2 round(s) ran "
        "(evidence decided: agent-dev-002 passes all 3 specification tests), winner **agent-dev-002**"
    )
    assert lines[4] == (
        "Why it won: passes 3/3 specification tests; ahead of agent-dev-001 on specification tests (3/3 vs 1/3)"
    )


def test_each_proposal_shows_its_tests_passed_agreement_group_and_rank_reason() -> None:
    winner = section(subtask_report(), "#### #1 agent-dev-002")
    assert (
        "Rank reason: passes 3/3 specification tests; ahead of agent-dev-001 on specification tests (3/3 vs 1/3)"
        in winner
    )
    start = winner.index("Evidence:") + 2
    assert winner[start : start + 3] == [
        "- specification tests (task examples, acceptance tests): 3/3 passed (round 1)",
        "- agents' tests: 5/6 passed",
        "- agreement group: agent-dev-002, agent-dev-003 (score 10)",
    ]
    loser = section(subtask_report(), "#### #2 agent-dev-001")
    assert "Rank reason: passes 1/3 specification tests" in loser
    assert "- agreement group: agent-dev-001 (score 0)" in loser


def test_at_most_three_failing_tests_are_shown_in_a_block_their_output_cannot_close() -> None:
    loser = section(subtask_report(), "#### #2 agent-dev-001")
    start = loser.index("- failing tests (3 shown, 2 more not shown):")
    assert loser[start + 1 : start + 7] == [
        "",
        "````text",
        "example-0: expected 0, got ```0```",
        "example-1: expected 1, got ```1```",
        "example-2: expected 2, got ```2```",
        "````",
    ]
    assert not any("example-3" in line for line in loser)
    winner = section(subtask_report(), "#### #1 agent-dev-002")
    assert "- failing tests (1 shown):" in winner and "agent-dev-001/t2: AssertionError: 1 != 2" in winner


def test_a_proposal_whose_code_did_not_run_says_why() -> None:
    skipped = evidenced("agent-dev-001", 1, pb.ProposalEvidence(skipped="no sandbox: bwrap not found"), "not executed")
    lines = section(subtask_report(results=[skipped]), "#### #1")
    assert "- execution: not executed (no sandbox: bwrap not found)" in lines
    assert not any(line.startswith("- specification tests") for line in lines)
    lines = section(subtask_report(results=[evidenced("agent-dev-001", 1, None, "")]), "#### #1")
    assert "- execution: no evidence recorded" in lines


def test_the_acceptance_tests_the_agents_were_given_are_in_the_report() -> None:
    lines = subtask_report(acceptance_tests="from solution import f\nassert f(1) == 2\n")
    start = lines.index("<details><summary>Acceptance tests</summary>")
    assert lines[start + 2 : start + 6] == ["```python", "from solution import f", "assert f(1) == 2", "```"]
    assert "<details><summary>Acceptance tests</summary>" not in subtask_report()


def test_a_task_without_examples_or_tests_says_none_rather_than_zero_of_zero() -> None:
    bare = evidenced("agent-dev-001", 1, pb.ProposalEvidence(round=0), "checks 0.90")
    lines = section(subtask_report(results=[bare]), "#### #1")
    assert (
        "- specification tests (task examples, acceptance tests): none (no examples, no acceptance tests) (round 0)"
        in lines
    )
    assert "- agents' tests: none ran" in lines
    assert "- agreement group: none" in lines


def test_the_report_opens_with_the_cross_checks_then_the_winners_and_why_they_won() -> None:
    from orchestrator.entrypoints.report import render_report

    plan = pb.GetPlanResponse(
        plan_id="plan-1",
        story_id="story-1",
        approved_by="po",
        finished=True,
        subtasks=[SUBTASK],
        outcome="checked",
        cross_checks=[
            pb.PlanCrossCheck(
                kind="qa_on_dev",
                status="failed",
                passed=7,
                total=8,
                attempt=1,
                summary="QA tests on the DEV winner: 7/8 passed (agent-qa-001's tests on agent-dev-001)",
                details=["fails agent-qa-001:test-3: expected 0, got 1"],
            ),
            pb.PlanCrossCheck(kind="dev_follow_up", status="passed", summary="DEV follow-up: dev-1 deliberated again"),
            pb.PlanCrossCheck(
                kind="qa_on_dev",
                status="passed",
                passed=8,
                total=8,
                attempt=2,
                summary="QA tests on the DEV winner: 8/8 passed (after the DEV follow-up)",
            ),
        ],
        follow_up=pb.PlanFollowUp(subtask_id="dev-1", deliberation_id="plan-f", state="COMPLETED"),
    )
    result = pb.GetDeliberationResultResponse(task_id="d", winner_id="agent-dev-002", results=[WINNER])
    text = render_report({"plan": {"title": "T"}}, plan, {"dev-1": result, "plan-f": result}, 12.0)
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[:2] == ["## Cross-checks", "## Winners"]
    body = text.split("## Cross-checks", 1)[1].split("## Winners", 1)[0]
    assert "Outcome: **checked**" in body
    assert "- QA tests on the DEV winner: 7/8 passed" in body and "- DEV follow-up: dev-1" in body
    assert "- QA tests on the DEV winner: 8/8 passed (after the DEV follow-up)" in body
    winners = text.split("## Winners", 1)[1].split("## Subtasks", 1)[0]
    assert "passes 3/3 specification tests" in winners  # why it won
    assert "## DEV follow-up of dev-1" in text


def test_the_demo_creates_only_the_councils_of_its_plan_and_its_dev_subtask_names_a_module_with_tests() -> None:
    from orchestrator.domain.cross_checks import module_named
    from orchestrator.entrypoints.demo import plan_roles, sample_plan

    plan = sample_plan(None)
    assert plan_roles(plan) == ["DEV", "QA", "DEVOPS"]
    assert plan_roles({"roles": ["qa", "dev"]}) == ["QA", "DEV"]
    dev, qa, ops = plan["subtasks"]
    assert module_named(dev["title"], dev["description"]) == "textstats"
    assert dev["acceptance_tests"].count("assert ") >= 3
    assert qa["depends_on"] == ["dev-textstats"] and ops["depends_on"] == ["dev-textstats"]
