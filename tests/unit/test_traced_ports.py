"""Spans around the ports: a whole deliberation through the real protocol, with the agent gateway, the checker and
the sandbox wrapped, recorded by the real SDK (in-memory exporter)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from orchestrator.adapters.checks.checker import ThreadedChecker
from orchestrator.adapters.tracing.facade import OtelTracing
from orchestrator.adapters.tracing.traced_ports import TracedChecker, TracedGateway, TracedSandbox
from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.application.events import trace_context
from orchestrator.application.service import Orchestrator
from orchestrator.compose import Options, compose
from orchestrator.domain.deliberation import stage_plan
from orchestrator.domain.execution import Execution, ExecutionOutcome, SandboxLimits
from orchestrator.domain.model import DeliberationStatus
from orchestrator.testing.fakes import (
    FakeGateway,
    InMemoryCouncilStore,
    InMemoryDeliberationStore,
    InMemoryLeases,
    fake_ports,
)
from orchestrator.testing.sandbox import FakeSandbox

DEFAULTS = CouncilDefaults(model="fake-llm", temperature=0.7, max_tokens=512)
TASK = "Write a Python function that parses ISO-8601 dates and returns a datetime"


@pytest.fixture
def recorded() -> tuple[OtelTracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelTracing(provider.get_tracer("test")), exporter


def traced_app(gateway: FakeGateway, tracing: OtelTracing, *, events: bool = False) -> Orchestrator:
    ports = fake_ports(TracedGateway(gateway, tracing), checker=TracedChecker(ThreadedChecker(), tracing))
    ports = replace(ports, tracing=tracing)
    return compose(ports, Options(DEFAULTS, default_timeout_s=30.0, outbound_events=events)).orchestrator


async def test_a_run_is_one_deliberation_span_over_its_stage_spans_over_their_calls(
    recorded: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = recorded
    app = traced_app(FakeGateway(), tracing, events=True)
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    result = await app.deliberate(Deliberate(TASK, "DEV", rounds=1, task_id="traced-run-1"))
    assert result.status is DeliberationStatus.COMPLETED

    spans = exporter.get_finished_spans()
    (run,) = [s for s in spans if s.name == "invoke_workflow deliberation"]
    attributes = dict(run.attributes or {})
    assert attributes["fleet.task_id"] == "traced-run-1" and attributes["fleet.agents"] == 3
    assert attributes["fleet.status"] == "COMPLETED" and attributes["fleet.rounds"] == 1
    assert attributes["fleet.tokens_spent"] == result.usage.total_tokens > 0
    assert attributes["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens
    assert run.parent is None  # nothing was current when the run was asked for: a new trace

    stages = [s for s in spans if s.name.startswith("stage ")]
    assert [(dict(s.attributes or {})["fleet.stage"], dict(s.attributes or {})["fleet.round"]) for s in stages] == [
        (stage.value, round_) for stage, round_ in stage_plan(1)
    ]
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in stages)
    by_id = {s.context.span_id: s for s in stages}
    for chat in (s for s in spans if s.name == "chat fake-llm"):
        assert chat.parent is not None and chat.parent.span_id in by_id
        stage = by_id[chat.parent.span_id]
        assert dict(stage.attributes or {})["fleet.stage"] == dict(chat.attributes or {})["fleet.stage"]
    checks = [s for s in spans if s.name == "execute_tool checks"]
    assert checks and all(s.parent is not None and s.parent.span_id in by_id for s in checks)

    # The run's events carry its trace through the outbox, to be sent on as NATS headers.
    outbox = app.supervisor.records.outbox  # type: ignore[attr-defined]
    carried = {e.subject: trace_context(e.payload) for e in outbox.values()}
    trace_id = format(run.context.trace_id, "032x")
    assert set(carried) == {"orchestration.deliberation.started", "orchestration.deliberation.completed"}
    assert all(c["traceparent"].split("-")[1] == trace_id for c in carried.values())


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


async def test_a_run_resumed_after_a_restart_continues_the_trace_of_the_request_that_started_it(
    recorded: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = recorded
    councils, records, leases = InMemoryCouncilStore(), InMemoryDeliberationStore(), InMemoryLeases()

    def app(gateway: FakeGateway) -> Orchestrator:
        ports = replace(fake_ports(gateway, councils=councils, records=records, leases=leases), tracing=tracing)
        return compose(ports, Options(DEFAULTS, default_timeout_s=30.0)).orchestrator

    first = app(FakeGateway(latency_s=0.2))
    await first.create_council(CreateCouncil(role="DEV", num_agents=2))
    with tracing._tracer.start_as_current_span("client request") as request:  # type: ignore[union-attr]
        record, created = await first.submit(Deliberate(TASK, "DEV", rounds=1, task_id="traced-resume-1"))
    assert created and dict(record.trace)["traceparent"].split("-")[1] == format(request.context.trace_id, "032x")
    await asyncio.sleep(0.3)  # into its first stage
    await first.supervisor.shutdown(0)  # the process stops: the run stays IN_PROGRESS at its checkpoint
    stored = await records.get("traced-resume-1")
    assert stored is not None and stored.status is DeliberationStatus.IN_PROGRESS and stored.trace == record.trace

    second = app(FakeGateway())  # the next start, with no request (and no span) current
    assert await second.supervisor.resume_unfinished() == ["traced-resume-1"]
    final = await second.supervisor.wait("traced-resume-1")
    assert final.status is DeliberationStatus.COMPLETED

    runs = [s for s in exporter.get_finished_spans() if s.name == "invoke_workflow deliberation"]
    assert len(runs) == 2  # the interrupted run and the resumed one
    assert {s.context.trace_id for s in runs} == {request.context.trace_id}
    assert all(s.parent is not None and s.parent.span_id == request.context.span_id for s in runs)
