"""pb <-> domain, once: requests become commands, records become responses.

Every message the servicer returns is built here (a proposal's and an agent call's in `proposals.py`), from what the
application reports; a field the service does not know is left empty (the proto comment says so), never filled with a
plausible value. The status table (`STATUS_TO_PB`, `status_name`) is the only translation of deliberation statuses,
used by the server and the client.
"""

from __future__ import annotations

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator import __version__
from orchestrator.adapters.grpc.proposals import (
    call_pb,
    failures_pb,
    partial_results,
    result_pb,
    unranked,
    usage_pb,
)
from orchestrator.application.commands import CreateCouncil, Deliberate, Limits
from orchestrator.application.ports import RuntimeSummary
from orchestrator.application.runs.updates import Update
from orchestrator.application.service import StatusReport
from orchestrator.domain.budget import StopCode
from orchestrator.domain.cross_checks import CrossCheck, FollowUp
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.model import (
    Council,
    DeliberationStatus,
    Stage,
)
from orchestrator.domain.plans import PlanDispatch
from orchestrator.domain.redaction import redact_url
from orchestrator.domain.text import ellipsize

STATUS_TO_PB: dict[DeliberationStatus, pb.DeliberationStatus] = {
    DeliberationStatus.PENDING: pb.DELIBERATION_STATUS_PENDING,
    DeliberationStatus.IN_PROGRESS: pb.DELIBERATION_STATUS_IN_PROGRESS,
    DeliberationStatus.COMPLETED: pb.DELIBERATION_STATUS_COMPLETED,
    DeliberationStatus.FAILED: pb.DELIBERATION_STATUS_FAILED,
    DeliberationStatus.TIMEOUT: pb.DELIBERATION_STATUS_TIMEOUT,
    DeliberationStatus.CANCELLED: pb.DELIBERATION_STATUS_CANCELLED,
}
PB_TO_STATUS: dict[int, DeliberationStatus] = {int(v): k for k, v in STATUS_TO_PB.items()}


def status_name(code: int) -> str:
    """A wire status as the domain spells it ("COMPLETED"); "UNKNOWN" for 0, the number for one added later."""
    status = PB_TO_STATUS.get(code)
    if status is not None:
        return status.value
    return "UNKNOWN" if code == pb.DELIBERATION_STATUS_UNKNOWN else str(code)


def status_filter(code: int) -> DeliberationStatus | None:
    """ListDeliberations' filter: UNKNOWN (unset) means all statuses; a number the service does not know is refused."""
    status = PB_TO_STATUS.get(code)
    if status is None and code != pb.DELIBERATION_STATUS_UNKNOWN:
        raise InvalidArgumentError("status_filter", f"unknown status {code}")
    return status


LISTED_TEXT_CHARS = 1_000
"""Free text in an item of a list response (a summary's error message) is cut to this, so that a full page
(500 summaries, 100 councils) stays far below the 16 MiB message limit whatever the records hold."""
LISTED_MODEL_CHARS = Limits().max_model_chars
"""Councils stored before model_profile was limited are listed with the name cut to the limit."""


STOP_CODE_TO_PB: dict[StopCode | None, pb.StopReason] = {
    None: pb.STOP_REASON_UNSPECIFIED,
    StopCode.ROUNDS_DONE: pb.STOP_REASON_ROUNDS_DONE,
    StopCode.EVIDENCE_DECIDED: pb.STOP_REASON_EVIDENCE_DECIDED,
    StopCode.TOKEN_BUDGET: pb.STOP_REASON_TOKEN_BUDGET,
}


def stop_code_pb(d: Deliberation) -> pb.StopReason:
    return STOP_CODE_TO_PB[d.progress.stop_code]


PB_TO_STOP_CODE: dict[int, StopCode] = {int(v): k for k, v in STOP_CODE_TO_PB.items() if k is not None}


def stop_code_name(code: int) -> str:
    """A wire stop code as the domain spells it ("token_budget"); "" for UNSPECIFIED or a value added later."""
    found = PB_TO_STOP_CODE.get(code)
    return found.value if found is not None else ""


def deliberate_command(req: pb.DeliberateRequest) -> Deliberate:
    c = req.constraints
    return Deliberate(
        task_description=req.task_description,
        role=req.role,
        task_id=req.task_id,
        # Unset: the council's default; an explicit 0: best-of-N with verification.
        rounds=req.rounds if req.HasField("rounds") else None,
        num_agents=req.num_agents,
        rubric=c.rubric,
        requirements=tuple(c.requirements),
        metadata=dict(c.metadata),
        timeout_s=c.timeout_seconds,
        acceptance_tests=c.acceptance_tests,
        # Unset: the council's (else the service's) default; 0: unlimited; negative: refused by the use case.
        token_budget=c.token_budget if c.HasField("token_budget") else None,
        # Unset: the council's custom_params.samples_per_agent, else 1; out of 1..4: refused by the use case.
        samples=req.samples_per_agent if req.HasField("samples_per_agent") else None,
    )


def list_councils_response(page: list[Council], include_agents: bool, next_token: str) -> pb.ListCouncilsResponse:
    return pb.ListCouncilsResponse(councils=[council_info(c, include_agents) for c in page], next_page_token=next_token)


def create_council_command(req: pb.CreateCouncilRequest) -> CreateCouncil:
    cfg = req.config
    return CreateCouncil(
        role=req.role,
        num_agents=req.num_agents,
        rounds=cfg.deliberation_rounds,
        model=cfg.model_profile,
        agent_type=cfg.agent_type,
        # Field presence: unset (or no config at all) means on; only an explicit false turns peer review off.
        enable_peer_review=cfg.enable_peer_review if cfg.HasField("enable_peer_review") else True,
        custom_params=dict(cfg.custom_params),
        token_budget=cfg.token_budget if cfg.HasField("token_budget") else None,
    )


def step_name(d: Deliberation) -> str:
    if d.stage in (Stage.CRITIQUE, Stage.REVISE) or (d.stage == Stage.VERIFY and d.round > 0):
        return f"{d.stage} r{d.round}"
    return d.stage or d.status.value.lower()


def update_pb(u: Update, now_ms: int) -> pb.DeliberationUpdate:
    d = u.snapshot
    partial = d.progress.proposals.get(u.agent_id) if u.agent_id else None
    return pb.DeliberationUpdate(
        status=d.status.value,
        progress_percent=d.progress_percent(),
        current_step=step_name(d),
        current_agent=u.agent_id,
        partial_result=result_pb(unranked(partial)) if partial else None,
        task_id=d.task_id,
        stage=d.stage,
        round=d.round,
        status_code=STATUS_TO_PB[d.status],
        results=[result_pb(r) for r in d.results] if u.final else [],
        winner_id=d.winner_id,
        error_message=d.error_message,
        timestamp_ms=now_ms,
        rounds_run=d.progress.rounds_run,
        stop_reason=d.progress.stop_reason,
        token_budget=d.task.token_budget or 0,  # every result message carries budget, spend and stop code
        tokens_spent=d.usage.total_tokens,
        stop_code=stop_code_pb(d),
    )


def elapsed_ms(d: Deliberation, now_ms: int) -> int:
    if d.status.finished or not d.started_at_ms:
        return d.duration_ms
    return max(0, now_ms - d.started_at_ms)


def summary_pb(d: Deliberation, now_ms: int) -> pb.DeliberationSummary:
    return pb.DeliberationSummary(
        task_id=d.task_id,
        role=d.task.role.value,
        status=STATUS_TO_PB[d.status],
        current_stage=d.stage,
        current_round=d.round,
        rounds=d.task.rounds,
        agents_total=len(d.agents),
        agents_failed=len(d.failed_agent_ids),
        winner_id=d.winner_id,
        created_at_ms=d.created_at_ms,
        duration_ms=elapsed_ms(d, now_ms),
        usage=usage_pb(d.usage),
        error_message=ellipsize(d.error_message, LISTED_TEXT_CHARS),
        token_budget=d.task.token_budget or 0,
        stop_code=stop_code_pb(d),
    )


def runtime_pb(r: RuntimeSummary) -> pb.RayClusterSummary:
    return pb.RayClusterSummary(
        connected=r.connected,
        nodes=r.nodes,
        cpus=r.cpus,
        actors_alive=r.actors_alive,
        actors_restarting=r.actors_restarting,
        actors_dead=r.actors_dead,
        address=redact_url(r.address),
        nodes_dead=r.nodes_dead,
        actor_restarts=r.actor_restarts,
        node_list=[
            pb.RayNodeSummary(
                node_id=n.node_id,
                address=n.address,
                alive=n.alive,
                head=n.head,
                cpus=n.cpus,
                labels=dict(n.labels),
                agents_alive=n.agents_alive,
                agents_restarting=n.agents_restarting,
                calls_in_flight=n.calls_in_flight,
                death_reason=n.death_reason,
            )
            for n in r.node_list
        ],
    )


def plan_pb(dispatch: PlanDispatch, runs: dict[str, Deliberation]) -> pb.GetPlanResponse:
    subtasks = []
    for r in dispatch.subtasks:
        run = runs.get(r.deliberation_id)
        winner = run.results[0] if run and run.results else None
        subtasks.append(
            pb.PlanSubtaskInfo(
                subtask_id=r.subtask.subtask_id,
                role=r.subtask.role.value,
                title=r.subtask.title,
                depends_on=list(r.subtask.depends_on),
                deliberation_id=r.deliberation_id,
                state=r.state.value,
                deliberation_status=STATUS_TO_PB[run.status] if run else pb.DELIBERATION_STATUS_UNKNOWN,
                winner_id=run.winner_id if run else "",
                winner_score=winner.score if winner else 0.0,
                error=r.error or (run.error_message if run else ""),
                duration_ms=run.duration_ms if run else 0,
            )
        )
    plan = dispatch.plan
    return pb.GetPlanResponse(
        plan_id=plan.plan_id,
        story_id=plan.story_id,
        title=plan.title,
        approved_by=plan.approved_by,
        received_at_ms=dispatch.received_at_ms,
        finished=dispatch.finished,
        subtasks=subtasks,
        outcome=dispatch.outcome.value if dispatch.outcome else "",
        cross_checks=[cross_check_pb(c) for c in dispatch.checks],
        follow_up=follow_up_pb(dispatch.follow_up) if dispatch.follow_up else None,
    )


def cross_check_pb(c: CrossCheck) -> pb.PlanCrossCheck:
    return pb.PlanCrossCheck(
        kind=c.kind.value,
        subtask_id=c.subtask_id,
        target_subtask_id=c.target_id,
        status=c.status.value,
        passed=c.passed,
        total=c.total,
        summary=c.summary,
        details=list(c.details),
        chosen=c.chosen,
        target_winner=c.target_winner,
        attempt=c.attempt,
    )


def follow_up_pb(f: FollowUp) -> pb.PlanFollowUp:
    return pb.PlanFollowUp(
        subtask_id=f.subtask_id,
        deliberation_id=f.deliberation_id,
        state=f.state,
        winner_id=f.winner_id,
        error=f.error,
        acceptance_tests=f.acceptance_tests,
    )


def metadata_pb(d: Deliberation, now_ms: int) -> pb.OrchestratorMetadata:
    return pb.OrchestratorMetadata(
        orchestrator_version=__version__,
        timestamp_ms=now_ms,
        execution_id=d.task_id,
        tags={
            "role": d.task.role.value,
            "rounds": str(d.task.rounds),
            "agents": str(len(d.agents)),
            "source": d.source,
        },
    )


def deliberate_response(d: Deliberation, now_ms: int) -> pb.DeliberateResponse:
    return pb.DeliberateResponse(
        task_id=d.task_id,
        results=[result_pb(r) for r in d.results],
        winner_id=d.winner_id,
        duration_ms=d.duration_ms,
        metadata=metadata_pb(d, now_ms),
        status=STATUS_TO_PB[d.status],
        failed_agents=failures_pb(d),
        usage=usage_pb(d.usage),
        error_message=d.error_message,
        rounds_run=d.progress.rounds_run,
        stop_reason=d.progress.stop_reason,
        token_budget=d.task.token_budget or 0,
        tokens_spent=d.usage.total_tokens,
        stop_code=stop_code_pb(d),
    )


def result_response(d: Deliberation, now_ms: int) -> pb.GetDeliberationResultResponse:
    return pb.GetDeliberationResultResponse(
        task_id=d.task_id,
        status=STATUS_TO_PB[d.status],
        results=partial_results(d),
        winner_id=d.winner_id,
        duration_ms=elapsed_ms(d, now_ms),
        error_message=d.error_message,
        metadata=metadata_pb(d, now_ms),
        role=d.task.role.value,
        current_stage=d.stage,
        current_round=d.round,
        rounds=d.task.rounds,
        failed_agents=failures_pb(d),
        usage=usage_pb(d.usage),
        calls=[call_pb(c) for c in d.progress.calls],
        created_at_ms=d.created_at_ms,
        task_description=d.task.description,
        task_metadata=dict(d.task.metadata),
        source=d.source,
        rounds_run=d.progress.rounds_run,
        stop_reason=d.progress.stop_reason,
        acceptance_tests=d.task.acceptance_tests,
        token_budget=d.task.token_budget or 0,
        tokens_spent=d.usage.total_tokens,
        stop_code=stop_code_pb(d),
    )


def council_info(c: Council, include_agents: bool) -> pb.CouncilInfo:
    model = ellipsize(c.model, LISTED_MODEL_CHARS)
    agents = (
        [
            pb.AgentInfo(
                agent_id=a.agent_id,
                role=a.role.value,
                # status, max_concurrent_tasks and languages are not reported (see the proto): the record does not
                # say whether the agent's actor is alive, and an agent takes any task of its role in any language.
                capabilities=pb.AgentCapabilities(
                    supported_tasks=[c.role.value], model_profile=ellipsize(a.model, LISTED_MODEL_CHARS)
                ),
                temperature=a.temperature,
                seed=a.seed,
            )
            for a in c.agents
        ]
        if include_agents
        else []
    )
    return pb.CouncilInfo(
        council_id=c.council_id,
        role=c.role.value,
        num_agents=len(c.agents),
        agents=agents,
        model=model,
        deliberation_rounds=c.rounds,
        created_at_ms=c.created_at_ms,
        token_budget=c.token_budget,
    )


def create_council_response(council: Council) -> pb.CreateCouncilResponse:
    agent_ids = [a.agent_id for a in council.agents]
    return pb.CreateCouncilResponse(council_id=council.council_id, agents_created=len(agent_ids), agent_ids=agent_ids)


def delete_council_response(council: Council, agents_removed: int) -> pb.DeleteCouncilResponse:
    return pb.DeleteCouncilResponse(
        success=True, message=f"council {council.council_id} deleted", agents_removed=agents_removed
    )


def serving(up: bool) -> str:
    """Spelled as grpc.health.v1 spells it, so GetStatus and health read alike."""
    return "SERVING" if up else "NOT_SERVING"


def status_response(report: StatusReport, include_stats: bool) -> pb.GetStatusResponse:
    total = sum(report.by_status.values())
    stats = pb.OrchestratorStats(
        total_deliberations=total,
        total_orchestrations=total,
        avg_deliberation_time_ms=report.avg_duration_ms,
        active_councils=len(report.councils),
        role_counts={c.role.value: len(c.agents) for c in report.councils},
    )
    return pb.GetStatusResponse(
        status=serving(report.serving),
        uptime_seconds=report.uptime_s,
        stats=stats if include_stats else None,
        version=__version__,
        deliberations_by_status={k.value: v for k, v in report.by_status.items()},
        running_deliberations=report.running,
        queue_depth=report.queued,
        ray=runtime_pb(report.runtime),
        llm_status="UNKNOWN" if report.llm_reachable is None else serving(report.llm_reachable),
        sandbox_status=report.sandbox,
    )


def submit_response(record: Deliberation, created: bool) -> pb.SubmitDeliberationResponse:
    return pb.SubmitDeliberationResponse(
        task_id=record.task_id, status=STATUS_TO_PB[record.status], existing=not created
    )


def cancel_response(record: Deliberation, cancelled: bool) -> pb.CancelDeliberationResponse:
    message = "cancelled" if cancelled else f"already finished as {record.status.value}; nothing to cancel"
    return pb.CancelDeliberationResponse(
        task_id=record.task_id, status=STATUS_TO_PB[record.status], cancelled=cancelled, message=message
    )


def list_deliberations_response(page: list[Deliberation], next_token: str, now_ms: int) -> pb.ListDeliberationsResponse:
    return pb.ListDeliberationsResponse(deliberations=[summary_pb(d, now_ms) for d in page], next_page_token=next_token)
