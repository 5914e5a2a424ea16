"""The agent resource: its setting, and what a council is told where no node offers it."""

from __future__ import annotations

import grpc
import pytest

from orchestrator.adapters.grpc.errors import public_detail, status_for
from orchestrator.adapters.ray.agents import AGENT_RESOURCE, RayConfig, missing_resource_error
from orchestrator.config.settings import load_settings
from orchestrator.domain.errors import ConfigError


def test_the_setting_defaults_to_the_resource_the_workers_offer() -> None:
    assert load_settings().ray_agent_resource == AGENT_RESOURCE == RayConfig().agent_resource == "fleet_agent"


def test_an_empty_setting_means_no_custom_resource() -> None:
    assert load_settings(ray_agent_resource="").ray_agent_resource == ""
    assert load_settings(ray_agent_resource=" gpu_agent ").ray_agent_resource == "gpu_agent"


@pytest.mark.parametrize("value", ["CPU", "memory", "two words", "x" * 65, '{"fleet_agent": 1}'])
def test_a_name_that_is_not_a_custom_resource_stops_start_up(value: str) -> None:
    with pytest.raises(ConfigError, match="RAY_AGENT_RESOURCE"):
        load_settings(ray_agent_resource=value)


def test_a_missing_resource_is_failed_precondition_naming_both_ways_out() -> None:
    error = missing_resource_error("fleet_agent", 15.0)
    assert status_for(error) is grpc.StatusCode.FAILED_PRECONDITION
    told = public_detail(error)
    assert "no node of the Ray cluster offers the agent resource 'fleet_agent'" in told
    assert """start the Ray workers with --resources='{"fleet_agent": N}'""" in told
    assert "set RAY_AGENT_RESOURCE to empty to place the agents on any node" in told
    assert error.resource == "fleet_agent"
