"""Auto-dispatch end to end: a real nats-server, `orchestrator serve` with ENABLE_NATS, plans published like the
planning service publishes them. Councils do not exist beforehand: the first plan creates them."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.application.events import ALL_SUBJECTS
from orchestrator.domain.evidence import python_code, signatures
from orchestrator.domain.plans import deliberation_id
from orchestrator.testing.fake_llm import FakeLLMServer
from tests.e2e.conftest import ServeProcess, free_port, serving
from tests.e2e.test_serve_operations import scrape

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

MAX_DELIVER = 3


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(store_dir=tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture(scope="module")
def service(
    bus: NatsServer, fake_llm_server: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    with serving(
        fake_llm_server,
        tmp_path_factory.mktemp("serve-nats"),
        ENABLE_NATS="true",
        NATS_URL=bus.url,
        NATS_MAX_DELIVER=str(MAX_DELIVER),
        NATS_ACK_WAIT="5",
        DEFAULT_AGENTS="2",
        METRICS_PORT=str(free_port()),
    ) as process:
        yield process


def plan_payload(plan_id: str) -> dict[str, Any]:
    return {
        "story_id": f"story-{plan_id}",
        "plan_id": plan_id,
        "approved_by": "product-owner",
        "roles": ["DEV", "QA", "DEVOPS"],
        "timestamp": "2026-11-25T10:00:00Z",
        "plan": {
            "title": "Password reset",
            "description": "Reset passwords by e-mail link",
            "acceptance_criteria": ["tokens expire after 30 minutes"],
        },
        "subtasks": [
            {
                "subtask_id": "dev",
                "role": "DEV",
                "title": "Token service",
                "description": "Write the token service",
                "requirements": ["tokens are single use"],
            },
            {
                "subtask_id": "qa",
                "role": "QA",
                "title": "Tests",
                "description": "Test the token service",
                "requirements": ["test expiry"],
                "depends_on": ["dev"],
            },
            {
                "subtask_id": "ops",
                "role": "DEVOPS",
                "title": "Deploy",
                "description": "Deployment manifest",
                "requirements": ["resource limits"],
            },
        ],
    }


def enveloped(payload: dict[str, Any], key: str) -> bytes:
    return json.dumps(
        {
            "event_type": "planning.plan.approved",
            "payload": payload,
            "idempotency_key": key,
            "correlation_id": payload.get("plan_id", "x"),
            "timestamp": "2026-11-25T10:00:00Z",
            "producer": "planning",
        }
    ).encode()


async def _publish(url: str, bodies: list[bytes]) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for body in bodies:
        await js.publish("planning.plan.approved", body, headers={"Nats-Msg-Id": uuid.uuid4().hex})
    await nc.close()


def publish(url: str, *bodies: bytes) -> None:
    asyncio.run(_publish(url, list(bodies)))


async def _events(url: str, subject: str) -> list[tuple[str, str, dict[str, Any]]]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(subject, stream="ORCHESTRATOR_EVENTS")
    found: list[tuple[str, str, dict[str, Any]]] = []
    try:
        while True:
            batch = await sub.fetch(200, timeout=1)
            for m in batch:
                headers = m.headers or {}
                found.append((m.subject, headers.get("Nats-Msg-Id", ""), json.loads(m.data)))
                await m.ack()
    except (nats.errors.TimeoutError, TimeoutError):  # the client raises either kind when nothing is left
        pass
    await sub.unsubscribe()
    await nc.close()
    return found


def events(url: str, subject: str = "orchestration.>") -> list[tuple[str, str, dict[str, Any]]]:
    return asyncio.run(_events(url, subject))


def wait_plan(address: str, plan_id: str, timeout_s: float = 120) -> pb.GetPlanResponse:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as ch:
        stub = pb_grpc.OrchestratorServiceStub(ch)
        while time.monotonic() < deadline:
            try:
                plan = stub.GetPlan(pb.GetPlanRequest(plan_id=plan_id), timeout=10)
                if plan.finished:
                    return plan
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            time.sleep(0.3)
    raise TimeoutError(f"plan {plan_id} not finished")


def result(address: str, task_id: str) -> pb.GetDeliberationResultResponse:
    with grpc.insecure_channel(address) as ch:
        stub = pb_grpc.OrchestratorServiceStub(ch)
        return stub.GetDeliberationResult(pb.GetDeliberationResultRequest(task_id=task_id), timeout=10)


def test_a_plan_with_three_subtasks_creates_councils_and_deliberates_in_order(
    service: ServeProcess, bus: NatsServer, fake_llm: FakeLLMServer
) -> None:
    with grpc.insecure_channel(service.address) as ch:
        assert not pb_grpc.OrchestratorServiceStub(ch).ListCouncils(pb.ListCouncilsRequest(), timeout=10).councils
    publish(bus.url, enveloped(plan_payload("plan-a"), "k-a"))
    plan = wait_plan(service.address, "plan-a")
    assert [s.state for s in plan.subtasks] == ["COMPLETED"] * 3
    with grpc.insecure_channel(service.address) as ch:
        councils = pb_grpc.OrchestratorServiceStub(ch).ListCouncils(pb.ListCouncilsRequest(), timeout=10).councils
    assert sorted(c.role for c in councils) == ["DEV", "DEVOPS", "QA"]

    dev = result(service.address, deliberation_id("plan-a", "dev"))
    qa = result(service.address, deliberation_id("plan-a", "qa"))
    assert dev.winner_id and dev.winner_id in qa.task_description  # QA got DEV's winning proposal as context
    assert qa.task_metadata["depends_on.dev.winner"] == dev.winner_id
    # QA sees DEV's code by its API alone (its signatures); a winner that defines no function, as it is
    api = signatures(python_code(dev.results[0].proposal.content))
    shown = [f"- `{s}`" for s in api] or [dev.results[0].proposal.content[:200]]
    assert all(line in qa.task_description for line in shown)
    published = events(bus.url)
    mine = [e for e in published if e[2]["payload"].get("plan_id") == "plan-a"]
    completed = [e for e in mine if e[0] == "orchestration.deliberation.completed"]
    assert sorted(e[2]["payload"]["subtask_id"] for e in completed) == ["dev", "ops", "qa"]
    assert len([e for e in mine if e[0] == "orchestration.plan.dispatched"]) == 1
    dev_event = next(e for e in completed if e[2]["payload"]["subtask_id"] == "dev")[2]["payload"]
    assert dev_event["winner_id"] == dev.winner_id and dev_event["results"][0]["rank"] == 1
    assert dev_event["usage"]["total_tokens"] > 0 and "score" in dev_event["results"][0]
    qa_started = next(
        e for e in mine if e[0] == "orchestration.deliberation.started" and e[2]["payload"]["subtask_id"] == "qa"
    )
    dev_completed_at = next(e for e in completed if e[2]["payload"]["subtask_id"] == "dev")[2]["timestamp"]
    assert qa_started[2]["timestamp"] >= dev_completed_at


def test_the_same_plan_published_again_dispatches_nothing_new(service: ServeProcess, bus: NatsServer) -> None:
    before = events(bus.url)
    publish(bus.url, enveloped(plan_payload("plan-a"), "k-a-again"), json.dumps(plan_payload("plan-a")).encode())
    time.sleep(3)
    after = events(bus.url)
    assert [e for e in after if e[2]["payload"].get("plan_id") == "plan-a"] == [
        e for e in before if e[2]["payload"].get("plan_id") == "plan-a"
    ]
    with grpc.insecure_channel(service.address) as ch:
        stub = pb_grpc.OrchestratorServiceStub(ch)
        listing = stub.ListDeliberations(pb.ListDeliberationsRequest(page_size=100), timeout=10)
    ids = [d.task_id for d in listing.deliberations]
    assert len(ids) == len(set(ids)) == 3


def test_every_published_subject_is_covered_by_a_stream(service: ServeProcess, bus: NatsServer) -> None:
    async def check() -> dict[str, str]:
        nc = await nats.connect(bus.url)
        js = nc.jetstream()
        found = {s: await js.find_stream_name_by_subject(s) for s in ALL_SUBJECTS}
        await nc.close()
        return found

    assert asyncio.run(check()) == dict.fromkeys(ALL_SUBJECTS, "ORCHESTRATOR_EVENTS")


def test_killed_mid_run_and_restarted_every_subtask_ends_exactly_once(
    service: ServeProcess, bus: NatsServer, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_latency(0.4)
    publish(bus.url, enveloped(plan_payload("plan-k"), "k-k"))
    deadline = time.monotonic() + 30
    while fake_llm.count(stage="critique") < 2 and time.monotonic() < deadline:  # deliberations under way
        time.sleep(0.1)
    assert service.restart(signal.SIGKILL) == -signal.SIGKILL
    plan = wait_plan(service.address, "plan-k")
    assert [s.state for s in plan.subtasks] == ["COMPLETED"] * 3
    # The killed process could not release its leases: the new one resumed its runs once they ran out.
    assert '"deliberation_resumed"' in service.log_path.read_text()
    mine = [e for e in events(bus.url) if e[2]["payload"].get("plan_id") == "plan-k"]
    completed = [e[2]["payload"]["subtask_id"] for e in mine if e[0] == "orchestration.deliberation.completed"]
    assert sorted(completed) == ["dev", "ops", "qa"]
    assert len([e for e in mine if e[0] == "orchestration.plan.dispatched"]) == 1
    with grpc.insecure_channel(service.address) as ch:
        listing = pb_grpc.OrchestratorServiceStub(ch).ListDeliberations(
            pb.ListDeliberationsRequest(page_size=500), timeout=10
        )
    ids = [d.task_id for d in listing.deliberations]
    assert len(ids) == len(set(ids))
    assert {deliberation_id("plan-k", s) for s in ("dev", "qa", "ops")} <= set(ids)


def test_an_event_published_after_a_nats_restart_is_processed(service: ServeProcess, bus: NatsServer) -> None:
    bus.stop()
    time.sleep(2)
    bus.start()
    publish(bus.url, enveloped(plan_payload("plan-r"), "k-r"))
    plan = wait_plan(service.address, "plan-r", timeout_s=90)
    assert [s.state for s in plan.subtasks] == ["COMPLETED"] * 3


def without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


def fuzzed_events(count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    good = plan_payload("plan-fuzz")
    makers = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))),
        lambda: b'{"plan_id": "p", ' + str(rng.random()).encode(),
        lambda: json.dumps([good]).encode(),
        lambda: json.dumps({**good, "plan_id": rng.randint(0, 99)}).encode(),
        lambda: json.dumps(without(good, rng.choice(["plan_id", "story_id", "timestamp", "approved_by"]))).encode(),
        lambda: json.dumps({**good, "roles": ["WIZARD"], "subtasks": []}).encode(),
        lambda: json.dumps({**good, "subtasks": [{"subtask_id": "x", "role": "CHEF"}]}).encode(),
        lambda: json.dumps({**good, "subtasks": [{"subtask_id": "x", "role": "DEV", "depends_on": ["x"]}]}).encode(),
        lambda: json.dumps({**good, "plan": {"title": "t" * 300_000}}).encode(),
        lambda: enveloped({**good, "approved_by": None}, "fuzz"),
        lambda: json.dumps({"event_type": "planning.plan.approved", "payload": "nope"}).encode(),
    ]
    return [makers[i % len(makers)]() for i in range(count)]


def test_two_hundred_bad_events_go_to_the_dlq_and_good_ones_still_flow(service: ServeProcess, bus: NatsServer) -> None:
    dlq_before = len(events(bus.url, "orchestration.dlq.planning"))
    metrics_port = int(service.env["METRICS_PORT"])
    termed_before = scrape(metrics_port).get(("orchestrator_nats_plan_events_total", (("outcome", "term"),)), 0)
    publish(bus.url, *fuzzed_events(200))
    publish(bus.url, enveloped(plan_payload("plan-after-fuzz"), "k-f"))
    plan = wait_plan(service.address, "plan-after-fuzz")
    assert [s.state for s in plan.subtasks] == ["COMPLETED"] * 3
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dlq = events(bus.url, "orchestration.dlq.planning")[dlq_before:]
        if len(dlq) >= 200:
            break
        time.sleep(1)
    assert len(dlq) == 200
    assert all(e[2]["payload"]["reason"] and e[2]["payload"]["delivery_count"] <= MAX_DELIVER for e in dlq)
    outcomes = scrape(metrics_port)
    assert outcomes[("orchestrator_nats_plan_events_total", (("outcome", "term"),))] - termed_before == 200
    assert outcomes[("orchestrator_nats_plan_events_total", (("outcome", "ack"),))] >= 1
    with grpc.insecure_channel(service.address) as ch:
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
