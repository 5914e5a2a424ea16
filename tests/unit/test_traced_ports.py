"""Spans around the ports: a whole deliberation through the real protocol, with the agent gateway, the checker and
the sandbox wrapped, recorded by the real SDK (in-memory exporter)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from orchestrator.adapters.checks.checker import ThreadedChecker
from orchestrator.adapters.tracing.facade import OtelTracing
from orchestrator.adapters.tracing.traced_ports import TracedChecker, TracedGateway, TracedSandbox
from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.application.service import Orchestrator
from orchestrator.compose import Options, compose
from orchestrator.domain.execution import Execution, ExecutionOutcome, SandboxLimits
from orchestrator.domain.model import DeliberationStatus
from orchestrator.testing.fakes import FakeGateway, fake_ports
from orchestrator.testing.sandbox import FakeSandbox

DEFAULTS = CouncilDefaults(model="fake-llm", temperature=0.7, max_tokens=512)
TASK = "Write a Python function that parses ISO-8601 dates and returns a datetime"


@pytest.fixture
def recorded() -> tuple[OtelTracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelTracing(provider.get_tracer("test")), exporter


def traced_app(gateway: FakeGateway, tracing: OtelTracing) -> Orchestrator:
    ports = fake_ports(TracedGateway(gateway, tracing), checker=TracedChecker(ThreadedChecker(), tracing))
    return compose(ports, Options(DEFAULTS, default_timeout_s=30.0)).orchestrator


async def test_every_agent_call_of_a_deliberation_is_a_chat_span_with_its_token_usage(
    recorded: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = recorded
    gateway = FakeGateway()
    app = traced_app(gateway, tracing)
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    result = await app.deliberate(Deliberate(TASK, "DEV", rounds=1))
    assert result.status is DeliberationStatus.COMPLETED

    spans = exporter.get_finished_spans()
    chats = [s for s in spans if s.name == "chat fake-llm"]
    assert len(chats) == len(gateway.calls) == len(result.progress.calls)
    calls = sorted(
        (c.agent_id, c.stage.value, c.round, c.usage.prompt_tokens, c.usage.completion_tokens)
        for c in result.progress.calls
    )
    traced = sorted(
        (
            a["gen_ai.agent.id"],
            a["fleet.stage"],
            a["fleet.round"],
            a["gen_ai.usage.input_tokens"],
            a["gen_ai.usage.output_tokens"],
        )
        for a in (dict(s.attributes or {}) for s in chats)
    )
    assert traced == calls
    checks = [s for s in spans if s.name == "execute_tool checks"]
    assert checks and all("fleet.check.passed" in (s.attributes or {}) for s in checks)


async def test_a_failed_agent_call_is_an_error_span_named_by_its_kind_only(
    recorded: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = recorded
    app = traced_app(FakeGateway(failing={"agent-dev-002"}), tracing)
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    await app.deliberate(Deliberate(TASK, "DEV", rounds=0))
    failed = [s for s in exporter.get_finished_spans() if s.status.status_code is StatusCode.ERROR]
    assert failed and all((s.attributes or {})["gen_ai.agent.id"] == "agent-dev-002" for s in failed)
    assert {(s.attributes or {})["error.type"] for s in failed} == {"http_500"}
    assert not any(s.events for s in failed)


async def test_sandbox_runs_are_execute_tool_spans_with_their_outcome(
    recorded: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = recorded
    fake = FakeSandbox(executions=[Execution(ExecutionOutcome.EXITED, exit_code=1)])
    sandbox = TracedSandbox(fake, tracing)
    limits = SandboxLimits()
    assert not (await sandbox.run({"t.py": "assert False"}, ["python", "t.py"], limits)).passed
    fake.available = False
    assert (await sandbox.run({}, ["true"], limits)).outcome is ExecutionOutcome.SKIPPED
    first, second = (dict(s.attributes or {}) for s in exporter.get_finished_spans())
    assert (first["fleet.check.passed"], first["process.exit.code"], first["fleet.check.skipped"]) == (False, 1, False)
    assert second["fleet.check.skipped"] is True and second["gen_ai.tool.name"] == "sandbox"
