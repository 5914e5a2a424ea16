"""A plan checks itself, in the real bubblewrap sandbox: QA's tests run on DEV's final proposals, a DEV winner that
fails them is deliberated again once with the failing tests as acceptance tests, the cross-check runs again, and
the plan ends `checked`. The councils are the fake LLM playing scripted DEV, QA and DEVOPS agents."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from orchestrator.adapters.checks.cross_checks import SandboxCrossChecker
from orchestrator.adapters.checks.execution import ExecutionVerifier
from orchestrator.adapters.sandbox import BwrapSandbox
from orchestrator.application.commands import CreateCouncil
from orchestrator.application.plan_checks import follow_up_id
from orchestrator.application.service import Orchestrator
from orchestrator.compose import compose
from orchestrator.domain.cross_checks import CheckKind, CheckStatus, PlanOutcome
from orchestrator.domain.plans import ApprovedPlan, PlanDispatch
from orchestrator.testing.fakes import FakeGateway, InMemoryDeliberationStore, fake_options, fake_ports
from orchestrator.testing.plan_task import PEERS, QA_FAILS_EVERYTHING, SCRIPTED, approved_plan
from orchestrator.testing.sandbox_required import working_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PLAN = approved_plan("plan-checks-1")


@pytest.fixture(scope="module")
async def sandbox() -> BwrapSandbox:
    return await working_sandbox()


async def run_plan(
    sandbox: BwrapSandbox, plan: ApprovedPlan, scripted: dict[str, str] | None = None
) -> tuple[PlanDispatch, Orchestrator, InMemoryDeliberationStore]:
    store = InMemoryDeliberationStore()
    fake = FakeGateway(scripted=scripted or dict(SCRIPTED), score_markers=dict(PEERS))
    ports = fake_ports(fake, records=store, verifier=ExecutionVerifier(sandbox))
    ports = replace(ports, cross_checker=SandboxCrossChecker(sandbox))
    options = fake_options(512, num_agents=2, plans=True, outbound_events=True, dispatch_retry_s=0.05)
    app = compose(ports, options).orchestrator
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    assert app.dispatcher is not None
    await app.dispatcher.dispatch(plan)
    done = await app.dispatcher.wait_finished(plan.plan_id)
    assert done is not None
    return done, app, store


async def test_qa_tests_catch_the_dev_winner_the_follow_up_fixes_it_and_the_plan_ends_checked(
    sandbox: BwrapSandbox,
) -> None:
    done, app, store = await run_plan(sandbox, PLAN)
    assert done.finished and done.outcome is PlanOutcome.CHECKED, [(c.summary, c.details) for c in done.checks]
    first, follow, again, ops = done.checks
    assert (first.kind, first.status, first.passed, first.total) == (CheckKind.QA_ON_DEV, CheckStatus.FAILED, 2, 4)
    assert first.target_winner == "agent-dev-001" and first.chosen == "agent-qa-001"
    assert first.summary.startswith("QA tests on the DEV winner: 2/4 passed")
    # The suite that fails on every DEV proposal counts for nothing; the good one also rejects the wrong proposal.
    assert any(
        "agent-qa-002: 0/0 tests pass on the DEV winner" in d and "1 failing on every" in d for d in first.details
    )
    assert any("agent-qa-001: 2/4" in d and "rejects 1/1 DEV proposals shown wrong" in d for d in first.details)
    assert follow.kind is CheckKind.DEV_FOLLOW_UP and follow.status is CheckStatus.PASSED
    assert done.follow_up is not None and done.follow_up.winner_id == "agent-dev-002"
    assert "test_empty_text_has_no_words" in done.follow_up.acceptance_tests
    assert "word_count('a b') == 2" in done.follow_up.acceptance_tests
    assert (again.status, again.passed, again.total, again.attempt) == (CheckStatus.PASSED, 4, 4, 2)
    assert again.chosen == "agent-qa-001" and again.target_winner == "agent-dev-002"
    assert (ops.kind, ops.status, ops.passed, ops.total) == (CheckKind.DEVOPS_ON_DEV, CheckStatus.PASSED, 1, 1)
    rerun = store.records[follow_up_id(PLAN.plan_id, "dev")]
    assert rerun.task.metadata["follow_up_of"] == done.subtasks[0].deliberation_id
    assert "test_runs_of_spaces_separate_one_word" in rerun.task.acceptance_tests
    completed = [json.loads(e.payload) for e in store.outbox.values() if e.subject == "orchestration.plan.completed"]
    assert len(completed) == 1 and completed[0]["payload"]["outcome"] == "checked"
    assert [c["status"] for c in completed[0]["payload"]["cross_checks"]] == ["failed", "passed", "passed", "passed"]
    _, runs = await app.get_plan(PLAN.plan_id)
    assert follow_up_id(PLAN.plan_id, "dev") in runs


async def test_without_a_follow_up_budget_the_plan_ends_failed_checks(sandbox: BwrapSandbox) -> None:
    tiny = tuple(replace(s, token_budget=1) for s in PLAN.subtasks)
    plan = replace(PLAN, plan_id="plan-checks-2", subtasks=tiny)
    done, _, store = await run_plan(sandbox, plan)
    assert done.outcome is PlanOutcome.FAILED_CHECKS
    assert done.follow_up is not None and done.follow_up.state == "SKIPPED"
    assert "token budget" in done.follow_up.error
    assert follow_up_id(plan.plan_id, "dev") not in store.records


async def restart_after_the_decision(
    sandbox: BwrapSandbox, plan_id: str, fake: FakeGateway
) -> tuple[PlanDispatch, PlanDispatch, InMemoryDeliberationStore]:
    """Runs the plan, then a new application resumes it from the record as stored between the decision on the
    follow-up and its start (the first check, the follow-up not yet created). Returns (first run, resumed, store)."""
    done, _, store = await run_plan(sandbox, replace(PLAN, plan_id=plan_id))
    follow = done.follow_up
    assert follow is not None
    decided = replace(follow, state="DISPATCHED", winner_id="")
    interrupted = replace(done, checks=done.checks[:1], follow_up=decided, outcome=None)
    restarted = InMemoryDeliberationStore()
    restarted.records = {k: v for k, v in store.records.items() if k != follow.deliberation_id}
    restarted.dispatches = {plan_id: interrupted}
    ports = replace(
        fake_ports(fake, records=restarted, verifier=ExecutionVerifier(sandbox)),
        cross_checker=SandboxCrossChecker(sandbox),
    )
    app = compose(ports, fake_options(512, num_agents=2, plans=True, dispatch_retry_s=0.05)).orchestrator
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    await app.create_council(CreateCouncil(role="QA"))
    assert app.dispatcher is not None
    assert await app.dispatcher.resume() == [plan_id]
    again = await app.dispatcher.wait_finished(plan_id)
    assert again is not None
    return done, again, restarted


async def test_a_plan_interrupted_after_deciding_on_its_follow_up_finishes_it_after_a_restart(
    sandbox: BwrapSandbox,
) -> None:
    fake = FakeGateway(scripted=dict(SCRIPTED), score_markers=dict(PEERS))
    done, again, restarted = await restart_after_the_decision(sandbox, "plan-checks-3", fake)
    assert again.outcome is PlanOutcome.CHECKED
    assert [c.kind for c in again.checks] == [c.kind for c in done.checks]
    assert done.follow_up is not None and done.follow_up.deliberation_id in restarted.records
    assert again.follow_up == done.follow_up


async def test_a_follow_up_that_fails_leaves_the_plan_failed_checks_and_says_why(sandbox: BwrapSandbox) -> None:
    every_dev = {"agent-dev-001", "agent-dev-002", "agent-dev-003"}
    fake = FakeGateway(scripted=dict(SCRIPTED), score_markers=dict(PEERS), failing=every_dev)
    _, again, _ = await restart_after_the_decision(sandbox, "plan-checks-4", fake)
    assert again.outcome is PlanOutcome.FAILED_CHECKS
    assert again.follow_up is not None and again.follow_up.state == "FAILED" and "FAILED" in again.follow_up.error
    kinds = [(c.kind, c.status) for c in again.checks]
    assert kinds == [
        (CheckKind.QA_ON_DEV, CheckStatus.FAILED),
        (CheckKind.DEV_FOLLOW_UP, CheckStatus.FAILED),
        (CheckKind.DEVOPS_ON_DEV, CheckStatus.PASSED),
    ]


async def test_qa_tests_that_fail_on_every_dev_proposal_send_no_follow_up_and_leave_the_plan_unchecked(
    sandbox: BwrapSandbox,
) -> None:
    """Tests that fail on every DEV proposal say nothing about any of them (the embedded model's QA agents wrote
    `word_count(text, 3)` for a one-argument function): no follow-up is deliberated against them."""
    wrong_qa = dict(SCRIPTED) | {"agent-qa-001": QA_FAILS_EVERYTHING, "agent-qa-002": QA_FAILS_EVERYTHING}
    done, _, store = await run_plan(sandbox, replace(PLAN, plan_id="plan-checks-void"), wrong_qa)
    qa_check = next(c for c in done.checks if c.kind is CheckKind.QA_ON_DEV)
    assert qa_check.status is CheckStatus.NOT_RUN
    assert "failed on every DEV proposal: they say nothing" in qa_check.summary
    assert done.follow_up is None and follow_up_id("plan-checks-void", "dev") not in store.records
