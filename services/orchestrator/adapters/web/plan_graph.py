"""A plan as a graph: its subtasks placed in columns by dependency depth, an edge from each dependency to its
dependant, each node with its state and winner (the SVG of /plans/{plan_id})."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
    edges = tuple(
        Edge(nodes[d].x + 220, nodes[d].y + 32, n.x, n.y + 32)
        for record in dispatch.subtasks
        for n in [nodes[record.subtask.subtask_id]]
        for d in record.subtask.depends_on
        if d in nodes
    )
    width = 40 + 280 * (max(levels.values(), default=0) + 1)
    height = 40 + 96 * max(slots.values(), default=1)
    return PlanGraph(tuple(nodes.values()), edges, width, height)
