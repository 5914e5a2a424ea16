"""The monitor's per-node panel: where the agents run, node by node, and what is in flight there.

Kept apart from the rest of the monitor: it renders one `RayClusterSummary` (from `GetStatus`) and nothing else.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text


def _role(node: Any) -> str:
    if node.head:
        return "head"
    return str(node.labels.get("fleet/node-name") or node.labels.get("ray.io/node-group") or "worker")


def _state(node: Any) -> Text:
    if node.alive:
        return Text("alive", style="green")
    reason = f" ({node.death_reason[:60]})" if node.death_reason else ""
    return Text(f"DEAD{reason}", style="bold red")


def _agents(node: Any) -> Text:
    if node.agents_restarting:
        return Text(f"{node.agents_alive} (+{node.agents_restarting} restarting)", style="yellow")
    return Text(str(node.agents_alive))


def nodes_table(ray: Any) -> Table:
    """One row per node: its id, role, address, state, CPUs, this service's agents on it (and those restarting
    after the node died) and the calls in flight to them. The caption sums restarts and dead nodes."""
    caption = (
        f"nodes dead {ray.nodes_dead}  agents restarting {ray.actors_restarting}  actor restarts {ray.actor_restarts}"
    )
    table = Table(title="Ray nodes", caption=caption, expand=True)
    for name in ("node", "role", "address", "state", "CPUs", "agents", "calls in flight"):
        table.add_column(name, no_wrap=name in ("node", "state"))
    for node in ray.node_list:
        table.add_row(
            node.node_id[:12],
            _role(node),
            node.address,
            _state(node),
            f"{node.cpus:g}",
            _agents(node),
            str(node.calls_in_flight),
        )
    return table
