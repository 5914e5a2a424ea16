"""The verify stage: every current proposal through the static checks and the execution checks, at once, and what
the protocol does with the findings (early stop, which authors need a revision).

Verify runs after propose and after every revise. Its findings are the record's evidence (per proposal and round),
go into the next critique and revise prompts, and decide the ranking (domain/ranking.py).

Before the first verify, when the task names what to define (a stub, or a signature in its prose), a test designer
(one call, the first agent at temperature 0) writes probes: calls of those functions or classes, inputs only.
Every solution runs on them, and solutions are grouped by behaviour (the values they give and their verdicts on the
specification): the ranking prefers the larger group among those equal on the specification. Tasks without
examples get this evidence too when they name what to define (the demo's plan).

Rounds spend tokens only where the evidence says they pay: a proposal failing the task's own tests gets a new
attempt told what failed (on the dev slice: 93 retries, 6 fixed, 0 broken), which replaces it only when it passes
more of those tests (`retry_gains`). For a task with a specification,
critique and revision of verified proposals that fail only the agents' tests or lint is off (95 such revisions:
1 fixed, 4 broken), so the critique stage makes no call for them and they are kept as they are; elsewhere (no
specification, or code that could not run) they are critiqued and revised as before.

Early stop (on by default, `EARLY_STOP=false` turns it off): the critique/revise rounds end before `rounds` when
the evidence already decides —
- the task has specification tests (examples, acceptance tests) and a policy-clean proposal passes all of them:
  more rounds could only re-word a passing solution, and the ranking already prefers it; or
- there is no specification but at least two solutions agree (a CodeT group of 2+ passing the same agent tests)
  and every proposal is in that group: the council is unanimous on its own tests; or
- no proposal has anything to fix (below): a round would make no call.
Without execution evidence (no sandbox, or no Python in the proposals) it never stops early.

A proposal with nothing to fix (its code was verified: every test it ran passed, possibly none because there was
none to run, no lint error, no policy violation) is kept as it is in a revise stage: no call is made for it, and
its critiques are taken as not substantive. A revision asked for without a finding to fix is a blind rewrite, and
on the quality benchmark's dev slice such rewrites turned passing solutions into failing ones (HumanEval/78 and
/94 at commit 60aab6e). One that fails the task's own tests is attempted anew from its failures alone; critiques
are asked only of the rest (`reads_critiques`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace

from orchestrator.application.ports import Checker, Verifier
from orchestrator.domain.evidence import (
    ProposalEvidence,
    Specification,
    UnitSource,
    probe_units,
    spec_failures,
    specification,
    task_names,
)
from orchestrator.domain.model import CheckSuite, Proposal, Role, TaskSpec


def spec_of(task: TaskSpec, probes: Sequence[str] = ()) -> Specification:
    """The task's specification, what it asks to define (a DEV task's: QA's tests import the names they test, a
    DEVOPS manifest runs them), and the probes every solution runs."""
    spec = specification(task.description, task.rubric, task.acceptance_tests)
    dev = task.role is Role.DEV
    names = task_names(task.description) if dev else ()
    return replace(spec, probes=probe_units(probes), names=names, asks_for_solution=dev)


async def verify(
    task: TaskSpec,
    proposals: Mapping[str, Proposal],
    round_: int,
    *,
    checker: Checker,
    verifier: Verifier | None,
    probes: Sequence[str] = (),
) -> tuple[dict[str, CheckSuite], dict[str, ProposalEvidence]]:
    """Static checks and execution checks of every proposal, concurrently; returns (checks, evidence) by author."""
    authors = sorted(proposals)
    spec = spec_of(task, probes)
    texts = {a: proposals[a].content for a in authors}

    async def execute() -> dict[str, ProposalEvidence]:
        if verifier is None:
            return {a: ProposalEvidence(a, round_, skipped="no verifier configured") for a in authors}
        return await verifier.verify(spec, texts, round_)

    # The execution checks start first: what they parse in this thread is parsed before the static checks' threads
    # start parsing (Python 3.11 before 3.11.8 can fail a parse done while another thread parses).
    executing = asyncio.ensure_future(execute())
    suites, found = await asyncio.gather(
        asyncio.gather(*(checker.check(texts[a], task.requirements) for a in authors)), executing
    )
    checks = dict(zip(authors, suites, strict=True))
    evidence = {
        a: replace(
            found.get(a) or ProposalEvidence(a, round_, skipped="not verified"), lint_errors=tuple(s.lint.errors)
        )
        for a, s in checks.items()
    }
    return checks, evidence


def executed(evidence: Mapping[str, ProposalEvidence]) -> bool:
    return any(not e.skipped and e.outcomes for e in evidence.values())


def nothing_to_fix(evidence: ProposalEvidence | None, suite: CheckSuite | None) -> bool:
    """Its code was verified (not skipped) and every test it ran passed (none ran: nothing failed either), with no
    lint error and no policy violation. An unverified proposal (no sandbox, no Python) always has its revision."""
    if evidence is None or suite is None or evidence.skipped:
        return False
    return all(o.passed for o in evidence.outcomes) and not suite.lint.errors and suite.policy.passed


CRITIQUE_AND_REVISE = False
"""Whether verified proposals (their code ran) of a task with a specification that fail only the agents' tests or
lint are critiqued and revised. Off: on the quality benchmark's dev slice (commit 7a8b8bf) 95 such revisions fixed 1
problem and broke 4. Where nothing measured it (a task without examples or acceptance tests), or where the code could
not run (no sandbox, no Python: a design, a configuration), the critiques are all the feedback there is and stay."""


def needs_retry(task: TaskSpec, evidence: ProposalEvidence | None) -> bool:
    """It fails the task's own tests: a new attempt, told which and how (prompts.retry)."""
    return bool(spec_failures(evidence, spec_of(task)))


def spec_passed(evidence: ProposalEvidence | None, spec: Specification) -> int:
    """How many of the specification's tests (examples and acceptance tests) a proposal passed; 0 unverified."""
    if evidence is None or evidence.skipped:
        return 0
    return sum(evidence.counts(spec.units, source)[0] for source in (UnitSource.EXAMPLE, UnitSource.ACCEPTANCE))


async def retry_gains(
    task: TaskSpec, before: ProposalEvidence | None, text: str, round_: int, *, verifier: Verifier | None
) -> tuple[bool, int, int]:
    """Whether a new attempt (a retry: `needs_retry`) passes more of the task's own tests than the version it
    would replace: (gains, passed before, passed now). A retry that fixes none of them replaces nothing; on ClassEval
    dev at 52f5973 every council ran its round, and rewrites of whole classes lost test classes that the first
    versions had passed (ClassEval_6: the samples' pick 2 of 3, the council 0), with no specification test gained."""
    spec = spec_of(task)
    passed_before = spec_passed(before, spec)
    if verifier is None:
        return True, passed_before, passed_before  # nothing to measure it by: as before this check existed
    author = before.author_id if before is not None else "retry"
    found = await verifier.verify(spec, {author: text}, round_)
    passed_now = spec_passed(found.get(author), spec)
    return passed_now > passed_before, passed_before, passed_now


def reads_critiques(task: TaskSpec, evidence: ProposalEvidence | None, suite: CheckSuite | None) -> bool:
    """Whether a proposal's revision reads the critiques of it: it fails something, but not the task's own tests
    (a proposal failing those gets a new attempt from its failures alone: stages.revise, prompts.retry). The
    critique stage asks critiques only of these, and a critic with none of them makes no call. For verified code,
    only while CRITIQUE_AND_REVISE is on."""
    if nothing_to_fix(evidence, suite):
        return False
    spec = spec_of(task)
    verified = evidence is not None and not evidence.skipped
    if verified and spec and not CRITIQUE_AND_REVISE:
        return False
    return not spec_failures(evidence, spec)


def revised(task: TaskSpec, evidence: ProposalEvidence | None, suite: CheckSuite | None) -> bool:
    """Whether the revise stage makes a call for this proposal: a retry, or a critiqued revision."""
    return needs_retry(task, evidence) or reads_critiques(task, evidence, suite)


def decided(task: TaskSpec, checks: Mapping[str, CheckSuite], evidence: Mapping[str, ProposalEvidence]) -> str | None:
    """Why no further round is needed, or None (see the module docstring)."""
    if evidence and executed(evidence):
        spec = spec_of(task)
        if spec:
            for author, ev in sorted(evidence.items()):
                passed, total = ev.counts(spec.units, UnitSource.EXAMPLE)
                a_passed, a_total = ev.counts(spec.units, UnitSource.ACCEPTANCE)
                suite = checks.get(author)
                if total + a_total and passed + a_passed == total + a_total and suite and suite.policy.passed:
                    return f"evidence decided: {author} passes all {total + a_total} specification tests"
        else:
            groups = {ev.group for ev in evidence.values() if ev.agreement > 0}
            if len(groups) == 1 and len(next(iter(groups))) >= 2 and len(next(iter(groups))) == len(evidence):
                return f"evidence decided: all {len(evidence)} solutions pass the same agents' tests"
    if evidence and all(nothing_to_fix(ev, checks.get(author)) for author, ev in evidence.items()):
        return "evidence decided: no proposal fails a test or a check"
    return None
