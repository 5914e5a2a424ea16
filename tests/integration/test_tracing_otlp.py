"""Traces over real OTLP/gRPC: the tracing facade with the SDK's OTLP exporter, sent to a real trace receiver
(orchestrator.testing.otlp_receiver), and the trace context carried through real NATS headers, a pickled Ray
call carrier and real gRPC metadata.

Three tracer providers stand for three processes: the planner that publishes the plan event, the orchestrator,
and an agent actor on a Ray worker. The actor side runs in a thread that does not inherit the caller's context,
so only the carrier can join its spans to the trace.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.adapters.grpc.server import ServerSecurity, create_server
from orchestrator.adapters.tracing.grpc_interceptor import TracingServerInterceptor
from orchestrator.adapters.tracing.port import (
    ChatInfo,
    ChatUsage,
    DeliberationInfo,
    ReceiveInfo,
    Retries,
    RunOutcome,
    StageInfo,
    ToolInfo,
    ToolResult,
    TraceCarrier,
)
from orchestrator.adapters.tracing.propagation import extract_nats, inject, inject_nats, nats_headers
from orchestrator.adapters.tracing.setup import TracingRuntime, TracingSettings, start_tracing
from orchestrator.adapters.tracing.traced_ports import TracedGateway
from orchestrator.adapters.tracing.worker import forwarded_env
from orchestrator.compose import compose
from orchestrator.testing.fakes import FakeGateway, fake_options, fake_ports
from orchestrator.testing.otlp_receiver import OtlpReceiver, ReceivedSpan, running_receiver

pytestmark = pytest.mark.integration

MODEL = "Qwen/Qwen3-0.6B"
AGENTS = {"agent-dev-001": (120, 40), "agent-dev-002": (130, 50), "agent-dev-003": (140, 60)}
"""Agent id -> (input tokens, output tokens) its call reports."""
SERVER = 2  # OTLP Span.SpanKind
CLIENT = 3
ERROR = 2  # OTLP Status.StatusCode


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with running_receiver() as running:
        yield running


def runtime_for(receiver: OtlpReceiver, service: str) -> TracingRuntime:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": service}
    runtime = start_tracing(TracingSettings.from_env(environ))
    assert runtime.tracing.enabled
    return runtime


def agent_actor_side(agent: TracingRuntime, carrier: TraceCarrier, agent_id: str) -> None:
    """What a Ray actor does with the carrier it received: join the trace, run its check in it."""
    assert not trace.get_current_span().get_span_context().is_valid, "the worker must not inherit the caller's span"
    with agent.tracing.attach(carrier), agent.tracing.span(ToolInfo("sandbox", agent_id=agent_id)) as tool:
        tool.record(ToolResult(passed=True, exit_code=0))


def by_name(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


async def test_one_trace_runs_from_the_plan_event_through_the_deliberation_to_every_agent_call(
    receiver: OtlpReceiver, nats_server: NatsServer
) -> None:
    planner, orchestrator, agent = (runtime_for(receiver, s) for s in ("planner", "fleet-orchestrator", "fleet-agent"))
    assert planner.tracer is not None
    tracing = orchestrator.tracing
    subject = f"planning.plan.approved.{uuid.uuid4().hex[:8]}"
    client = await nats.connect(nats_server.url)
    inbound = await client.subscribe(subject)
    outbound = await client.subscribe(f"{subject}.completed")
    worker = ThreadPoolExecutor(max_workers=3)  # a pool thread runs with an empty context, like a Ray worker
    try:
        with planner.tracer.start_as_current_span("planning.plan.approved publish", kind=SpanKind.PRODUCER):
            await client.publish(subject, b"{}", headers=inject_nats({"Nats-Msg-Id": "plan-1"}))
        message = await inbound.next_msg(timeout=30)
        assert message.headers is not None and message.headers["Nats-Msg-Id"] == "plan-1"

        async def call_agent(agent_id: str) -> None:
            with tracing.span(ChatInfo(agent_id, MODEL, "propose", 0, temperature=0.7, seed=7)) as chat:
                carrier = pickle.loads(pickle.dumps(tracing.carrier()))  # as Ray serialises a call's arguments
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(worker, agent_actor_side, agent, carrier, agent_id)
                chat.record(ChatUsage(*AGENTS[agent_id], response_model=MODEL))
                chat.record(Retries(0))

        info = DeliberationInfo(task_id="plan-1/dev", role="DEV", agents=3, rounds=0, token_budget=2000)
        with tracing.span(ReceiveInfo(subject), parent=message.headers):
            carried = tracing.carrier()  # as a dispatch stores it with the deliberation it starts
        with tracing.span(info, parent=carried) as run:
            with tracing.span(StageInfo("propose", 0, callers=3)):
                await asyncio.gather(*(call_agent(a) for a in AGENTS))
            spent = sum(i + o for i, o in AGENTS.values())
            run.record(RunOutcome(status="COMPLETED", rounds_run=0, stop_code="rounds_done", tokens_spent=spent))
            event_carrier = tracing.carrier()  # captured with the event in the outbox, published later
        await client.publish(f"{subject}.completed", b"{}", headers=nats_headers("evt-1", event_carrier))
        completed = await outbound.next_msg(timeout=30)
        consumer_context = extract_nats(completed.headers)
        with planner.tracer.start_as_current_span("orchestration.deliberation.completed process", consumer_context):
            pass
    finally:
        worker.shutdown(wait=True)
        await client.close()
        for runtime in (planner, orchestrator, agent):
            await runtime.shutdown()

    publish = receiver.one("planning.plan.approved publish")
    spans = receiver.wait_for(lambda got: len([s for s in got if s.trace_id == publish.trace_id]) == 11)
    in_trace = [s for s in spans if s.trace_id == publish.trace_id]
    assert sorted({s.service_name for s in in_trace}) == ["fleet-agent", "fleet-orchestrator", "planner"]

    (consumed,) = by_name(in_trace, f"{subject} process")
    assert consumed.parent_span_id == publish.span_id and consumed.attributes["messaging.system"] == "nats"
    (run_span,) = by_name(in_trace, "invoke_workflow deliberation")
    assert run_span.parent_span_id == consumed.span_id
    assert run_span.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert run_span.attributes["fleet.task_id"] == "plan-1/dev" and run_span.attributes["fleet.agents"] == 3
    assert run_span.attributes["fleet.tokens_spent"] == 540 and run_span.attributes["fleet.status"] == "COMPLETED"
    (stage,) = by_name(in_trace, "stage propose")
    assert stage.parent_span_id == run_span.span_id

    chats = by_name(in_trace, f"chat {MODEL}")
    assert {c.attributes["gen_ai.agent.id"] for c in chats} == set(AGENTS)
    for chat_span in chats:
        assert chat_span.parent_span_id == stage.span_id and chat_span.kind == CLIENT
        usage = (chat_span.attributes["gen_ai.usage.input_tokens"], chat_span.attributes["gen_ai.usage.output_tokens"])
        assert usage == AGENTS[chat_span.attributes["gen_ai.agent.id"]]
        assert chat_span.attributes["gen_ai.request.model"] == MODEL
        (remote,) = receiver.children_of(chat_span)
        assert remote.name == "execute_tool sandbox" and remote.service_name == "fleet-agent"
        assert remote.attributes["gen_ai.agent.id"] == chat_span.attributes["gen_ai.agent.id"]

    (downstream,) = by_name(in_trace, "orchestration.deliberation.completed process")
    assert downstream.parent_span_id == run_span.span_id
    assert [a.name for a in receiver.ancestors(downstream)] == [
        "invoke_workflow deliberation",
        f"{subject} process",
        "planning.plan.approved publish",
    ]


@pytest.fixture
async def traced_health_server(receiver: OtlpReceiver) -> AsyncIterator[tuple[str, TracingRuntime]]:
    runtime = runtime_for(receiver, "fleet-orchestrator")
    server = grpc.aio.server(interceptors=[runtime.server_interceptor()])
    health = HealthServicer()
    await health.set("fleet.orchestrator.v1.OrchestratorService", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", runtime
    finally:
        await server.stop(grace=None)
        await runtime.shutdown()


async def test_rpc_server_span_continues_the_callers_trace(
    receiver: OtlpReceiver, traced_health_server: tuple[str, TracingRuntime]
) -> None:
    address, runtime = traced_health_server
    caller = runtime_for(receiver, "grpc-client")
    assert caller.tracer is not None
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with caller.tracer.start_as_current_span("client call", kind=SpanKind.CLIENT) as client_span:
            metadata = tuple(inject().items())
            ok = await stub.Check(
                health_pb2.HealthCheckRequest(service="fleet.orchestrator.v1.OrchestratorService"), metadata=metadata
            )
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), metadata=metadata)
    assert ok.status == health_pb2.HealthCheckResponse.SERVING
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    await caller.shutdown()
    assert runtime.force_flush()

    trace_id = format(client_span.get_span_context().trace_id, "032x")
    spans = receiver.wait_for(lambda got: len([s for s in got if s.trace_id == trace_id]) == 3)
    client = next(s for s in spans if s.name == "client call")
    served = [s for s in spans if s.trace_id == trace_id and s.name == "grpc.health.v1.Health/Check"]
    assert len(served) == 2 and all(s.parent_span_id == client.span_id and s.kind == SERVER for s in served)
    assert {s.attributes["rpc.grpc.status_code"] for s in served} == {0, 5}
    failed = next(s for s in served if s.attributes["rpc.grpc.status_code"] == 5)
    assert failed.status_code == ERROR and failed.attributes["error.type"] == "NOT_FOUND"
    assert failed.attributes["rpc.service"] == "grpc.health.v1.Health" and failed.attributes["rpc.method"] == "Check"


async def test_rpc_without_traceparent_starts_a_new_trace(
    receiver: OtlpReceiver, traced_health_server: tuple[str, TracingRuntime]
) -> None:
    address, runtime = traced_health_server
    before = {s.span_id for s in receiver.spans}
    async with grpc.aio.insecure_channel(address) as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert runtime.force_flush()
    spans = receiver.wait_for(lambda got: any(s.span_id not in before for s in got))
    (new,) = [s for s in spans if s.span_id not in before]
    assert new.name == "grpc.health.v1.Health/Check" and new.parent_span_id == ""


WORKER_SCRIPT = """
import sys
from orchestrator.adapters.tracing.port import ToolInfo, ToolResult
from orchestrator.adapters.tracing.worker import worker_tracing
tracing = worker_tracing()
assert tracing.enabled
with tracing.attach({"traceparent": sys.argv[1]}), tracing.span(ToolInfo("sandbox", agent_id="agent-qa-001")) as tool:
    tool.record(ToolResult(passed=False, exit_code=3))
"""


async def test_a_worker_process_joins_the_trace_from_forwarded_env_and_flushes_at_exit(receiver: OtlpReceiver) -> None:
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "fleet-agent",
        "VLLM_API_KEY": "sk-canary-not-forwarded",
    }
    env = {**os.environ, **forwarded_env(environ), "PYTHONPATH": os.pathsep.join(sys.path)}
    assert "VLLM_API_KEY" not in forwarded_env(environ)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER_SCRIPT, f"00-{trace_id}-{parent_id}-01", env=env
    )
    assert await asyncio.wait_for(process.wait(), 60) == 0
    spans = receiver.wait_for(lambda got: any(s.trace_id == trace_id for s in got))
    (span,) = [s for s in spans if s.trace_id == trace_id]
    assert span.parent_span_id == parent_id and span.service_name == "fleet-agent"
    assert span.attributes["process.exit.code"] == 3 and span.attributes["fleet.check.passed"] is False


async def test_aborted_rpcs_record_their_status_code_and_never_the_details() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = grpc.aio.server(interceptors=[TracingServerInterceptor(provider.get_tracer("test"))])

    async def refuse(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "token sk-canary-detail is read-only")

    async def stream(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> AsyncIterator[bytes]:
        yield b"first"
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")

    handlers = {
        "Refuse": grpc.unary_unary_rpc_method_handler(refuse),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Svc", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError):
                await channel.unary_unary("/test.Svc/Refuse")(b"")
            received = []
            with pytest.raises(grpc.aio.AioRpcError):
                async for item in channel.unary_stream("/test.Svc/Stream")(b""):
                    received.append(item)
            assert received == [b"first"]
    finally:
        await server.stop(grace=None)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert (spans["test.Svc/Refuse"].attributes or {})["rpc.grpc.status_code"] == 7
    assert (spans["test.Svc/Stream"].attributes or {})["error.type"] == "RESOURCE_EXHAUSTED"
    assert all(s.status.status_code is StatusCode.ERROR for s in spans.values())
    assert "sk-canary-detail" not in repr(
        [(dict(s.attributes or {}), s.status.description, s.events) for s in spans.values()]
    )


async def test_the_service_server_traces_every_rpc_under_the_callers_trace_refused_ones_included(
    receiver: OtlpReceiver, tmp_path: Path
) -> None:
    """`create_server` with tracing on: the RPC span (outside the token check, so a refusal is traced too) is the
    child of the caller's `traceparent`, and the deliberation an RPC starts is the child of the RPC's span."""
    tokens = tmp_path / "tokens"
    tokens.write_text("writer-token-e5a1 write\n")
    runtime = runtime_for(receiver, "fleet-orchestrator")
    tracing = runtime.tracing
    ports = replace(fake_ports(TracedGateway(FakeGateway(), tracing)), tracing=tracing)
    app = compose(ports, fake_options(default_timeout_s=30.0)).orchestrator
    security = ServerSecurity(tokens_file=tokens)
    bound = create_server(app, "127.0.0.1", 0, security=security, tracing=runtime)
    await bound.server.start()
    trace_id, caller = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    traceparent = ("traceparent", f"00-{trace_id}-{caller}-01")
    writer = ("authorization", "Bearer writer-token-e5a1")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{bound.port}") as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ListCouncils(pb.ListCouncilsRequest(), metadata=(traceparent,))
            await stub.CreateCouncil(pb.CreateCouncilRequest(role="DEV", num_agents=2), metadata=(traceparent, writer))
            request = pb.DeliberateRequest(task_description="Write a slugify function", role="DEV", rounds=0)
            answer = await stub.Deliberate(request, metadata=(traceparent, writer))
    finally:
        await app.supervisor.shutdown(0)
        await bound.server.stop(None)
        await runtime.shutdown()
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED and answer.winner_id

    spans = receiver.wait_for(lambda got: sum(s.trace_id == trace_id and s.kind == SERVER for s in got) == 3)
    rpcs = {s.name.rpartition("/")[2]: s for s in spans if s.trace_id == trace_id and s.kind == SERVER}
    assert all(s.parent_span_id == caller for s in rpcs.values())
    assert rpcs["ListCouncils"].attributes["error.type"] == "UNAUTHENTICATED"
    assert rpcs["Deliberate"].attributes["rpc.grpc.status_code"] == 0
    (run,) = [s for s in spans if s.trace_id == trace_id and s.name == "invoke_workflow deliberation"]
    assert run.parent_span_id == rpcs["Deliberate"].span_id and run.attributes["fleet.status"] == "COMPLETED"
    chats = [s for s in spans if s.trace_id == trace_id and s.name == "chat fake-llm"]
    assert chats and all(receiver.parent_of(c) is not None for c in chats)
    assert "writer-token-e5a1" not in repr([(s.name, s.attributes, s.resource) for s in spans])
