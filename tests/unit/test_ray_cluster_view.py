"""Where the agents run, from the GCS facts to the status fields and the monitor's node panel (issue 16)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.adapters.grpc.mapping import runtime_pb
from orchestrator.adapters.ray.cluster_view import DEAD_NODES_SHOWN, summarize
from orchestrator.entrypoints.monitor_nodes import nodes_table


def node(node_id: str, *, alive: bool = True, head: bool = False, name: str = "", cpus: float = 2.0) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "address": "10.0.0.1",
        "port": 7000,
        "alive": alive,
        "head": head,
        "cpus": 0.0 if head else cpus,
        "labels": {"fleet/node-name": name} if name else {},
        "death_reason": "" if alive else "health check failed",
    }


def actor(state: str, node_id: str, restarts: int = 0) -> dict[str, Any]:
    return {"state": state, "node_id": node_id, "restarts": restarts}


FACTS_BEFORE = {
    "nodes": [node("h", head=True), node("w1", name="worker-1"), node("w2", name="worker-2")],
    "actors": {"a1": actor("ALIVE", "w1"), "a2": actor("ALIVE", "w2"), "a3": actor("ALIVE", "w1")},
}
AGENTS = {"agent-dev-001": "a1", "agent-dev-002": "a2", "agent-qa-001": "a3"}


def test_agents_and_calls_in_flight_are_counted_on_the_node_they_run_on() -> None:
    summary = summarize(FACTS_BEFORE, AGENTS, {"agent-dev-001": 2, "agent-qa-001": 1}, {}, "ray://head:10001")
    by_id = {n.node_id: n for n in summary.node_list}
    assert [n.node_id for n in summary.node_list] == ["h", "w1", "w2"]  # head first
    assert (by_id["h"].agents_alive, by_id["w1"].agents_alive, by_id["w2"].agents_alive) == (0, 2, 1)
    assert (by_id["w1"].calls_in_flight, by_id["w2"].calls_in_flight) == (3, 0)
    assert (summary.nodes, summary.cpus, summary.actors_alive, summary.nodes_dead) == (3, 4.0, 3, 0)


def test_agents_of_a_dead_node_are_restarting_there_until_they_run_elsewhere() -> None:
    last_node: dict[str, str] = {}
    summarize(FACTS_BEFORE, AGENTS, {}, last_node, "x")
    outage = {
        "nodes": [node("h", head=True), node("w1", alive=False, name="worker-1"), node("w2", name="worker-2")],
        "actors": {"a1": actor("RESTARTING", "w1", 1), "a2": actor("ALIVE", "w2"), "a3": actor("RESTARTING", "", 1)},
    }
    during = summarize(outage, AGENTS, {"agent-dev-001": 1}, last_node, "x")
    w1 = next(n for n in during.node_list if n.node_id == "w1")
    assert not w1.alive and (w1.agents_alive, w1.agents_restarting, w1.calls_in_flight) == (0, 2, 1)
    assert (during.actors_restarting, during.nodes_dead, during.actor_restarts, during.nodes) == (2, 1, 2, 2)
    assert during.node_list[-1].node_id == "w1"  # dead nodes after the alive ones

    recovered = {**outage, "actors": {k: actor("ALIVE", "w2", 1 if k != "a2" else 0) for k in ("a1", "a2", "a3")}}
    after = summarize(recovered, AGENTS, {}, last_node, "x")
    by_id = {n.node_id: n for n in after.node_list}
    assert by_id["w2"].agents_alive == 3 and by_id["w1"].agents_restarting == 0
    assert "w1" in by_id  # still shown: the operator sees the node went away


def test_a_long_lived_cluster_shows_only_the_latest_dead_nodes() -> None:
    dead = [node(f"d{i}", alive=False) for i in range(DEAD_NODES_SHOWN + 4)]
    summary = summarize({"nodes": [node("h", head=True), *dead], "actors": {}}, {}, {}, {}, "x")
    assert [n.node_id for n in summary.node_list if not n.alive] == sorted(
        f"d{i}" for i in range(4, DEAD_NODES_SHOWN + 4)
    )


def test_an_actor_unknown_to_the_gcs_is_dead_and_on_no_node() -> None:
    summary = summarize(FACTS_BEFORE, {"agent-x-001": "gone"}, {}, {}, "x")
    assert (summary.actors_dead, sum(n.agents_alive + n.agents_restarting for n in summary.node_list)) == (1, 0)


def test_the_monitor_panel_shows_each_node_its_agents_and_a_dead_node() -> None:
    last_node: dict[str, str] = {}
    summarize(FACTS_BEFORE, AGENTS, {}, last_node, "x")
    outage = {
        "nodes": [node("h", head=True), node("w1", alive=False, name="worker-1"), node("w2", name="worker-2")],
        "actors": {"a1": actor("RESTARTING", "w1", 1), "a2": actor("ALIVE", "w2"), "a3": actor("ALIVE", "w2", 1)},
    }
    status = runtime_pb(summarize(outage, AGENTS, {"agent-dev-002": 4}, last_node, "ray://head:10001"))
    assert isinstance(status, pb.RayClusterSummary) and status.node_list[1].labels["fleet/node-name"] == "worker-2"
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(nodes_table(status))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    rows = {line.split("│")[2].strip(): line.split("│") for line in text.splitlines() if line.count("│") >= 7}
    assert rows["head"][4].strip() == "alive" and rows["worker-2"][4].strip() == "alive"
    assert rows["worker-1"][4].strip() == "DEAD" and rows["worker-1"][6].strip() == "0 +1 restarting"
    assert (rows["worker-2"][6].strip(), rows["worker-2"][7].strip()) == ("2", "4")
    assert "nodes dead 1  agents restarting 1  restarts 2" in text
    assert "(worker-1) died: health check failed" in text
