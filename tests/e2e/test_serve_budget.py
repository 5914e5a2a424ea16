"""Token budgets against `orchestrator serve` with the fake LLM: a small budget stops a deliberation at a stage
boundary with the ranked proposals it has; a council default, an explicit per-task 0 and the service default
(DELIBERATION_TOKEN_BUDGET) resolve as documented; a negative budget is INVALID_ARGUMENT."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator

import grpc
import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.testing.fake_llm import FakeLLMServer
from tests.e2e.conftest import ServeProcess, serving

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

TASK = "Write a Python function that returns the n-th Fibonacci number"
SERVICE_BUDGET = 5_000_000
COUNCIL_BUDGET = 1


@pytest.fixture(scope="module")
def budgeted(fake_llm_server: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serving(
        fake_llm_server,
        tmp_path_factory.mktemp("serve-budget"),
        councils={"DEV": None, "QA": pb.CouncilConfig(token_budget=COUNCIL_BUDGET)},
        DELIBERATION_TOKEN_BUDGET=str(SERVICE_BUDGET),
    ) as process:
        yield process


@pytest.fixture
def stub(budgeted: ServeProcess, fake_llm: FakeLLMServer) -> Iterator[pb_grpc.OrchestratorServiceStub]:
    with grpc.insecure_channel(budgeted.address) as ch:
        yield pb_grpc.OrchestratorServiceStub(ch)


def deliberate(
    stub: pb_grpc.OrchestratorServiceStub, role: str = "DEV", budget: int | None = None
) -> pb.GetDeliberationResultResponse:
    constraints = pb.TaskConstraints()
    if budget is not None:
        constraints.token_budget = budget
    task_id = f"budget-{uuid.uuid4().hex[:8]}"
    request = pb.DeliberateRequest(task_id=task_id, task_description=TASK, role=role, rounds=1, constraints=constraints)
    stub.Deliberate(request, timeout=120)
    return stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id=task_id), timeout=10)


def spend_by_stage(result: pb.GetDeliberationResultResponse) -> dict[tuple[str, int], int]:
    spent: dict[tuple[str, int], int] = defaultdict(int)
    for call in result.calls:
        spent[(call.stage, call.round)] += call.prompt_tokens + call.completion_tokens
    return dict(spent)


def test_a_small_budget_stops_at_a_stage_boundary_with_the_ranked_proposals(
    stub: pb_grpc.OrchestratorServiceStub,
) -> None:
    reference = deliberate(stub, budget=0)  # unlimited: every stage runs
    assert reference.status == pb.DELIBERATION_STATUS_COMPLETED and reference.token_budget == 0
    assert reference.stop_code in (pb.STOP_REASON_ROUNDS_DONE, pb.STOP_REASON_EVIDENCE_DECIDED)
    propose_spend = spend_by_stage(reference)[("propose", 0)]
    # Twice the proposals' cost: the critique that would follow quotes every peer's proposal to every agent, so
    # its estimate passes what is left and the run must stop before it.
    budget = 2 * propose_spend
    result = deliberate(stub, budget=budget)
    assert result.status == pb.DELIBERATION_STATUS_COMPLETED and not result.error_message
    assert result.stop_code == pb.STOP_REASON_TOKEN_BUDGET and result.token_budget == budget
    assert "would pass it" in result.stop_reason
    assert [r.rank for r in result.results] == [1, 2, 3] and result.winner_id == result.results[0].proposal.author_id
    by_stage = spend_by_stage(result)
    assert list(by_stage) == [("propose", 0)]  # no critique, revise or peer review was paid for
    assert result.tokens_spent == sum(by_stage.values()) == result.usage.total_tokens
    assert result.tokens_spent <= budget + by_stage[("propose", 0)]
    listed = stub.ListDeliberations(pb.ListDeliberationsRequest(page_size=50), timeout=10).deliberations
    summary = next(d for d in listed if d.task_id == result.task_id)
    assert (summary.token_budget, summary.stop_code) == (budget, pb.STOP_REASON_TOKEN_BUDGET)
    (final,) = stub.WatchDeliberation(pb.WatchDeliberationRequest(task_id=result.task_id), timeout=10)
    assert final.stop_code == pb.STOP_REASON_TOKEN_BUDGET and final.tokens_spent == result.tokens_spent


def test_the_council_default_an_explicit_zero_and_the_service_default(
    stub: pb_grpc.OrchestratorServiceStub,
) -> None:
    councils = stub.ListCouncils(pb.ListCouncilsRequest(), timeout=10).councils
    qa = next(c for c in councils if c.role == "QA")
    dev = next(c for c in councils if c.role == "DEV")
    assert qa.HasField("token_budget") and qa.token_budget == COUNCIL_BUDGET and not dev.HasField("token_budget")
    council_default = deliberate(stub, role="QA")
    assert council_default.token_budget == COUNCIL_BUDGET
    assert council_default.status == pb.DELIBERATION_STATUS_COMPLETED
    assert (
        council_default.stop_code == pb.STOP_REASON_TOKEN_BUDGET
        and "token budget reached" in council_default.stop_reason
    )
    assert {c.stage for c in council_default.calls} == {"propose"} and len(council_default.results) == 3
    lifted = deliberate(stub, role="QA", budget=0)
    assert lifted.token_budget == 0 and lifted.stop_code != pb.STOP_REASON_TOKEN_BUDGET
    assert lifted.stop_code != pb.STOP_REASON_UNSPECIFIED and "critique" in {c.stage for c in lifted.calls}
    service_default = deliberate(stub, role="DEV")
    assert service_default.token_budget == SERVICE_BUDGET and service_default.stop_code != pb.STOP_REASON_TOKEN_BUDGET


def test_a_negative_budget_is_invalid_argument(stub: pb_grpc.OrchestratorServiceStub) -> None:
    request = pb.DeliberateRequest(task_description=TASK, role="DEV", constraints=pb.TaskConstraints(token_budget=-10))
    with pytest.raises(grpc.RpcError) as task:
        stub.Deliberate(request, timeout=30)
    assert task.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "token_budget" in (task.value.details() or "")
    council = pb.CreateCouncilRequest(role="DATA", config=pb.CouncilConfig(token_budget=-1))
    with pytest.raises(grpc.RpcError) as created:
        stub.CreateCouncil(council, timeout=30)
    assert created.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "token_budget" in (
        created.value.details() or ""
    )
