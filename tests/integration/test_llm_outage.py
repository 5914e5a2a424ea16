"""A deliberation over real HTTP (the OpenAI client against the fake server) rides out a short LLM outage.

The server stops listening and drops its open connections for 3.5 s mid-run, as a restarting model server does;
the client's own retries give up well before that, so the run has to pause and try again to finish.
"""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.adapters.llm.openai_chat import LLMEndpoint, OpenAIChatClient
from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.compose import compose
from orchestrator.domain.model import DeliberationStatus
from orchestrator.testing.fake_llm import FakeLLMConfig, FakeLLMServer
from orchestrator.testing.fakes import fake_options, fake_ports

pytestmark = pytest.mark.integration

TASK = "Write a Python function that merges two sorted lists"


@pytest.mark.parametrize("kind", ["refuse", "503"])
async def test_a_deliberation_completes_with_every_agent_across_a_short_llm_outage(kind: str) -> None:
    with FakeLLMServer(FakeLLMConfig(latency_s=0.3)) as server:
        client = OpenAIChatClient(LLMEndpoint(server.base_url, timeout_s=10.0, max_retries=2))
        app = compose(fake_ports(client), fake_options()).orchestrator
        await app.create_council(CreateCouncil(role="DEV", num_agents=3))
        run = asyncio.create_task(app.deliberate(Deliberate(TASK, "DEV", rounds=1, timeout_s=60)))
        assert await asyncio.to_thread(server.wait_for_calls, 3, stage="propose", timeout=30)
        await asyncio.sleep(0.1)  # critique calls are in flight when the endpoint goes away
        server.outage(3.5, kind)  # type: ignore[arg-type]
        result = await run
        await client.aclose()
    assert result.status is DeliberationStatus.COMPLETED, result.error_message
    assert {r.proposal.author_id for r in result.results} == {"agent-dev-001", "agent-dev-002", "agent-dev-003"}
    assert result.failed_agent_ids == ()
    failed_attempts = [c for c in result.progress.calls if not c.ok]
    assert failed_attempts and all("unavailable" in c.error for c in failed_attempts)
