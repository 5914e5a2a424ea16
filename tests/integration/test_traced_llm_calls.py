"""`chat` spans around the real OpenAI-compatible client, against the fake server over real HTTP: the retries the
SDK made are counted from the requests the client sent, and concurrent calls never count each other's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from orchestrator.adapters.llm.openai_chat import LLMEndpoint, OpenAIChatClient
from orchestrator.adapters.tracing.facade import OtelTracing
from orchestrator.adapters.tracing.traced_ports import TracedGateway
from orchestrator.application.ports import AgentCall
from orchestrator.domain import prompts
from orchestrator.domain.errors import LLMCallError
from orchestrator.domain.model import AgentSpec, Role, Stage, TaskSpec
from orchestrator.testing.fake_llm import FakeLLMServer, FaultSpec

pytestmark = pytest.mark.integration

TASK = TaskSpec("t", "Write a slugify function in Python", Role.DEV, 1, 2)
PROPOSE = AgentCall("t", Stage.PROPOSE, 0, prompts.propose(TASK))


def agent(n: int) -> AgentSpec:
    return AgentSpec(f"agent-dev-00{n}", Role.DEV, "fake-llm", 0.7, 1000 + n, 256)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


@pytest.fixture
async def gateway(fake_llm: FakeLLMServer, exporter: InMemorySpanExporter) -> AsyncIterator[TracedGateway]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = OpenAIChatClient(LLMEndpoint(fake_llm.base_url, timeout_s=5.0, max_retries=2))
    yield TracedGateway(client, OtelTracing(provider.get_tracer("test")))
    await client.aclose()


def by_agent(spans: tuple[ReadableSpan, ...]) -> dict[str, dict[str, object]]:
    return {str((s.attributes or {})["gen_ai.agent.id"]): dict(s.attributes or {}) for s in spans}


async def test_each_calls_retries_are_its_own_even_when_calls_run_at_once(
    gateway: TracedGateway, fake_llm: FakeLLMServer, exporter: InMemorySpanExporter
) -> None:
    fake_llm.set_fault("agent-dev-002", FaultSpec("500", times=2))
    fake_llm.set_fault("agent-dev-003", FaultSpec("429", times=1, retry_after_s=0.1))
    completions = await asyncio.gather(*(gateway.complete(agent(n), PROPOSE) for n in (1, 2, 3)))
    assert all(c.usage.prompt_tokens > 0 for c in completions)
    spans = by_agent(exporter.get_finished_spans())
    assert {a: s["fleet.retries"] for a, s in spans.items()} == {
        "agent-dev-001": 0,
        "agent-dev-002": 2,
        "agent-dev-003": 1,
    }
    assert all(s["gen_ai.usage.output_tokens"] > 0 for s in spans.values())  # type: ignore[operator]
    assert spans["agent-dev-002"]["gen_ai.request.seed"] == 1002


async def test_a_call_that_fails_after_its_retries_is_an_error_span_with_its_kind(
    gateway: TracedGateway, fake_llm: FakeLLMServer, exporter: InMemorySpanExporter
) -> None:
    fake_llm.set_fault("agent-dev-001", FaultSpec("500"))
    with pytest.raises(LLMCallError):
        await gateway.complete(agent(1), PROPOSE)
    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes["fleet.retries"] == 2 and attributes["error.type"] == "http_500"
    assert span.status.status_code is StatusCode.ERROR and "gen_ai.usage.input_tokens" not in attributes
