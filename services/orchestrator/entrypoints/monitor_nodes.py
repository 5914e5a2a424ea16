"""The monitor's per-node panel: where the agents run, node by node, and what is in flight there.

Kept apart from the rest of the monitor: it renders one `RayClusterSummary` (from `GetStatus`) and nothing else.
A row fits an 80-column terminal; why a node died goes under the table.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text


def _role(node: Any) -> str:
    if node.head:
        return "head"
    return str(node.labels.get("fleet/node-name") or "worker")


def _state(node: Any) -> Text:
    return Text("alive", style="green") if node.alive else Text("DEAD", style="bold red")


def _agents(node: Any) -> Text:
    if node.agents_restarting:
        return Text(f"{node.agents_alive} +{node.agents_restarting} restarting", style="yellow")
    return Text(str(node.agents_alive))


def _caption(ray: Any) -> str:
    lines = [f"nodes dead {ray.nodes_dead}  agents restarting {ray.actors_restarting}  restarts {ray.actor_restarts}"]
    lines += [
        f"{n.node_id[:12]} ({_role(n)}) died: {n.death_reason[:80]}"
        for n in ray.node_list
        if not n.alive and n.death_reason and (n.agents_alive or n.agents_restarting)
    ]
    return "\n".join(lines)


def nodes_table(ray: Any) -> Table:
    """One row per node: its id, role, IP, state, CPUs, this service's agents on it (with those restarting after
    the node died) and the calls in flight to them. The caption sums dead nodes and restarts and says why a node
    that held agents died."""
    table = Table(title="Ray nodes", caption=_caption(ray), expand=True)
    table.add_column("node", no_wrap=True, max_width=12)
    table.add_column("role", no_wrap=True)
    table.add_column("ip", overflow="fold")
    table.add_column("state", no_wrap=True)
    table.add_column("CPUs")
    table.add_column("agents", no_wrap=True)
    table.add_column("calls", no_wrap=True)
    for node in ray.node_list:
        table.add_row(
            node.node_id[:12],
            _role(node),
            node.address.rsplit(":", 1)[0],
            _state(node),
            f"{node.cpus:g}",
            _agents(node),
            str(node.calls_in_flight),
        )
    return table
