"""Where the agents run: the cluster's nodes and this service's agent actors on them, for `GetStatus` and `monitor`.

The facts come from the GCS (node table, actor table by actor id). A driver connected with Ray Client
(`ray://head:10001`, as in production) has no GCS connection of its own, so there a small observer actor on the
head node reads them; a local Ray is read in-process. Both read the same way (`cluster_facts`). Turning the facts
into a `RuntimeSummary` is a pure function (`summarize`), kept apart so it is tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ray

from orchestrator.application.ports import RuntimeNode, RuntimeSummary

HEAD_RESOURCE = "node:__internal_head__"
"""The resource only the head node has (Ray's own)."""
DEAD_NODES_SHOWN = 5
"""Dead nodes without agents of ours shown at most (a long-lived KubeRay cluster keeps every replaced pod)."""


def cluster_facts(actor_ids: list[str]) -> dict[str, Any]:
    """Nodes (alive and dead) and the actors' state, node and restart count, as plain data. Runs where the GCS
    is reachable: the driver of a local Ray, or a worker of the cluster (the observer)."""
    from ray._private.state import state as gcs_state

    nodes = [
        {
            "node_id": str(n.get("NodeID", "")),
            "address": str(n.get("NodeManagerAddress", "")),
            "port": int(n.get("NodeManagerPort", 0) or 0),
            "alive": bool(n.get("Alive")),
            "head": HEAD_RESOURCE in (n.get("Resources") or {}),
            "cpus": float((n.get("Resources") or {}).get("CPU", 0.0)),
            "labels": {k: str(v) for k, v in (n.get("Labels") or {}).items() if not k.startswith("ray.io/")},
            "death_reason": str(n.get("DeathReasonMessage", "") or ""),
        }
        for n in ray.nodes()  # type: ignore[no-untyped-call]
    ]
    actors: dict[str, dict[str, Any]] = {}
    for actor_id in actor_ids:
        info: dict[str, Any] = gcs_state.actor_table(actor_id)
        if not info:
            actors[actor_id] = {"state": "DEAD", "node_id": "", "restarts": 0}
            continue
        actors[actor_id] = {
            "state": str(info.get("State", "DEAD")),
            "node_id": str((info.get("Address") or {}).get("NodeID", "")),
            "restarts": int(info.get("NumRestarts", 0) or 0),
        }
    return {"nodes": nodes, "actors": actors}


class ClusterObserver:
    """Lives on the head node (it needs no CPU) and answers `cluster_facts` for a Ray Client driver."""

    def facts(self, actor_ids: list[str]) -> dict[str, Any]:
        return cluster_facts(actor_ids)


def observer_options() -> dict[str, Any]:
    return {"num_cpus": 0, "resources": {HEAD_RESOURCE: 0.001}, "max_restarts": -1, "max_task_retries": 2}


def summarize(
    facts: Mapping[str, Any],
    agents: Mapping[str, str],
    in_flight: Mapping[str, int],
    last_node: dict[str, str],
    address: str,
) -> RuntimeSummary:
    """`agents`: agent id -> actor id of the handle this service calls; `in_flight`: agent id -> calls now
    awaiting that agent. `last_node` (agent id -> node id) is updated here: an actor that is restarting after its
    node died is counted on the node it was last seen on, where the operator looks for it."""
    actors: Mapping[str, Mapping[str, Any]] = facts["actors"]
    per_node: dict[str, list[int]] = {}  # node id -> [alive, restarting, calls in flight]
    states: list[str] = []
    restarts = 0
    for agent_id, actor_id in agents.items():
        actor = actors.get(actor_id, {"state": "DEAD", "node_id": "", "restarts": 0})
        state, node = str(actor["state"]), str(actor["node_id"])
        states.append(state)
        restarts += int(actor["restarts"])
        if state == "ALIVE" and node:
            last_node[agent_id] = node
        node = last_node.get(agent_id, "") if state != "ALIVE" or not node else node
        if not node or state == "DEAD":
            continue
        counts = per_node.setdefault(node, [0, 0, 0])
        counts[0 if state == "ALIVE" else 1] += 1
        counts[2] += in_flight.get(agent_id, 0)
    return RuntimeSummary(
        connected=True,
        address=address,
        nodes=sum(1 for n in facts["nodes"] if n["alive"]),
        cpus=float(sum(n["cpus"] for n in facts["nodes"] if n["alive"])),
        actors_alive=states.count("ALIVE"),
        actors_restarting=sum(1 for s in states if s in ("RESTARTING", "PENDING_CREATION", "DEPENDENCIES_UNREADY")),
        actors_dead=states.count("DEAD"),
        nodes_dead=sum(1 for n in facts["nodes"] if not n["alive"]),
        actor_restarts=restarts,
        node_list=_nodes(facts["nodes"], per_node),
    )


def _nodes(nodes: list[Mapping[str, Any]], per_node: Mapping[str, list[int]]) -> tuple[RuntimeNode, ...]:
    """Alive nodes head first, then dead ones that hold agents of ours, then a few other dead ones."""
    shown = [n for n in nodes if n["alive"] or n["node_id"] in per_node]
    shown += [n for n in nodes if not n["alive"] and n["node_id"] not in per_node][-DEAD_NODES_SHOWN:]
    shown.sort(key=lambda n: (not n["alive"], not n["head"], n["address"], n["node_id"]))
    result = []
    for n in shown:
        alive, restarting, calls = per_node.get(n["node_id"], [0, 0, 0])
        address = f"{n['address']}:{n['port']}" if n.get("port") else str(n["address"])
        result.append(
            RuntimeNode(
                node_id=n["node_id"],
                address=address,
                alive=bool(n["alive"]),
                head=bool(n["head"]),
                cpus=float(n["cpus"]),
                labels=tuple(sorted(n["labels"].items())),
                agents_alive=alive,
                agents_restarting=restarting,
                calls_in_flight=calls,
                death_reason=n["death_reason"],
            )
        )
    return tuple(result)
