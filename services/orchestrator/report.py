"""A readable Markdown report of a dispatched plan: each subtask's ranked proposals, checks, critiques, usage."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from orchestrator.cli_render import STATUS_NAMES


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


def _proposal(r: Any) -> list[str]:
    peer = f"{r.peer_score:.2f}" if r.peer_score >= 0 else "none"
    out = [
        f"#### #{r.rank} {r.proposal.author_id} — score {r.score:.3f} (peer {peer}, checks {r.check_score:.2f})",
        "",
        f"Revisions: {len(r.proposal.revisions)}; tokens {r.usage.prompt_tokens} prompt + "
        f"{r.usage.completion_tokens} completion.",
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
        f"Deliberation `{result.task_id}`: {STATUS_NAMES.get(result.status, '?')} in {result.duration_ms / 1000:.1f}s, "
        f"{result.rounds} round(s), winner **{result.winner_id or '-'}**; tokens {usage.prompt_tokens} prompt + "
        f"{usage.completion_tokens} completion.",
        "",
    ]
    if result.error_message:
        out += [f"Note: {result.error_message}", ""]
    out += [f"- {f.agent_id} failed in {f.stage} (round {f.round}): {f.error}" for f in result.failed_agents]
    for r in result.results:
        out += _proposal(r)
    return out


def render_report(payload: dict[str, Any], plan: Any, results: dict[str, Any], elapsed_s: float) -> str:
    text = payload.get("plan", {})
    lines = [
        f"# Deliberation report: {text.get('title') or plan.plan_id}",
        "",
        f"Plan `{plan.plan_id}` of story `{plan.story_id}`, approved by {plan.approved_by}; "
        f"{len(plan.subtasks)} subtasks, finished in {elapsed_s:.0f}s.",
        "",
        str(text.get("description", "")).strip(),
        "",
        "Acceptance criteria:",
        *[f"- {c}" for c in text.get("acceptance_criteria", [])],
        "",
        "## Winners",
        "",
        "| subtask | role | state | winner | score | time |",
        "|---|---|---|---|---|---|",
        *[
            f"| {s.subtask_id} | {s.role} | {s.state} | {s.winner_id or '-'} | "
            f"{s.winner_score:.3f} | {s.duration_ms / 1000:.1f}s |"
            for s in plan.subtasks
        ],
        "",
        "## Subtasks",
        "",
    ]
    for s in plan.subtasks:
        lines += _subtask(s, results.get(s.subtask_id))
    return "\n".join(lines) + "\n"


def write_report(
    directory: Path, payload: dict[str, Any], plan: Any, results: dict[str, Any], elapsed_s: float
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"report-{plan.plan_id}-{time.strftime('%H%M%S')}.md"
    path.write_text(render_report(payload, plan, results, elapsed_s))
    return path.resolve()
