"""`orchestrator monitor` and `orchestrator watch`: live views of a running service over gRPC."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orchestrator.adapters.grpc.client import OrchestratorClient, status_name
from orchestrator.entrypoints.cli_render import (
    budget_line,
    evidence_summary,
    one_line,
    tokens_of_budget,
    warning_lines,
)
from orchestrator.entrypoints.monitor_nodes import nodes_table

STATUS_STYLE = {
    "COMPLETED": "green",
    "FAILED": "red",
    "TIMEOUT": "yellow",
    "CANCELLED": "magenta",
    "IN_PROGRESS": "cyan",
    "PENDING": "white",
}


def _elapsed(ms: int) -> str:
    seconds = ms / 1000
    return f"{seconds:.1f}s" if seconds < 120 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _stage(d: Any) -> str:
    if not d.current_stage:
        return "-"
    # verify runs after propose (round 0) and after every revise (rounds 1..R): the round tells them apart
    if d.current_stage in ("critique", "revise") or (d.current_stage == "verify" and d.current_round > 0):
        return f"{d.current_stage} r{d.current_round}/{d.rounds}"
    return str(d.current_stage)


def deliberations_table(listing: Any) -> Table:
    table = Table(expand=True)
    table.add_column("id", no_wrap=True, min_width=18)
    table.add_column("role")
    table.add_column("status", no_wrap=True, min_width=11)
    table.add_column("stage", no_wrap=True, min_width=13)
    for name in ("agents ok/fail", "elapsed", "tokens\nspent/budget", "winner"):
        table.add_column(name)
    for d in listing.deliberations:
        status = status_name(d.status)
        ok = d.agents_total - d.agents_failed
        table.add_row(
            d.task_id,
            d.role,
            Text(status, style=STATUS_STYLE.get(status, "")),
            _stage(d),
            f"{ok}/{d.agents_failed}",
            _elapsed(d.duration_ms),
            tokens_of_budget(d.usage.total_tokens, d.token_budget),
            d.winner_id or "-",
        )
    return table


def status_line(status: Any) -> Text:
    ray = status.ray
    by_status = ", ".join(f"{k.lower()} {v}" for k, v in sorted(status.deliberations_by_status.items())) or "none"
    cluster = (
        f"Ray {ray.address}: {ray.nodes} node(s), {ray.cpus:g} CPUs, agents alive {ray.actors_alive} / "
        f"restarting {ray.actors_restarting} / dead {ray.actors_dead}"
        if ray.connected
        else "Ray: not connected"
    )
    return Text.assemble(
        f"{status.status}  up {_elapsed(status.uptime_seconds * 1000)}  running {status.running_deliberations}  "
        f"queued {status.queue_depth}  councils {status.stats.active_councils}  deliberations: {by_status}\n",
        f"{cluster}\n",
        *dependencies_line(status),
        *warnings_part(status),
    )


def warnings_part(status: Any) -> list[str | tuple[str, str]]:
    """The service's own warnings (a tokens-file problem, a certificate about to expire), a line each."""
    parts: list[str | tuple[str, str]] = []
    for line in warning_lines(status.warnings):
        parts += ["\n", (line, "bold yellow")]
    return parts


def _sandbox_style(sandbox: str) -> str:
    if sandbox.startswith("available"):
        return "green"
    return "bold red" if sandbox.startswith(("UNSAFE", "NOT EXECUTED")) else "yellow"


def dependencies_line(status: Any) -> tuple[tuple[str, str], ...]:
    """The LLM endpoint and the code sandbox, each styled by whether it works: without a sandbox the execution
    checks are skipped and the ranking falls back to static checks and peers, which an operator must see."""
    llm = status.llm_status or "UNKNOWN"
    sandbox = status.sandbox_status or "unknown (the service did not say)"
    return (
        ("LLM ", ""),
        (llm, {"SERVING": "green", "NOT_SERVING": "red"}.get(llm, "yellow")),
        ("  sandbox ", ""),
        (sandbox, _sandbox_style(sandbox)),
    )


def snapshot(client: OrchestratorClient, limit: int) -> Group:
    status = client.status()
    listing = client.list_deliberations(limit)
    header = Panel(status_line(status), title="fleet orchestrator", expand=True)
    if not status.ray.node_list:
        return Group(header, deliberations_table(listing))
    return Group(header, nodes_table(status.ray), deliberations_table(listing))


def run_monitor(client: OrchestratorClient, *, once: bool, interval_s: float, limit: int, console: Console) -> None:
    """Raises OrchestratorError when the service cannot be reached; the CLI turns it into a message."""
    if once:
        console.print(snapshot(client, limit))
        return
    with Live(snapshot(client, limit), console=console, refresh_per_second=4, screen=False) as live:
        while True:
            time.sleep(interval_s)
            live.update(snapshot(client, limit))


def _step(update: Any) -> str:
    if update.stage in ("critique", "revise", "verify") and update.round > 0:
        return f"{update.stage} r{update.round}"
    return str(update.current_step)


def update_lines(update: Any, clock: str) -> list[str]:
    """What `watch` prints for one DeliberationUpdate: its step, and on the final update the winner, the
    evidence it won on, why, and how many rounds ran and why they stopped. Plain text, no markup."""
    agent = f" {update.current_agent}" if update.current_agent else ""
    lines = [f"{clock} {update.status:<11} {update.progress_percent:3d}% {_step(update)}{agent}"]
    if update.error_message and update.status in ("FAILED", "TIMEOUT", "CANCELLED"):
        lines.append(f"  {one_line(update.error_message, 600)}")
    if update.winner_id and update.results:
        winner = update.results[0]
        lines.append(f"  winner {update.winner_id} (score {winner.score:.3f}; {one_line(evidence_summary(winner))})")
        lines.append(f"  why it won: {one_line(winner.rank_reason or '-', 600)}")
    if update.results:  # only the final update carries results
        lines.append(f"  rounds run: {update.rounds_run}; stopped: {update.stop_reason or 'no stop reason recorded'}")
        lines.append(f"  {budget_line(update.tokens_spent, update.token_budget, update.stop_code)}")
    return lines


def run_watch(client: OrchestratorClient, task_id: str, console: Console) -> int:
    """Prints every update of one deliberation; returns an exit code (0 when it completed)."""
    final_status = ""
    for update in client.watch(task_id):
        for line in update_lines(update, time.strftime("%H:%M:%S")):
            console.print(line, markup=False, highlight=False)
        final_status = update.status
    return 0 if final_status == "COMPLETED" else 1
