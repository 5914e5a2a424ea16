"""A plan as a graph: its subtasks placed in columns by dependency depth, an edge from each dependency to its
dependant, each node with its state and winner (the SVG of /plans/{plan_id})."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.domain.cross_checks import CheckKind
from orchestrator.domain.plans import PlanDispatch, SubtaskState


@dataclass(frozen=True)
class Node:
    subtask_id: str
    role: str
    title: str
    state: str
    winner: str
    deliberation_id: str
    linked: bool
    x: int
    y: int
    error: str = ""


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class PlanGraph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int
    node_w: int = 220
    node_h: int = 64


def _levels(dispatch: PlanDispatch) -> dict[str, int]:
    deps = {s.subtask.subtask_id: s.subtask.depends_on for s in dispatch.subtasks}
    levels: dict[str, int] = {}

    def level(sid: str, seen: frozenset[str] = frozenset()) -> int:
        if sid not in levels:
            known = [d for d in deps.get(sid, ()) if d in deps and d not in seen]
            levels[sid] = 1 + max((level(d, seen | {sid}) for d in known), default=-1)
        return levels[sid]

    for sid in deps:
        level(sid)
    return levels


def plan_graph(dispatch: PlanDispatch, existing: Iterable[str]) -> PlanGraph:
    """Subtasks placed in columns by dependency depth, edges from each dependency to its dependant."""
    have = set(existing)
    levels = _levels(dispatch)
    slots: dict[int, int] = {}
    nodes: dict[str, Node] = {}
    for record in dispatch.subtasks:
        s = record.subtask
        col = levels[s.subtask_id]
        row = slots.get(col, 0)
        slots[col] = row + 1
        nodes[s.subtask_id] = Node(
            s.subtask_id,
            s.role.value,
            s.title,
            record.state.value,
            record.winner_id,
            record.deliberation_id,
            record.deliberation_id in have,
            20 + col * 280,
            20 + row * 96,
            record.error if record.state is SubtaskState.FAILED else "",
        )
    edges = [
        Edge(nodes[d].x + 220, nodes[d].y + 32, n.x, n.y + 32)
        for record in dispatch.subtasks
        for n in [nodes[record.subtask.subtask_id]]
        for d in record.subtask.depends_on
        if d in nodes
    ]
    columns = max(levels.values(), default=0) + 1
    if dispatch.follow_up is not None:
        columns += 1
        edges += _follow_up(dispatch, nodes, have, columns - 1)
    width = 40 + 280 * columns
    height = 40 + 96 * max(slots.values(), default=1)
    return PlanGraph(tuple(nodes.values()), tuple(edges), width, height)


def _follow_up(dispatch: PlanDispatch, nodes: dict[str, Node], have: set[str], col: int) -> list[Edge]:
    """DEV's follow-up deliberation as a node of its own, in a last column, with an edge from each subtask whose
    cross-check sent it (QA's tests that failed on DEV's winner)."""
    follow = dispatch.follow_up
    assert follow is not None
    node = Node(
        f"{follow.subtask_id} follow-up",
        "DEV",
        "follow-up: failing QA tests as acceptance tests",
        follow.state,
        follow.winner_id,
        follow.deliberation_id,
        follow.deliberation_id in have,
        20 + col * 280,
        20,
        follow.error if follow.state == "FAILED" else "",
    )
    nodes[node.subtask_id] = node
    senders = {
        c.subtask_id for c in dispatch.checks if c.kind is CheckKind.QA_ON_DEV and c.target_id == follow.subtask_id
    }
    return [Edge(nodes[s].x + 220, nodes[s].y + 32, node.x, node.y + 32) for s in sorted(senders) if s in nodes]
