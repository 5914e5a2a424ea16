"""The token-budget fields of the API are reserved until budgets are enforced: a request that sets one is refused
(never run silently without its budget), and the spend is reported from the run's own accounting."""

from __future__ import annotations

import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.adapters.grpc.mapping import (
    create_council_command,
    deliberate_command,
    deliberate_response,
    result_response,
)
from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.compose import Options, compose
from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.testing.fakes import FakeGateway, fake_ports

TASK = "Write a function that adds two numbers"


def test_a_request_with_a_token_budget_is_refused_not_run_without_it() -> None:
    with pytest.raises(InvalidArgumentError, match="token_budget"):
        deliberate_command(
            pb.DeliberateRequest(task_description=TASK, role="DEV", constraints=pb.TaskConstraints(token_budget=1000))
        )
    with pytest.raises(InvalidArgumentError, match="token_budget"):
        create_council_command(pb.CreateCouncilRequest(role="DEV", config=pb.CouncilConfig(token_budget=0)))
    assert deliberate_command(pb.DeliberateRequest(task_description=TASK, role="DEV")).task_description == TASK


async def test_the_tokens_spent_are_the_runs_own_usage() -> None:
    gateway = FakeGateway()
    app = compose(fake_ports(gateway), Options(CouncilDefaults("fake-llm", 0.7, 512))).orchestrator
    await app.create_council(CreateCouncil(role="DEV", num_agents=2))
    d = await app.deliberate(Deliberate(TASK, "DEV"))
    assert d.usage.total_tokens > 0
    assert deliberate_response(d).tokens_spent == d.usage.total_tokens
    assert result_response(d).tokens_spent == d.usage.total_tokens
    assert deliberate_response(d).token_budget == 0
