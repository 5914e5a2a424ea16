"""Traces end to end: `orchestrator serve` with a real nats-server, local Ray and the fake LLM, exporting over real
OTLP/gRPC to the test's receiver (orchestrator.testing.otlp_receiver).

A plan event published with a `traceparent` header becomes one trace: the consumer span of the event, the
deliberation of each subtask under it, their stages, the agents' `chat` spans (made in the Ray workers, which
export them themselves) and the `execute_tool` spans of the checks. A gRPC call's `traceparent` is continued the
same way.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.domain.plans import deliberation_id
from orchestrator.testing.fake_llm import FakeLLMServer
from orchestrator.testing.otlp_receiver import OtlpReceiver, ReceivedSpan, running_receiver
from tests.e2e.conftest import ROOT, ServeProcess, serve_env, serving
from tests.e2e.test_serve_nats import enveloped, wait_plan

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(400)]

SERVICE = "fleet.orchestrator.v1.OrchestratorService"
INTERNAL, SERVER, CLIENT, CONSUMER = 1, 2, 3, 5  # OTLP Span.SpanKind


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(store_dir=tmp_path_factory.mktemp("nats-traces")) as server:
        yield server


@pytest.fixture(scope="module")
def traced_serve(
    receiver: OtlpReceiver, bus: NatsServer, fake_llm_server: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    with serving(
        fake_llm_server,
        tmp_path_factory.mktemp("serve-traces"),
        ENABLE_NATS="true",
        NATS_URL=bus.url,
        DEFAULT_AGENTS="2",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_SERVICE_NAME="fleet-orchestrator-e2e",
        OTEL_BSP_SCHEDULE_DELAY="200",  # export within a fraction of a second (the workers' too: forwarded)
    ) as process:
        yield process


def new_traceparent() -> tuple[str, str, str]:
    """(traceparent, trace id, span id) of a made-up caller span."""
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def plan(plan_id: str) -> dict[str, Any]:
    return {
        "story_id": f"story-{plan_id}",
        "plan_id": plan_id,
        "approved_by": "product-owner",
        "roles": ["DEV", "QA"],
        "timestamp": "2026-12-01T10:00:00Z",
        "plan": {"title": "Slugs", "description": "URL slugs for titles", "acceptance_criteria": ["ascii only"]},
        "subtasks": [
            {"subtask_id": "dev", "role": "DEV", "title": "slugify", "description": "Write slugify(title) -> str"},
            {"subtask_id": "qa", "role": "QA", "title": "tests", "description": "Test slugify", "depends_on": ["dev"]},
        ],
    }


async def _publish(url: str, body: bytes, traceparent: str) -> None:
    nc = await nats.connect(url)
    try:
        headers = {"Nats-Msg-Id": uuid.uuid4().hex, "traceparent": traceparent}
        await nc.jetstream().publish("planning.plan.approved", body, headers=headers)
    finally:
        await nc.close()


async def _completed_headers(url: str, task_ids: set[str]) -> dict[str, dict[str, str]]:
    """task id -> headers of its `orchestration.deliberation.completed` event."""
    nc = await nats.connect(url)
    found: dict[str, dict[str, str]] = {}
    try:
        sub = await nc.jetstream().pull_subscribe("orchestration.deliberation.completed", stream="ORCHESTRATOR_EVENTS")
        for _ in range(30):
            try:
                batch = await sub.fetch(50, timeout=1)
            except (nats.errors.TimeoutError, TimeoutError):  # nothing within the window (both kinds occur)
                if task_ids <= set(found):
                    break
                continue
            for m in batch:
                task_id = json.loads(m.data)["payload"]["task_id"]
                if task_id in task_ids:
                    found[task_id] = dict(m.headers or {})
                await m.ack()
    finally:
        await nc.close()
    return found


def attributes(span: ReceivedSpan) -> dict[str, Any]:
    return span.attributes


def pid(span: ReceivedSpan) -> int:
    return int(span.resource["process.pid"])


def test_a_plan_event_is_one_trace_down_to_every_agent_call(
    traced_serve: ServeProcess, bus: NatsServer, receiver: OtlpReceiver
) -> None:
    traceparent, trace_id, planner_span = new_traceparent()
    plan_id = f"plan-traced-{uuid.uuid4().hex[:6]}"
    asyncio.run(_publish(bus.url, enveloped(plan(plan_id), f"k-{plan_id}"), traceparent))
    finished = wait_plan(traced_serve.address, plan_id, timeout_s=240)
    assert [s.state for s in finished.subtasks] == ["COMPLETED", "COMPLETED"]
    task_ids = {deliberation_id(plan_id, s) for s in ("dev", "qa")}

    def complete(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == trace_id]
        runs = [s for s in mine if s.name == "invoke_workflow deliberation"]
        # Every kind asserted on below: processes export in batches, so one kind can come seconds after another.
        kinds = {"planning.plan.approved process", "execute_tool checks"} <= {s.name for s in mine}
        return len(runs) == 2 and kinds and sum(s.name.startswith("chat ") for s in mine) >= 2 * 2 * 2

    receiver.wait_for(complete, timeout_s=60)
    trace = receiver.in_trace(trace_id)
    by_id = {s.span_id: s for s in trace}

    # One consumer span per delivery (a loaded machine may outlast the ack wait and get the event again; the
    # redelivery dispatches nothing new): all children of the publisher's span, the runs under one of them.
    deliveries = [s for s in trace if s.name == "planning.plan.approved process"]
    assert deliveries and all(s.parent_span_id == planner_span and s.kind == CONSUMER for s in deliveries)
    assert all(attributes(s)["messaging.system"] == "nats" for s in deliveries)

    runs = [s for s in trace if s.name == "invoke_workflow deliberation"]
    assert {attributes(r)["fleet.task_id"] for r in runs} == task_ids
    (consumed,) = {r.parent_span_id for r in runs}
    assert consumed in {s.span_id for s in deliveries}
    for run in runs:
        a = attributes(run)
        assert a["gen_ai.operation.name"] == "invoke_workflow" and a["fleet.source"] == "plan"
        assert a["fleet.status"] == "COMPLETED" and a["fleet.agents"] == 2 and a["fleet.tokens_spent"] > 0

    stages = [s for s in trace if s.name.startswith("stage ")]
    assert {attributes(s)["fleet.stage"] for s in stages} >= {"propose", "verify", "score"}
    assert all(by_id[s.parent_span_id].name == "invoke_workflow deliberation" for s in stages)

    chats = [s for s in trace if s.name == "chat fake-llm"]
    assert len(chats) >= 8  # 2 runs x 2 agents x (propose + score) at least
    for chat in chats:
        a = attributes(chat)
        parent = by_id[chat.parent_span_id]
        assert parent.name == f"stage {a['fleet.stage']}" and chat.kind == CLIENT
        assert a["gen_ai.request.model"] == "fake-llm" and a["gen_ai.agent.id"].startswith(("agent-dev", "agent-qa"))
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
        assert a["fleet.retries"] == 0
        # Made and exported by the agent's Ray worker, not by the orchestrator process.
        assert pid(chat) != pid(runs[0])

    tools = [s for s in trace if s.name.startswith("execute_tool ")]
    assert {s.name for s in tools} >= {"execute_tool checks"}
    for tool in tools:
        assert attributes(tool)["gen_ai.operation.name"] == "execute_tool"
        assert any(a.name == "stage verify" or a.name == "stage score" for a in receiver.ancestors(tool))

    # The completed events carry the trace on, for their consumers.
    headers = asyncio.run(_completed_headers(bus.url, task_ids))
    assert set(headers) == task_ids
    carried = {h["traceparent"].split("-")[1] for h in headers.values()}
    assert carried == {trace_id}


def test_a_grpc_callers_traceparent_is_the_parent_of_the_rpc_and_of_the_run_it_starts(
    traced_serve: ServeProcess, receiver: OtlpReceiver
) -> None:
    traceparent, trace_id, caller_span = new_traceparent()
    metadata = (("traceparent", traceparent),)
    with grpc.insecure_channel(traced_serve.address) as channel:
        stub = pb_grpc.OrchestratorServiceStub(channel)
        request = pb.DeliberateRequest(
            task_description="Write a slugify function",
            role="DEV",
            rounds=0,
            constraints=pb.TaskConstraints(token_budget=100_000),
        )
        response = stub.Deliberate(request, metadata=metadata, timeout=120)
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id="no-such"), metadata=metadata)
    assert response.winner_id and missing.value.code() is grpc.StatusCode.NOT_FOUND

    # Wait for every span asserted on below: each process's exporter sends in batches, so the lookup's span (ended
    # last, in the service) and the agents' `chat` spans (from the Ray workers) can come seconds after the run's.
    wanted = {
        f"{SERVICE}/Deliberate",
        f"{SERVICE}/GetDeliberationResult",
        "invoke_workflow deliberation",
        "stage propose",
        "chat fake-llm",
    }

    def arrived(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == trace_id]
        proposes = {s.span_id for s in mine if s.name == "stage propose"}
        propose_chat = any(s.name == "chat fake-llm" and s.parent_span_id in proposes for s in mine)
        return wanted <= {s.name for s in mine} and propose_chat

    receiver.wait_for(arrived, timeout_s=60)
    trace = receiver.in_trace(trace_id)
    rpcs = {s.name: s for s in trace if s.kind == SERVER}
    deliberate = rpcs[f"{SERVICE}/Deliberate"]
    lookup = rpcs[f"{SERVICE}/GetDeliberationResult"]
    assert deliberate.parent_span_id == caller_span == lookup.parent_span_id
    assert attributes(deliberate)["rpc.grpc.status_code"] == 0 and attributes(deliberate)["rpc.system"] == "grpc"
    assert attributes(lookup)["rpc.grpc.status_code"] == 5 and attributes(lookup)["error.type"] == "NOT_FOUND"
    (run,) = [s for s in trace if s.name == "invoke_workflow deliberation"]
    assert run.parent_span_id == deliberate.span_id and attributes(run)["fleet.source"] == "grpc"
    assert attributes(run)["fleet.token_budget"] == 100_000
    assert attributes(run)["fleet.stop_code"] == "rounds_done"
    assert attributes(run)["fleet.tokens_spent"] == response.tokens_spent > 0
    (propose,) = [s for s in trace if s.name == "stage propose"]
    assert propose.parent_span_id == run.span_id
    assert any(s.name == "chat fake-llm" for s in receiver.children_of(propose))


def test_start_up_logs_the_tracing_mode(traced_serve: ServeProcess, receiver: OtlpReceiver) -> None:
    lines = [json.loads(line) for line in traced_serve.log_path.read_text().splitlines() if '"tracing_on"' in line]
    assert lines and lines[0]["exporter"] == "otlp" and lines[0]["endpoint"] == receiver.endpoint


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER: unsupported 'sometimes'"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: unsupported zipkin"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"}, "OTEL_TRACES_SAMPLER_ARG"),
    ],
)
def test_a_bad_tracing_setting_stops_start_up_with_one_clear_line(
    variables: dict[str, str], message: str, fake_llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    env = serve_env(fake_llm_server, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317", **variables)
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "serve"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr and "Traceback" not in done.stderr
