"""Readable terminal output of a deliberation result."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table

STATUS_NAMES = {
    0: "UNKNOWN",
    1: "PENDING",
    2: "IN_PROGRESS",
    3: "COMPLETED",
    4: "FAILED",
    5: "TIMEOUT",
    6: "CANCELLED",
}


def _checks_summary(checks: Any) -> str:
    parts = [
        f"policy {'ok' if checks.policy.passed else 'FAIL'}",
        f"lint {'ok' if checks.lint.passed else f'{checks.lint.error_count} err'}",
        f"dry-run {'ok' if checks.dryrun.passed else 'FAIL'}",
    ]
    parts += [f"{c.check_type} {c.score:.2f}" for c in checks.additional_checks]
    return ", ".join(parts)


def render_result(console: Console, response: Any, *, full: bool = False) -> None:
    """`response` is a DeliberateResponse or GetDeliberationResultResponse."""
    status = STATUS_NAMES.get(response.status, str(response.status))
    usage = response.usage
    console.print(
        f"[bold]{response.task_id}[/bold]  {status}  {response.duration_ms / 1000:.1f}s  "
        f"tokens {usage.prompt_tokens}+{usage.completion_tokens}  winner [green]{response.winner_id or '-'}[/green]"
    )
    if response.error_message:
        console.print(f"[yellow]{response.error_message}[/yellow]")
    table = Table("rank", "agent", "score", "peer", "checks", "revisions")
    for r in response.results:
        peer = f"{r.peer_score:.2f}" if r.peer_score >= 0 else "-"
        table.add_row(
            str(r.rank),
            r.proposal.author_id,
            f"{r.score:.3f}",
            peer,
            _checks_summary(r.checks),
            str(len(r.proposal.revisions)),
        )
    console.print(table)
    for f in response.failed_agents:
        console.print(f"[red]failed[/red] {f.agent_id} in {f.stage} (round {f.round}): {f.error}")
    for r in response.results if full else response.results[:1]:
        title = f"#{r.rank} {r.proposal.author_id} (score {r.score:.3f})"
        for error in r.checks.lint.errors:
            console.print(f"  lint: {error}")
        for violation in r.checks.policy.violations:
            console.print(f"  policy: {violation}")
        console.print(Panel(Markdown(r.proposal.content), title=title))
