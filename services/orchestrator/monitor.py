"""`orchestrator monitor` and `orchestrator watch`: live views of a running service over gRPC."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orchestrator.adapters.grpc.client import channel, pb, stub
from orchestrator.cli_render import STATUS_NAMES

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
    if d.current_stage in ("critique", "revise"):
        return f"{d.current_stage} r{d.current_round}/{d.rounds}"
    return str(d.current_stage)


def deliberations_table(listing: Any) -> Table:
    table = Table(expand=True)
    table.add_column("id", no_wrap=True, min_width=18)
    table.add_column("role")
    table.add_column("status", no_wrap=True, min_width=11)
    table.add_column("stage", no_wrap=True, min_width=13)
    for name in ("agents ok/fail", "elapsed", "tokens", "winner"):
        table.add_column(name)
    for d in listing.deliberations:
        status = STATUS_NAMES.get(d.status, str(d.status))
        ok = d.agents_total - d.agents_failed
        table.add_row(
            d.task_id,
            d.role,
            Text(status, style=STATUS_STYLE.get(status, "")),
            _stage(d),
            f"{ok}/{d.agents_failed}",
            _elapsed(d.duration_ms),
            str(d.usage.total_tokens),
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
    return Text(
        f"{status.status}  up {_elapsed(status.uptime_seconds * 1000)}  running {status.running_deliberations}  "
        f"queued {status.queue_depth}  councils {status.stats.active_councils}  deliberations: {by_status}\n{cluster}"
    )


def snapshot(client: Any, limit: int) -> Group:
    status = client.GetStatus(pb.GetStatusRequest(include_stats=True), timeout=5)
    listing = client.ListDeliberations(pb.ListDeliberationsRequest(page_size=limit), timeout=5)
    header = Panel(status_line(status), title="fleet orchestrator", expand=True)
    return Group(header, deliberations_table(listing))


def run_monitor(address: str, *, once: bool, interval_s: float, limit: int, console: Console) -> None:
    """Raises grpc.RpcError when the service cannot be reached; the CLI turns it into a message."""
    with channel(address) as ch:
        client = stub(ch)
        if once:
            console.print(snapshot(client, limit))
            return
        with Live(snapshot(client, limit), console=console, refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(interval_s)
                live.update(snapshot(client, limit))


def run_watch(address: str, task_id: str, console: Console) -> int:
    """Prints every update of one deliberation; returns an exit code (0 when it completed)."""
    final_status = ""
    with channel(address) as ch:
        for update in stub(ch).WatchDeliberation(pb.WatchDeliberationRequest(task_id=task_id)):
            agent = f" {update.current_agent}" if update.current_agent else ""
            console.print(
                f"{time.strftime('%H:%M:%S')} {update.status:<11} {update.progress_percent:3d}% "
                f"{update.current_step}{agent}"
            )
            final_status = update.status
            if update.error_message and update.status in ("FAILED", "TIMEOUT", "CANCELLED"):
                console.print(f"  {update.error_message}")
            if update.winner_id and update.results:
                console.print(f"  winner {update.winner_id} (score {update.results[0].score:.3f})")
    return 0 if final_status == "COMPLETED" else 1
