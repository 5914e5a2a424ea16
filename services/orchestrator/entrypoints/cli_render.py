"""Readable terminal output of a deliberation result: the ranking, the evidence behind it, why the winner won."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from orchestrator.adapters.grpc.client import (
    Checks,
    DeliberationOutcome,
    Evidence,
    RankedResult,
    status_name,
    stop_code_name,
)
from orchestrator.domain.text import ellipsize

MAX_FAILURES_SHOWN = 3
MAX_WARNINGS_SHOWN = 5


def token_budget_label(token_budget: int | None) -> str:
    """A council's token budget as `councils list` shows it: unset falls back to the service's, 0 is no limit."""
    if token_budget is None:
        return "service default"
    return "unlimited" if token_budget == 0 else f"{token_budget:,}"


def warning_lines(warnings: Sequence[str], limit: int = MAX_WARNINGS_SHOWN) -> list[str]:
    """GetStatus `warnings` (a tokens-file problem, a certificate about to expire), one terminal line each, at
    most `limit` of them and a count of the rest."""
    lines = [f"warning: {one_line(warning, 400)}" for warning in warnings[:limit]]
    if len(warnings) > limit:
        lines.append(f"warning: {len(warnings) - limit} more (GetStatus lists them all)")
    return lines


def one_line(text: str, limit: int = 240) -> str:
    """Untrusted text (test output, agents' ids) on one terminal line: no control characters, cut to `limit`."""
    return ellipsize("".join(ch if ch.isprintable() else " " for ch in " ".join(text.split())), limit)


def _evidence(r: RankedResult) -> Evidence | None:
    """The result's ProposalEvidence, or None when the service sent none (an older service, a cut-short run)."""
    return r.evidence if r.HasField("evidence") else None


def _tally(r: RankedResult, spec: bool) -> str:
    e = _evidence(r)
    if e is None:
        return "-"
    if e.skipped:
        return "skipped"
    passed, total = (e.spec_passed, e.spec_total) if spec else (e.agent_tests_passed, e.agent_tests_total)
    return f"{passed}/{total}" if total else "-"


def spec_tests(r: RankedResult) -> str:
    """The specification tests (task examples, acceptance tests) passed: "2/3", "skipped", or "-" (none)."""
    return _tally(r, spec=True)


def agent_tests(r: RankedResult) -> str:
    """The council's own tests passed: "4/6", "skipped" or "-"."""
    return _tally(r, spec=False)


def agreement_group(r: RankedResult) -> str:
    """The CodeT agreement group: its authors and score, "a, b (score 4)", or "-"."""
    e = _evidence(r)
    if e is None or not e.group:
        return "-"
    return f"{', '.join(e.group)} (score {e.agreement})"


def evidence_summary(r: RankedResult) -> str:
    """One line: "spec 2/3, agents' tests 4/6, group a, b (score 4)"; why nothing ran when nothing did."""
    e = _evidence(r)
    if e is not None and e.skipped:
        return f"not executed: {e.skipped}"
    return f"spec {spec_tests(r)}, agents' tests {agent_tests(r)}, group {agreement_group(r)}"


def failing_tests(r: RankedResult, limit: int = MAX_FAILURES_SHOWN) -> list[str]:
    """The first `limit` failing tests, "<test id>: <trimmed failure>"."""
    e = _evidence(r)
    return list(e.failures)[:limit] if e is not None else []


def rounds_line(response: DeliberationOutcome) -> str:
    """How many critique/revise rounds ran (of how many, when the response says) and why they stopped."""
    most = getattr(response, "rounds", 0)  # GetDeliberationResultResponse has it, DeliberateResponse does not
    ran = f"{response.rounds_run} of {most}" if most else str(response.rounds_run)
    stop = response.stop_reason or "no stop reason recorded"
    return f"rounds run: {ran}; stopped: {stop}"


def tokens_of_budget(spent: int, budget: int) -> str:
    """Spend against budget, "1234/2000", or the spend alone, "1234", when the run has no budget (0)."""
    return f"{spent}/{budget}" if budget else str(spent)


def budget_line(spent: int, budget: int, stop_code: int) -> str:
    """ "tokens spent: 1234 of a 2000-token budget (the budget stopped the run)", or "... (no budget)"."""
    if not budget:
        return f"tokens spent: {spent} (no budget)"
    stopped = " (the budget stopped the run)" if stop_code_name(stop_code) == "token_budget" else ""
    return f"tokens spent: {spent} of a {budget}-token budget{stopped}"


def _checks_summary(checks: Checks) -> str:
    parts = [
        f"policy {'ok' if checks.policy.passed else 'FAIL'}",
        f"lint {'ok' if checks.lint.passed else f'{checks.lint.error_count} err'}",
        f"dry-run {'ok' if checks.dryrun.passed else 'FAIL'}",
    ]
    parts += [f"{c.check_type} {c.score:.2f}" for c in checks.additional_checks]
    return ", ".join(parts)


def group_labels(results: Sequence[RankedResult]) -> dict[tuple[str, ...], str]:
    """A letter for each distinct agreement group, in rank order: proposals sharing a letter agree."""
    labels: dict[tuple[str, ...], str] = {}
    for r in results:
        e = _evidence(r)
        if e is not None and e.group and tuple(e.group) not in labels:
            labels[tuple(e.group)] = chr(ord("A") + len(labels) % 26)
    return labels


def _row(r: RankedResult, labels: dict[tuple[str, ...], str]) -> tuple[str, ...]:
    """One line of the ranking: rank, agent, score, peer, checks, revisions, spec tests, agent tests, group."""
    e = _evidence(r)
    group = f"{labels[tuple(e.group)]} ({e.agreement})" if e is not None and e.group else "-"
    peer = f"{r.peer_score:.2f}" if r.peer_score >= 0 else "-"
    revisions = str(len(r.proposal.revisions))
    checks = _checks_summary(r.checks)
    author = escape(r.proposal.author_id)
    return (str(r.rank), author, f"{r.score:.3f}", peer, checks, revisions, spec_tests(r), agent_tests(r), group)


def _ranking_table(results: Sequence[RankedResult], labels: dict[tuple[str, ...], str]) -> Table:
    # Only the checks column wraps: ids and counts stay whole, and the table still fits 80 columns.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in ("rank", "agent", "score", "peer"):
        table.add_column(name, no_wrap=True)
    table.add_column("checks", ratio=1, min_width=16)
    for name in ("revs", "spec\ntests", "agent\ntests", "group"):
        table.add_column(name, no_wrap=True)
    for r in results:
        table.add_row(*_row(r, labels))
    return table


def _groups_legend(console: Console, results: Sequence[RankedResult], labels: dict[tuple[str, ...], str]) -> None:
    if not labels:
        return
    agreement = {tuple(r.evidence.group): r.evidence.agreement for r in results if _evidence(r) is not None}
    groups = "; ".join(f"{label} = {', '.join(g)} (score {agreement.get(g, 0)})" for g, label in labels.items())
    console.print(f"agreement groups (pass the same agent tests): {escape(groups)}")


def _reasons(console: Console, results: Sequence[RankedResult]) -> None:
    """Why the winner won, then the reason for every other rank."""
    if not results:
        return
    winner = results[0]
    console.print(f"[bold]why it won[/bold]: {escape(one_line(winner.rank_reason or '-', 600))}")
    for r in results[1:]:
        console.print(f"  #{r.rank} {escape(r.proposal.author_id)}: {escape(one_line(r.rank_reason or '-', 600))}")


def render_result(console: Console, response: DeliberationOutcome, *, full: bool = False) -> None:
    """`response` is a DeliberateResponse or GetDeliberationResultResponse."""
    status = status_name(response.status)
    usage = response.usage
    console.print(
        f"[bold]{response.task_id}[/bold]  {status}  {response.duration_ms / 1000:.1f}s  "
        f"tokens {usage.prompt_tokens}+{usage.completion_tokens}  winner [green]{response.winner_id or '-'}[/green]"
    )
    console.print(escape(rounds_line(response)))
    console.print(escape(budget_line(response.tokens_spent, response.token_budget, response.stop_code)))
    if response.error_message:
        console.print(f"[yellow]{escape(response.error_message)}[/yellow]")
    labels = group_labels(response.results)
    console.print(_ranking_table(response.results, labels))
    _groups_legend(console, response.results, labels)
    _reasons(console, response.results)
    for f in response.failed_agents:
        console.print(f"[red]failed[/red] {f.agent_id} in {f.stage} (round {f.round}): {escape(f.error)}")
    for r in response.results if full else response.results[:1]:
        title = f"#{r.rank} {r.proposal.author_id} (score {r.score:.3f})"
        e = _evidence(r)
        if e is not None and e.skipped:
            console.print(f"  not executed: {escape(one_line(e.skipped))}")
        for failure in failing_tests(r):
            console.print(f"  test failed: {escape(one_line(failure))}")
        if e is not None and len(e.failures) > MAX_FAILURES_SHOWN:
            console.print(f"  … {len(e.failures) - MAX_FAILURES_SHOWN} more failing tests")
        for error in r.checks.lint.errors:
            console.print(f"  lint: {escape(error)}")
        for violation in r.checks.policy.violations:
            console.print(f"  policy: {escape(violation)}")
        console.print(Panel(Markdown(r.proposal.content), title=escape(title)))
