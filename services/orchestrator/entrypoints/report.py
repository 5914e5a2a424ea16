"""A readable Markdown report of a dispatched plan: each subtask's ranked proposals, the evidence that ranked
them, checks, critiques, usage."""

from __future__ import annotations

import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from orchestrator.adapters.grpc.client import status_name
from orchestrator.entrypoints.cli_render import MAX_FAILURES_SHOWN, budget_line, failing_tests, one_line


def _checks(r: Any) -> list[str]:
    c = r.checks
    lines = [
        f"- policy: {'passed' if c.policy.passed else 'FAILED'}"
        + (f" ({'; '.join(c.policy.violations)})" if c.policy.violations else ""),
        f"- lint: {'passed' if c.lint.passed else 'FAILED'} ({c.lint.error_count} errors, "
        f"{c.lint.warning_count} warnings)",
        *(f"  - {e}" for e in list(c.lint.errors)[:8]),  # the findings under the check that made them
        f"- dry-run (YAML/JSON/shell): {'passed' if c.dryrun.passed else 'FAILED'}: {c.dryrun.message}",
    ]
    lines += [f"- {a.check_type}: score {a.score:.2f} {a.message}" for a in c.additional_checks]
    return lines


def _fenced(lines: list[str], lang: str = "text") -> list[str]:
    """A code block that the text inside cannot close: its fence is longer than any run of backticks in it."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{lang}", *lines, fence]


def _evidence(r: Any) -> list[str]:
    """What running the proposal's code showed: tests passed, its agreement group, the first failing tests."""
    if not r.HasField("evidence"):
        return ["- execution: no evidence recorded"]
    e = r.evidence
    if e.skipped:
        return [f"- execution: not executed ({e.skipped})"]
    group = f"{', '.join(e.group)} (score {e.agreement})" if e.group else "none"
    spec = f"{e.spec_passed}/{e.spec_total} passed" if e.spec_total else "none (no examples, no acceptance tests)"
    agents = f"{e.agent_tests_passed}/{e.agent_tests_total} passed" if e.agent_tests_total else "none ran"
    lines = [
        f"- specification tests (task examples, acceptance tests): {spec} (round {e.round})",
        f"- agents' tests: {agents}",
        f"- agreement group: {group}",
    ]
    if e.behaviour_group:
        split = f"; split from the others by `{one_line(e.split_by[0], 200)}`" if e.split_by else ""
        lines.append(f"- behaves like (same values on the probes): {', '.join(e.behaviour_group)}{split}")
    if not e.defines_task:
        lines.append("- does not parse, or does not define what the task names")
    failures = failing_tests(r)
    if failures:
        more = f", {len(e.failures) - len(failures)} more not shown" if len(e.failures) > MAX_FAILURES_SHOWN else ""
        lines += [f"- failing tests ({len(failures)} shown{more}):", "", *_fenced([one_line(f, 400) for f in failures])]
    return lines


def _proposal(r: Any) -> list[str]:
    peer = f"{r.peer_score:.2f}" if r.peer_score >= 0 else "none"
    out = [
        f"#### #{r.rank} {r.proposal.author_id} — score {r.score:.3f} (peer {peer}, checks {r.check_score:.2f})",
        "",
        f"Revisions: {len(r.proposal.revisions)}; tokens {r.usage.prompt_tokens} prompt + "
        f"{r.usage.completion_tokens} completion.",
        "",
        f"Rank reason: {r.rank_reason or '-'}",
        "",
        "Evidence:",
        "",
        *_evidence(r),
        "",
        "Checks:",
        "",
        *_checks(r),
        "",
    ]
    if r.peer_scores:
        out += ["Peer scores:", *[f"- {p.scorer_id}: {p.score:g}/10 {p.rationale}" for p in r.peer_scores], ""]
    if r.critiques:
        out += ["Critiques received:", *[f"- round {c.round}, {c.critic_id}: {c.text}" for c in r.critiques], ""]
    out += ["<details><summary>Final proposal</summary>", "", r.proposal.content, "", "</details>", ""]
    return out


def _subtask(s: Any, result: Any | None) -> list[str]:
    out = [f"### {s.subtask_id} ({s.role}) — {s.title}", ""]
    if s.depends_on:
        out += [f"Depends on: {', '.join(s.depends_on)}", ""]
    if result is None:
        return [*out, f"Not run: {s.state} {s.error}", ""]
    usage = result.usage
    out += [
        f"Deliberation `{result.task_id}`: {status_name(result.status)} in {result.duration_ms / 1000:.1f}s, "
        f"{result.rounds_run} of at most {result.rounds} round(s) ran "
        f"({result.stop_reason or 'no stop reason recorded'}), winner **{result.winner_id or '-'}**; "
        f"tokens {usage.prompt_tokens} prompt + {usage.completion_tokens} completion; "
        f"{budget_line(result.tokens_spent, result.token_budget, result.stop_code)}.",
        "",
    ]
    if result.winner_id and result.results:
        out += [f"Why it won: {result.results[0].rank_reason or '-'}", ""]
    if result.error_message:
        out += [f"Note: {result.error_message}", ""]
    if result.acceptance_tests:
        tests = result.acceptance_tests.splitlines()
        out += ["<details><summary>Acceptance tests</summary>", "", *_fenced(tests, "python"), "", "</details>", ""]
    out += [f"- {f.agent_id} failed in {f.stage} (round {f.round}): {f.error}" for f in result.failed_agents]
    for r in result.results:
        out += _proposal(r)
    return out


def sandbox_lines(sandbox: str) -> list[str]:
    """The sandbox's state as the service reported it; without one, in words no reader can miss."""
    if not sandbox:
        return []
    if sandbox.startswith("available"):
        return [f"Execution checks: the proposals' code ran in the sandbox, {sandbox}.", ""]
    return [f"**Proposals' code was NOT EXECUTED**: {sandbox}", ""]


def cross_checks(plan: Any) -> list[str]:
    """The report's opening section: the plan's outcome, then one line per cross-check, each attempt in order."""
    outcome = plan.outcome or "not checked (the plan has no cross-checks on record)"
    lines = ["## Cross-checks", "", f"Outcome: **{outcome}**", ""]
    lines += [f"- {c.summary}" for c in plan.cross_checks]
    if not plan.cross_checks:
        lines.append("- none: no subtask depends on a DEV subtask")
    for c in plan.cross_checks:
        if c.details and c.status != "not_run":
            lines += ["", f"<details><summary>{c.kind}, attempt {c.attempt}</summary>", ""]
            lines += [*_fenced([one_line(d, 400) for d in c.details]), "", "</details>"]
    return [*lines, ""]


def _why(s: Any, results: dict[str, Any], plan: Any) -> str:
    result = results.get(s.subtask_id)
    if result is None or not result.results:
        return s.error or "-"
    why = one_line(result.results[0].rank_reason or "-", 300)
    chosen = next((c.chosen for c in plan.cross_checks if c.kind == "qa_on_dev" and c.subtask_id == s.subtask_id), "")
    if chosen:  # QA's proposals are ranked for the plan by how their tests fare on DEV's code
        why += f"; by the cross-check's evidence, {chosen}'s tests are the ones DEV was held to"
    return why.replace("|", "\\|")


def render_report(
    payload: dict[str, Any], plan: Any, results: dict[str, Any], elapsed_s: float, sandbox: str = ""
) -> str:
    text = payload.get("plan", {})
    lines = [
        f"# Deliberation report: {text.get('title') or plan.plan_id}",
        "",
        f"Plan `{plan.plan_id}` of story `{plan.story_id}`, approved by {plan.approved_by}; "
        f"{len(plan.subtasks)} subtasks, finished in {elapsed_s:.0f}s.",
        "",
        *sandbox_lines(sandbox),
        *cross_checks(plan),
        "## Winners",
        "",
        "| subtask | role | state | winner | score | time | why it won |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {s.subtask_id} | {s.role} | {s.state} | {s.winner_id or '-'} | "
            f"{s.winner_score:.3f} | {s.duration_ms / 1000:.1f}s | {_why(s, results, plan)} |"
            for s in plan.subtasks
        ],
        "",
        str(text.get("description", "")).strip(),
        "",
        "Acceptance criteria:",
        *[f"- {c}" for c in text.get("acceptance_criteria", [])],
        "",
        "## Subtasks",
        "",
    ]
    for s in plan.subtasks:
        lines += _subtask(s, results.get(s.subtask_id))
    if plan.HasField("follow_up") and plan.follow_up.deliberation_id in results:
        lines += [f"## DEV follow-up of {plan.follow_up.subtask_id}", ""]
        lines += _follow_up(plan.follow_up, results[plan.follow_up.deliberation_id])
    return "\n".join(lines) + "\n"


def _follow_up(follow: Any, result: Any) -> list[str]:
    title = "deliberated again with the QA tests the previous winner failed as acceptance tests"
    s = SimpleNamespace(subtask_id=follow.subtask_id, role="DEV", title=title, depends_on=[], state=follow.state)
    return _subtask(s, result)


def write_report(
    directory: Path, payload: dict[str, Any], plan: Any, results: dict[str, Any], elapsed_s: float, sandbox: str = ""
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"report-{plan.plan_id}-{time.strftime('%H%M%S')}.md"
    path.write_text(render_report(payload, plan, results, elapsed_s, sandbox))
    return path.resolve()
