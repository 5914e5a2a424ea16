"""The single cross-checks of a plan, each from the finished deliberations of two subtasks (domain/cross_checks.py).

`qa_on_dev` runs every QA proposal's tests on every final DEV proposal (through the CrossChecker port, in the
sandbox), ranks the QA proposals by that evidence and holds the DEV winner to the best one's tests. `devops_on_dev`
reads the DEVOPS winner's manifests for references to the DEV module.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from orchestrator.application.ports import CrossChecker
from orchestrator.domain.cross_checks import (
    CheckKind,
    CheckStatus,
    CrossCheck,
    module_named,
    qa_standings,
    void_tests,
)
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.evidence import is_spec_test, trim
from orchestrator.domain.model import DeliberationStatus, RankedProposal
from orchestrator.domain.plans import SubtaskRecord

MAX_DETAILS = 12


@dataclass(frozen=True)
class QaCheck:
    """A QA-on-DEV check and the code of the chosen QA proposal's tests that failed on the DEV winner."""

    check: CrossCheck
    failing_tests: tuple[str, ...] = ()


def completed(d: Deliberation | None) -> bool:
    return d is not None and d.status is DeliberationStatus.COMPLETED and bool(d.results)


def shown_wrong(r: RankedProposal) -> bool:
    """DEV's own evidence showed this proposal wrong: no solution, or a failing specification test."""
    e = r.evidence
    if e is None or (e.skipped and e.solution_found):
        return False
    if not e.solution_found:
        return True
    return any(not o.passed and is_spec_test(o.test_id) for o in e.outcomes)


def _not_run(kind: CheckKind, qa: SubtaskRecord, dev: SubtaskRecord, why: str, attempt: int = 1) -> QaCheck:
    label = "QA tests on the DEV winner" if kind is CheckKind.QA_ON_DEV else "DEVOPS manifests on the DEV module"
    summary = f"{label}: not run ({why})"
    check = CrossCheck(
        kind, qa.subtask.subtask_id, dev.subtask.subtask_id, CheckStatus.NOT_RUN, summary=summary, attempt=attempt
    )
    return QaCheck(check)


async def qa_on_dev(
    checker: CrossChecker,
    records: tuple[SubtaskRecord, SubtaskRecord],
    runs: tuple[Deliberation | None, Deliberation | None],
    *,
    attempt: int = 1,
    keep: str = "",
) -> QaCheck:
    """`records`/`runs`: the QA subtask and the DEV subtask, and their (final) deliberations. `keep`: the QA
    proposal chosen before (a re-run after the follow-up holds the new winner to the same tests)."""
    (qa, dev), (qa_run, dev_run) = records, runs
    if not completed(qa_run) or not completed(dev_run):
        return _not_run(CheckKind.QA_ON_DEV, qa, dev, "a subtask did not complete", attempt)
    assert qa_run is not None and dev_run is not None
    tests = {r.proposal.author_id: r.proposal.content for r in qa_run.results}
    solutions = {r.proposal.author_id: r.proposal.content for r in dev_run.results}
    ran = await checker.run_tests(tests, solutions)
    if ran.skipped:
        return _not_run(CheckKind.QA_ON_DEV, qa, dev, ran.skipped, attempt)
    wrong = frozenset(r.proposal.author_id for r in dev_run.results if shown_wrong(r))
    ranks = {r.proposal.author_id: r.rank for r in qa_run.results}
    standings = qa_standings(ran.tests, ran.outcomes, dev_run.winner_id, wrong, ranks)
    chosen = keep or next((s.author_id for s in standings if s.tests), "")
    if not chosen or not ran.tests.get(chosen):
        return _not_run(CheckKind.QA_ON_DEV, qa, dev, "no QA proposal holds Python tests", attempt)
    runs_of_chosen = ran.outcomes.get(chosen, {})
    void = void_tests(ran.tests[chosen], runs_of_chosen)
    on_winner = [o for o in runs_of_chosen.get(dev_run.winner_id, ()) if o.test_id not in void]
    if not on_winner:
        why = f"every test of {chosen} failed on every DEV proposal: they say nothing" if void else ""
        return _not_run(CheckKind.QA_ON_DEV, qa, dev, why or "no QA test ran on the DEV winner", attempt)
    code = {u.test_id: u.code for u in ran.tests[chosen]}
    failing = [o for o in on_winner if not o.passed]
    details = [f"QA ranking by these tests: {s.line()}" for s in standings]
    details += [f"fails {o.test_id}: {trim(o.failure, 200)}" for o in failing]
    check = _qa_check(records, (len(on_winner) - len(failing), len(on_winner)), chosen, dev_run.winner_id, attempt)
    check = replace(check, details=tuple(details[:MAX_DETAILS]))
    return QaCheck(check, tuple(code[o.test_id] for o in failing if o.test_id in code))


def _qa_check(
    records: tuple[SubtaskRecord, SubtaskRecord], counts: tuple[int, int], chosen: str, winner: str, attempt: int
) -> CrossCheck:
    (qa, dev), (passed, total) = records, counts
    after = ", after the DEV follow-up" if attempt > 1 else ""
    summary = f"QA tests on the DEV winner: {passed}/{total} passed ({chosen}'s tests on {winner}{after})"
    status = CheckStatus.PASSED if passed == total else CheckStatus.FAILED
    return CrossCheck(
        CheckKind.QA_ON_DEV,
        qa.subtask.subtask_id,
        dev.subtask.subtask_id,
        status,
        passed,
        total,
        summary,
        chosen=chosen,
        target_winner=winner,
        attempt=attempt,
    )


def devops_on_dev(
    checker: CrossChecker,
    records: tuple[SubtaskRecord, SubtaskRecord],
    runs: tuple[Deliberation | None, Deliberation | None],
) -> CrossCheck:
    """The DEVOPS winner's manifests against the DEV winner: each reference to the DEV module, matching or not."""
    (ops, dev), (ops_run, dev_run) = records, runs
    if not completed(ops_run) or not completed(dev_run):
        return _not_run(CheckKind.DEVOPS_ON_DEV, ops, dev, "a subtask did not complete").check
    assert ops_run is not None and dev_run is not None
    winner = ops_run.results[0]
    dev_winner = dev_run.results[0]
    module = module_named(dev.subtask.title, dev.subtask.description)
    refs = checker.references(winner.proposal.content, dev_winner.proposal.content, module)
    valid = "the manifests' own checks passed" if winner.checks.all_passed else "the manifests' own checks FAILED"
    if not refs:
        why = f"the manifests name nothing of the DEV module{f' `{module}`' if module else ''}; {valid}"
        return _not_run(CheckKind.DEVOPS_ON_DEV, ops, dev, why).check
    matched = sum(r.matches for r in refs)
    summary = f"DEVOPS manifests on the DEV module: {matched}/{len(refs)} references match ({valid})"
    return CrossCheck(
        CheckKind.DEVOPS_ON_DEV,
        ops.subtask.subtask_id,
        dev.subtask.subtask_id,
        CheckStatus.PASSED if matched == len(refs) else CheckStatus.FAILED,
        matched,
        len(refs),
        summary,
        tuple(r.line() for r in refs[:MAX_DETAILS]),
        winner.proposal.author_id,
        dev_winner.proposal.author_id,
    )
