"""`orchestrator demo`: the whole system on one machine, driven the way a user drives it.

Over the service's own gRPC API and NATS: the councils of the plan's roles are created through the same code as
`scripts/setup_all_councils.py`, a sample approved plan is published on `planning.plan.approved`, the live
monitor runs until every subtask has ended, then the winners are printed and a Markdown report is written.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from orchestrator.adapters.grpc.client import Connection, OrchestratorClient, Plan, Result
from orchestrator.entrypoints.monitor import snapshot
from orchestrator.entrypoints.plan_cli import build_payload, cross_check_lines, envelope_for, publish
from orchestrator.entrypoints.report import write_report

if TYPE_CHECKING:
    from orchestrator.config import Settings


@dataclass(frozen=True)
class DemoRequest:
    connection: Connection
    nats_url: str
    agents: int
    rounds: int
    plan_file: Path | None
    report_dir: Path
    timeout_s: float
    web_url: str = ""
    """The web view's address, printed for the user to open; "" when it is off."""
    review_rounds: int = 0
    """Rounds of the councils other than DEV. 0 (the default): QA and DEVOPS are best of N by their checks, and the
    cross-checks are their evidence; measured on the demo's plan, their critique/revise round cost about 80 s of the
    demo's 6 minutes and fixed no wrong test."""


def web_url(settings: Settings) -> str:
    """The web view's address for a browser on this machine; "" when it is off."""
    if not settings.web_port:
        return ""
    return f"{'https' if settings.grpc_tls_cert else 'http'}://127.0.0.1:{settings.web_port}/"


async def keep_serving(address: str, web: str, console: Console) -> None:
    """`demo --keep`: after the plan, the service stays up until the signal stops it (which cancels this)."""
    where = f"; the web view: {web}" if web else ""
    console.print(f"serving until Ctrl-C (gRPC at {address}{where})", soft_wrap=True)
    await asyncio.Event().wait()


def sample_plan(plan_file: Path | None) -> dict[str, Any]:
    sample = resources.files("orchestrator.entrypoints").joinpath("demo_plan.yaml")
    text = plan_file.read_text() if plan_file else sample.read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("the plan file must hold a mapping")
    suffix = time.strftime("%Y%m%d-%H%M%S")
    data["plan_id"] = f"{data.get('plan_id', 'demo-plan')}-{suffix}"  # a fresh plan per run
    return data


def plan_roles(payload: dict[str, Any]) -> list[str]:
    """The roles of the plan's subtasks (or, without subtasks, its listed roles), each once, upper-case."""
    subtasks = payload.get("subtasks") or []
    named = [str(s.get("role", "")) for s in subtasks if isinstance(s, dict)] or list(payload.get("roles") or [])
    return list(dict.fromkeys(r.strip().upper() for r in named if str(r).strip())) or ["DEV"]


def _plan_progress(plan: Plan) -> Text:
    state = (
        "finished" if plan.finished else "checking" if plan.cross_checks or plan.HasField("follow_up") else "running"
    )
    lines = [f"plan {plan.plan_id}: {state}{f' ({plan.outcome})' if plan.outcome else ''}"]
    for s in plan.subtasks:
        winner = f" winner {s.winner_id} ({s.winner_score:.3f})" if s.winner_id else ""
        lines.append(f"  {s.subtask_id:<22} {s.role:<7} {s.state:<10}{winner}")
    return Text("\n".join(lines))


def _wait_for_plan(client: OrchestratorClient, request: DemoRequest, plan_id: str, console: Console) -> Plan:
    deadline = time.monotonic() + request.timeout_s
    plan = None
    with Live(console=console, refresh_per_second=2) as live:
        while time.monotonic() < deadline:
            plan = client.find_plan(plan_id) or plan
            view = snapshot(client, 8)
            live.update(Group(view, _plan_progress(plan)) if plan else view)
            if plan is not None and plan.finished:
                return plan
            time.sleep(1.0)
    raise TimeoutError(f"plan {plan_id} did not finish within {request.timeout_s:.0f}s")


def run_demo(request: DemoRequest, console: Console) -> Path:
    """Blocking: councils, plan, monitor, report. Returns the report's path."""
    with OrchestratorClient(request.connection) as client:
        return _run_demo(client, request, console)


def _run_demo(client: OrchestratorClient, request: DemoRequest, console: Console) -> Path:
    started = time.monotonic()
    address = request.connection.address
    if request.web_url:
        console.print(f"web view: [bold]{request.web_url}[/bold]", soft_wrap=True)
    sandbox = client.status().sandbox_status or "unknown (the service did not say)"
    executed = sandbox.startswith("available")
    console.print(f"sandbox: {sandbox}", style=None if executed else "bold red", soft_wrap=True)
    payload = build_payload(
        None, plan_id="", story_id="", roles=[], title="", description="", criteria=[], approved_by="demo"
    ) | sample_plan(request.plan_file)
    # Only the councils the plan uses: each unused agent is a process the 2-core machine starts for nothing.
    roles = plan_roles(payload)
    console.print(f"[bold]1/4[/bold] councils for {', '.join(roles)} ({request.agents} agents each) at {address}")
    for role in roles:
        rounds = request.rounds if role == "DEV" else request.review_rounds
        for outcome in client.setup_councils(request.agents, rounds, [role]):
            state = "created" if outcome.created else "exists"
            console.print(f"    {outcome.role:<10} {state}, {rounds} critique/revise round{'s' * (rounds != 1)}")
    plan_id = str(payload["plan_id"])
    console.print(f"[bold]2/4[/bold] publishing approved plan {plan_id} on planning.plan.approved")
    asyncio.run(publish(request.nats_url, envelope_for(payload)))
    console.print("[bold]3/4[/bold] councils deliberating (live):")
    plan = _wait_for_plan(client, request, plan_id, console)
    results: dict[str, Result] = {
        s.subtask_id: client.result(s.deliberation_id) for s in plan.subtasks if s.deliberation_status
    }
    follow = plan.follow_up.deliberation_id if plan.HasField("follow_up") else ""
    if follow and plan.follow_up.state in ("COMPLETED", "FAILED"):
        results[follow] = client.result(follow)
    elapsed = time.monotonic() - started
    console.print()
    console.print(f"[bold]4/4[/bold] done in {elapsed:.0f}s; cross-checks:")
    for line in cross_check_lines(plan):
        console.print(f"    {line}", markup=False, soft_wrap=True)
    console.print("winners:")
    for s in plan.subtasks:
        winner = f"{s.winner_id} (score {s.winner_score:.3f})" if s.winner_id else f"{s.state}: {s.error}"
        console.print(f"    {s.subtask_id:<22} {s.role:<7} {winner}")
    path = write_report(request.report_dir, payload, plan, results, elapsed, sandbox=sandbox)
    console.print(f"report: [bold]{path}[/bold]", soft_wrap=True)  # one line, so the path can be copied
    if request.web_url:
        console.print(f"web view: [bold]{request.web_url}[/bold]", soft_wrap=True)
    return path
