"""Token budgets in a run: where they come from (task, council, service), the stop at a stage boundary, and what
the record, the events and the metrics say about it. Driven through the application with the fake gateway."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace

import pytest
from prometheus_client import CollectorRegistry

from orchestrator.adapters.metrics.prometheus import DeliberationMetrics
from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.application.events import deliberation_events
from orchestrator.application.ports import AgentCall, Completion
from orchestrator.application.service import Orchestrator
from orchestrator.compose import Options, compose
from orchestrator.domain.budget import StopCode
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import InvalidArgumentError, TaskIdConflictError
from orchestrator.domain.events import BudgetStopped, RunEvent, RunFinished
from orchestrator.domain.model import AgentSpec, DeliberationStatus, Stage, Usage
from orchestrator.testing.fakes import FakeGateway, fake_ports

DEFAULTS = CouncilDefaults(model="fake-llm", temperature=0.7, max_tokens=512)
TASK = "Write a Python function that merges two sorted lists into one sorted list"


@dataclass
class FixedUsageGateway:
    """The fake gateway's answers, each reported as 100 prompt + 50 completion tokens, so that every estimate
    (domain/budget.py) is known: a first critique, revise or review of 3 agents is estimated at
    3 x (100 + 3 x 50) = 750 tokens and costs 3 x 150 = 450."""

    inner: FakeGateway = field(default_factory=FakeGateway)

    async def complete(self, agent: AgentSpec, call: AgentCall) -> Completion:
        answered = await self.inner.complete(agent, call)
        return replace(answered, usage=Usage(100, 50))

    def stages_called(self) -> list[str]:
        return list(dict.fromkeys(stage for _, stage, _ in self.inner.calls))


@dataclass
class Recorder:
    events: list[RunEvent] = field(default_factory=list)

    def __call__(self, event: RunEvent) -> None:
        self.events.append(event)


def make_app(gateway: object, *, service_budget: int | None = None, listener: Recorder | None = None) -> Orchestrator:
    options = Options(
        DEFAULTS,
        default_timeout_s=30.0,
        early_stop=False,  # no verifier here: the rounds run as asked
        default_token_budget=service_budget,
        listeners=(listener,) if listener else (),
    )
    return compose(fake_ports(gateway), options).orchestrator  # type: ignore[arg-type]


async def run_with_budget(budget: int | None, rounds: int = 1) -> tuple[Deliberation, FixedUsageGateway]:
    gateway = FixedUsageGateway()
    app = make_app(gateway)
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    return await app.deliberate(Deliberate(TASK, "DEV", rounds=rounds, token_budget=budget)), gateway


def spend_by_stage(d: Deliberation) -> dict[tuple[Stage, int], int]:
    spent: dict[tuple[Stage, int], int] = defaultdict(int)
    for call in d.progress.calls:
        spent[(call.stage, call.round)] += call.usage.total_tokens
    return dict(spent)


def assert_ranked_and_complete(d: Deliberation) -> None:
    assert d.status is DeliberationStatus.COMPLETED and not d.error_message
    assert [r.rank for r in d.results] == [1, 2, 3] and d.winner_id == d.results[0].proposal.author_id


@pytest.mark.parametrize(
    ("budget", "stages", "spent", "words"),
    [
        (300, ["propose"], 450, "token budget reached: 450 of 300 tokens spent"),
        (1199, ["propose"], 450, "the next stage (about 750 tokens) would pass it"),
        (1200, ["propose", "critique"], 900, "900 of 1200 tokens spent"),
        (1649, ["propose", "critique"], 900, "would pass it"),
        (1650, ["propose", "critique", "revise"], 1350, "all 1 rounds ran; peer review skipped, token budget"),
    ],
)
async def test_the_budget_stops_the_run_at_the_stage_boundary_and_ranks_what_it_has(
    budget: int, stages: list[str], spent: int, words: str
) -> None:
    d, gateway = await run_with_budget(budget)
    assert_ranked_and_complete(d)
    assert gateway.stages_called() == stages
    assert d.usage.total_tokens == spent
    assert d.progress.stop_code is StopCode.TOKEN_BUDGET
    assert words in d.progress.stop_reason
    assert all(r.peer_score == -1.0 for r in d.results)  # no peer review was paid for
    last_stage = max(spend_by_stage(d).items(), key=lambda item: list(Stage).index(item[0][0]))[1]
    assert d.usage.total_tokens <= budget + last_stage


async def test_a_budget_large_enough_lets_every_stage_run_and_says_the_rounds_ran_out() -> None:
    d, gateway = await run_with_budget(2100)
    assert_ranked_and_complete(d)
    assert gateway.stages_called() == ["propose", "critique", "revise", "score"]
    assert d.usage.total_tokens == 1800 and d.task.token_budget == 2100
    assert d.progress.stop_code is StopCode.ROUNDS_DONE and d.progress.stop_reason == "all 1 rounds ran"


async def test_without_a_budget_nothing_is_checked() -> None:
    d, gateway = await run_with_budget(None, rounds=2)
    assert d.task.token_budget is None and d.progress.stop_code is StopCode.ROUNDS_DONE
    assert gateway.stages_called() == ["propose", "critique", "revise", "score"]
    assert d.usage.total_tokens == 150 * 3 * 6  # propose, 2 x (critique, revise), score


async def test_best_of_n_stops_for_nothing_it_does_not_spend() -> None:
    d, gateway = await run_with_budget(100, rounds=0)  # reached after propose, but ranking costs no tokens
    assert_ranked_and_complete(d)
    assert gateway.stages_called() == ["propose"]
    assert d.progress.stop_code is StopCode.ROUNDS_DONE


async def test_every_budget_stays_within_one_stage_of_its_limit_with_the_fake_models_own_usage() -> None:
    stop_points = set()
    for budget in range(500, 12_000, 700):
        gateway = FakeGateway()
        app = make_app(gateway)
        await app.create_council(CreateCouncil(role="DEV", num_agents=3))
        d = await app.deliberate(Deliberate(TASK, "DEV", rounds=2, token_budget=budget))
        assert_ranked_and_complete(d)
        by_stage = spend_by_stage(d)
        last = list(by_stage)[-1]
        assert d.usage.total_tokens <= budget + by_stage[last], (budget, by_stage)
        if d.progress.stop_code is StopCode.TOKEN_BUDGET:
            stop_points.add(last)
    assert len(stop_points) >= 3, stop_points  # the sweep stopped the runs at several boundaries


async def test_a_council_default_applies_and_an_explicit_task_zero_lifts_it() -> None:
    gateway = FixedUsageGateway()
    app = make_app(gateway, service_budget=50_000)
    await app.create_council(CreateCouncil(role="DEV", num_agents=3, token_budget=1000))
    await app.create_council(CreateCouncil(role="QA", num_agents=3))
    await app.create_council(CreateCouncil(role="DATA", num_agents=3, token_budget=0))
    council_default = await app.deliberate(Deliberate(TASK, "DEV", rounds=1))
    assert council_default.task.token_budget == 1000
    assert council_default.progress.stop_code is StopCode.TOKEN_BUDGET
    unlimited = await app.deliberate(Deliberate(TASK, "DEV", rounds=1, token_budget=0))
    assert unlimited.task.token_budget is None and unlimited.progress.stop_code is StopCode.ROUNDS_DONE
    assert unlimited.usage.total_tokens == 1800
    own = await app.deliberate(Deliberate(TASK, "DEV", rounds=1, token_budget=1300))
    assert own.task.token_budget == 1300 and own.usage.total_tokens == 900
    service_default = await app.deliberate(Deliberate(TASK, "QA", rounds=1))
    assert service_default.task.token_budget == 50_000
    council_unlimited = await app.deliberate(Deliberate(TASK, "DATA", rounds=1))
    assert council_unlimited.task.token_budget is None  # the council's 0 lifts the service default


async def test_negative_budgets_are_refused_naming_the_field() -> None:
    app = make_app(FixedUsageGateway())
    with pytest.raises(InvalidArgumentError) as council:
        await app.create_council(CreateCouncil(role="DEV", token_budget=-1))
    assert council.value.field == "config.token_budget"
    await app.create_council(CreateCouncil(role="DEV"))
    with pytest.raises(InvalidArgumentError) as task:
        await app.deliberate(Deliberate(TASK, "DEV", token_budget=-5))
    assert task.value.field == "constraints.token_budget"


async def test_the_same_task_id_with_another_budget_is_a_conflict_and_the_same_one_attaches() -> None:
    app = make_app(FixedUsageGateway())
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    first = await app.deliberate(Deliberate(TASK, "DEV", task_id="budget-1", rounds=1, token_budget=1200))
    again = await app.deliberate(Deliberate(TASK, "DEV", task_id="budget-1", rounds=1, token_budget=1200))
    assert again.task_id == first.task_id and again.usage == first.usage
    unset = await app.deliberate(Deliberate(TASK, "DEV", task_id="budget-1", rounds=1))  # "the default": matches
    assert unset.task_id == first.task_id
    with pytest.raises(TaskIdConflictError, match="token_budget"):
        await app.deliberate(Deliberate(TASK, "DEV", task_id="budget-1", rounds=1, token_budget=0))


async def test_listeners_hear_the_budget_stop_and_the_terminal_event_carries_it() -> None:
    recorder = Recorder()
    registry = CollectorRegistry()
    metrics = DeliberationMetrics(registry)
    app = make_app(FixedUsageGateway(), listener=recorder)
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    await app.deliberate(Deliberate(TASK, "DEV", rounds=1, token_budget=1000))
    for event in recorder.events:
        metrics.observe(event)
    stops = [e for e in recorder.events if isinstance(e, BudgetStopped)]
    assert len(stops) == 1 and stops[0].before is Stage.CRITIQUE and stops[0].estimate == 750
    finished = next(e for e in recorder.events if isinstance(e, RunFinished))
    (outbound,) = deliberation_events(finished, 0)
    payload = json.loads(outbound.payload)["payload"]
    assert outbound.subject == "orchestration.deliberation.completed"
    assert payload["stop_code"] == "token_budget" and payload["token_budget"] == 1000
    assert payload["tokens_spent"] == 450 and "would pass it" in payload["stop_reason"]
    assert len(payload["results"]) == 3
    labels = {"role": "DEV", "stop_code": "token_budget"}
    assert registry.get_sample_value("orchestrator_deliberation_stops_total", labels) == 1.0
    assert registry.get_sample_value("orchestrator_deliberation_budget_used_ratio_sum", {"role": "DEV"}) == 0.45
