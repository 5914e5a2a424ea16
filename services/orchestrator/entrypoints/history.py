"""`orchestrator history`: the decision graph of a story or plan, read from the store (STORE_URL/NEO4J_URI).

story -> plan -> subtask -> deliberation -> ranked proposals: who proposed what, how it scored, who won.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from orchestrator.bootstrap import open_store
from orchestrator.config import Settings
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import NotFoundError
from orchestrator.domain.plans import PlanDispatch


def _deliberation(node: Tree, d: Deliberation) -> None:
    usage = d.usage
    branch = node.add(
        f"deliberation {d.task_id}: {d.status.value} in {d.duration_ms / 1000:.1f}s, {d.task.rounds} round(s), "
        f"tokens {usage.total_tokens}" + (f" — {d.error_message}" if d.error_message else "")
    )
    for r in d.results:
        peer = f"{r.peer_score:.2f}" if r.peer_score >= 0 else "-"
        mark = " [green]winner[/green]" if r.proposal.author_id == d.winner_id else ""
        branch.add(
            f"#{r.rank} {r.proposal.author_id} score {r.score:.3f} (peer {peer}, checks {r.checks.score:.2f}, "
            f"{len(r.proposal.revisions)} revisions, {len(r.critiques)} critiques){mark}"
        )
    for f in d.progress.failures:
        branch.add(f"[red]{f.agent_id} failed in {f.stage} r{f.round}: {f.error}[/red]")


async def _plan(root: Tree, dispatch: PlanDispatch, runs: dict[str, Deliberation | None]) -> None:
    plan = dispatch.plan
    node = root.add(f"plan {plan.plan_id}: {plan.title or '(untitled)'} — approved by {plan.approved_by}")
    for record in dispatch.subtasks:
        after = f" after {', '.join(record.subtask.depends_on)}" if record.subtask.depends_on else ""
        sub = node.add(
            f"subtask {record.subtask.subtask_id} ({record.subtask.role.value}){after}: {record.state.value}"
            + (f" — {record.error}" if record.error else "")
        )
        run = runs.get(record.deliberation_id)
        if run is not None:
            _deliberation(sub, run)
    if dispatch.outcome is not None:
        checks = node.add(f"cross-checks: {dispatch.outcome.value}")
        for check in dispatch.checks:
            checks.add(escape(check.summary))


async def print_history(settings: Settings, console: Console, *, story: str, plan: str) -> None:
    store = await open_store(settings)
    try:
        if plan:
            found = await store.records.get_dispatch(plan)
            dispatches = [found] if found else []
        else:
            dispatches = await store.records.dispatches_for_story(story)
        if not dispatches:
            raise NotFoundError("plan" if plan else "story", plan or story)
        root = Tree(f"story {dispatches[0].plan.story_id}")
        for dispatch in dispatches:
            runs = {r.deliberation_id: await store.records.get(r.deliberation_id) for r in dispatch.subtasks}
            await _plan(root, dispatch, runs)
        console.print(root)
    finally:
        await store.close()
