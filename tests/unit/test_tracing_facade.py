"""The tracing facade: off unless configured, only whitelisted attributes, no exception text on spans.

Spans are recorded by the real SDK with its in-memory exporter (a real exporter of the SDK, not a fake of it);
the OTLP path over gRPC is covered in tests/integration/test_tracing_otlp.py.
"""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from orchestrator.adapters.tracing.facade import OtelTracing
from orchestrator.adapters.tracing.port import (
    ChatInfo,
    ChatUsage,
    DeliberationInfo,
    ForbiddenAttributeError,
    Retries,
    RunOutcome,
    StageInfo,
    ToolInfo,
    ToolResult,
    Tracing,
)
from orchestrator.adapters.tracing.propagation import extract_grpc, inject, inject_nats, nats_headers
from orchestrator.adapters.tracing.setup import TracingSettings, start_tracing
from orchestrator.domain.errors import ConfigError

INFO = DeliberationInfo(task_id="t-1", role="DEV", agents=3, rounds=1, token_budget=5000)


@pytest.fixture
def recorded() -> tuple[OtelTracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelTracing(provider.get_tracer("test")), exporter


def test_tracing_is_off_without_an_endpoint_or_exporter() -> None:
    assert not TracingSettings.from_env({}).enabled
    assert not TracingSettings.from_env({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}).enabled


def test_an_endpoint_turns_otlp_export_on() -> None:
    settings = TracingSettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert settings.enabled and settings.exporter == "otlp" and settings.endpoint == "http://collector:4317"
    traces_only = TracingSettings.from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317"})
    assert traces_only.endpoint == "http://c:4317"


def test_exporter_setting_overrides_the_endpoint_rule() -> None:
    assert TracingSettings.from_env({"OTEL_TRACES_EXPORTER": "otlp"}).exporter == "otlp"
    assert TracingSettings.from_env({"OTEL_TRACES_EXPORTER": "console"}).exporter == "console"
    off = {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}
    assert not TracingSettings.from_env(off).enabled
    disabled = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}
    assert not TracingSettings.from_env(disabled).enabled


def test_service_name_and_sampler_come_from_the_standard_variables() -> None:
    settings = TracingSettings.from_env(
        {
            "OTEL_SERVICE_NAME": "orch-a",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        }
    )
    assert (settings.service_name, settings.sampler, settings.sampler_arg) == (
        "orch-a",
        "parentbased_traceidratio",
        0.25,
    )
    assert TracingSettings.from_env({}).service_name == "fleet-orchestrator"


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "zipkin"},
        {"OTEL_TRACES_SAMPLER": "sometimes"},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
        {"OTEL_TRACES_SAMPLER_ARG": "half"},
    ],
)
def test_bad_tracing_settings_fail_at_start_up(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        TracingSettings.from_env(environ)


async def test_off_tracing_makes_no_spans_and_carries_no_context() -> None:
    runtime = start_tracing(TracingSettings.from_env({}))
    tracing = runtime.tracing
    assert not tracing.enabled and runtime.tracer is None
    with tracing.span(INFO) as run, tracing.span(StageInfo("propose", 0)) as stage:
        stage.set("fleet.callers", 3)
        assert tracing.carrier() == {}
        run.record(RunOutcome(status="COMPLETED", rounds_run=1))
    await runtime.shutdown()


def test_facade_satisfies_the_tracing_port() -> None:
    port: Tracing = OtelTracing.disabled()
    assert port.carrier() == {}


@pytest.mark.parametrize("key", ["api_key", "vllm.api_key", "authorization", "gen_ai.input.messages", "db.password"])
def test_facade_refuses_attributes_outside_the_whitelist(
    recorded: tuple[OtelTracing, InMemorySpanExporter], key: str
) -> None:
    tracing, exporter = recorded
    with tracing.span(ChatInfo("agent-dev-001", "qwen", "propose", 0)) as chat, pytest.raises(ForbiddenAttributeError):
        chat.set(key, "sk-canary-secret")
    (span,) = exporter.get_finished_spans()
    assert key not in (span.attributes or {})
    assert "sk-canary-secret" not in repr(dict(span.attributes or {}))


def test_off_facade_refuses_the_same_attributes() -> None:
    with OtelTracing.disabled().span(StageInfo("critique", 1)) as stage, pytest.raises(ForbiddenAttributeError):
        stage.set("password", "hunter2")


def test_attribute_values_lose_url_credentials_and_are_cut_short(
    recorded: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = recorded
    with tracing.span(ToolInfo("python-lint")) as tool:
        tool.set("fleet.status", "http://user:s3cret@llm:8000/v1?api_key=abc " + "x" * 1000)
    (span,) = exporter.get_finished_spans()
    value = str((span.attributes or {})["fleet.status"])
    assert "s3cret" not in value and "abc" not in value and len(value) == 256


def test_an_exception_marks_the_span_with_its_class_only(recorded: tuple[OtelTracing, InMemorySpanExporter]) -> None:
    tracing, exporter = recorded
    with pytest.raises(RuntimeError), tracing.span(ChatInfo("agent-dev-002", "qwen", "revise", 1)):
        raise RuntimeError("401 from http://llm?api_key=sk-canary")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    assert not span.events and "sk-canary" not in (span.status.description or "")


def test_spans_follow_the_genai_conventions(recorded: tuple[OtelTracing, InMemorySpanExporter]) -> None:
    tracing, exporter = recorded
    chat_info = ChatInfo("agent-dev-001", "qwen", "propose", 0, temperature=0.7, seed=11)
    with tracing.span(INFO) as run:
        with tracing.span(StageInfo("propose", 0, callers=1)), tracing.span(chat_info) as chat:
            chat.record(ChatUsage(120, 45, response_model="qwen-0.6b"))
            chat.record(Retries(2))
        with tracing.span(ToolInfo("sandbox", agent_id="agent-dev-001")) as tool:
            tool.record(ToolResult(passed=False, exit_code=1))
        run.record(RunOutcome(status="COMPLETED", rounds_run=1, stop_code="token_budget", tokens_spent=165))
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"invoke_workflow deliberation", "stage propose", "chat qwen", "execute_tool sandbox"}
    chat_attrs = dict(spans["chat qwen"].attributes or {})
    assert chat_attrs["gen_ai.operation.name"] == "chat" and chat_attrs["gen_ai.request.model"] == "qwen"
    assert (chat_attrs["gen_ai.usage.input_tokens"], chat_attrs["gen_ai.usage.output_tokens"]) == (120, 45)
    assert (chat_attrs["gen_ai.agent.id"], chat_attrs["fleet.retries"]) == ("agent-dev-001", 2)
    run_attrs = dict(spans["invoke_workflow deliberation"].attributes or {})
    assert run_attrs["gen_ai.operation.name"] == "invoke_workflow"
    assert (run_attrs["fleet.task_id"], run_attrs["fleet.role"], run_attrs["fleet.agents"]) == ("t-1", "DEV", 3)
    assert (run_attrs["fleet.status"], run_attrs["fleet.stop_code"], run_attrs["fleet.token_budget"]) == (
        "COMPLETED",
        "token_budget",
        5000,
    )
    assert dict(spans["execute_tool sandbox"].attributes or {})["gen_ai.operation.name"] == "execute_tool"
    assert spans["execute_tool sandbox"].parent is not None
    assert spans["execute_tool sandbox"].parent.span_id == spans["invoke_workflow deliberation"].context.span_id


def test_a_failed_deliberation_is_an_error_span(recorded: tuple[OtelTracing, InMemorySpanExporter]) -> None:
    tracing, exporter = recorded
    with tracing.span(INFO) as run:
        run.record(RunOutcome(status="FAILED", rounds_run=0))
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR and (span.attributes or {})["error.type"] == "failed"


def test_trace_headers_replace_stale_ones_and_keep_the_rest(recorded: tuple[OtelTracing, InMemorySpanExporter]) -> None:
    tracing, _ = recorded
    stale = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    with tracing.span(StageInfo("verify", 0)):
        headers = inject_nats({"Nats-Msg-Id": "evt-1", "Traceparent": stale})
        current = inject()
    assert headers["Nats-Msg-Id"] == "evt-1" and "Traceparent" not in headers
    assert headers["traceparent"] == current["traceparent"] != stale


def test_grpc_metadata_yields_the_callers_span_as_parent() -> None:
    parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    context = extract_grpc((("user-agent", "grpc-python"), ("traceparent", parent)))
    span_context = trace.get_current_span(context).get_span_context()
    assert (format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")) == ("a" * 32, "b" * 16)
    assert not trace.get_current_span(extract_grpc(None)).get_span_context().is_valid


def test_outbox_event_headers_carry_the_trace_captured_when_it_was_made() -> None:
    carrier = {"traceparent": "00-" + "c" * 32 + "-" + "d" * 16 + "-01", "baggage": "user=alice"}
    assert nats_headers("evt-9", carrier) == {"Nats-Msg-Id": "evt-9", "traceparent": carrier["traceparent"]}
    assert nats_headers("evt-9", None) == {"Nats-Msg-Id": "evt-9"}
