"""The service built on a real nats-server: what a run stores while the service stops still goes out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path

import nats

from orchestrator.adapters.checks.execution import ExecutionVerifier
from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.bootstrap import Overrides, bootstrap
from orchestrator.config import load_settings
from orchestrator.domain.model import DeliberationStatus
from orchestrator.testing.fakes import FakeGateway, FakeRuntime
from orchestrator.testing.sandbox import FakeSandbox

TASK = "Write a Python function that slugifies a title"


async def completed_events(url: str, task_id: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("orchestration.deliberation.completed", stream="ORCHESTRATOR_EVENTS")
        found: list[str] = []
        # The client raises either kind of timeout once the stream has nothing left.
        with contextlib.suppress(nats.errors.TimeoutError, TimeoutError):
            while True:
                for m in await sub.fetch(200, timeout=1):
                    if json.loads(m.data)["payload"].get("task_id") == task_id:
                        found.append(m.headers.get("Nats-Msg-Id", "") if m.headers else "")
                    await m.ack()
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


async def test_a_run_that_finishes_within_the_shutdown_grace_has_its_completion_published(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = load_settings(
        store_url=f"sqlite:///{tmp_path}/orchestrator.db",
        enable_nats=True,
        nats_url=nats_server.url,
        shutdown_grace=30,
    )
    gateway = FakeGateway(latency_s=0.5)  # propose and review: ~1 s, still running when the service stops
    overrides = Overrides(
        gateway=gateway,
        runtime=FakeRuntime(gateway=gateway),
        verifier=ExecutionVerifier(FakeSandbox(available=False)),
        llm_probe=False,
    )
    task_id = f"grace-{uuid.uuid4().hex[:8]}"
    async with bootstrap(settings, overrides=overrides) as app:
        await app.orchestrator.create_council(CreateCouncil(role="DEV", num_agents=2))
        await app.orchestrator.submit(Deliberate(TASK, "DEV", task_id=task_id, rounds=0))
        await asyncio.sleep(0.1)
        assert gateway.in_flight > 0  # under way as the stop begins; the relay task is stopped first

    async with bootstrap(settings, overrides=overrides) as again:  # the record says the run ended in the grace
        assert (await again.orchestrator.get_result(task_id)).status is DeliberationStatus.COMPLETED
        relay = again.relay
        assert relay is not None and relay.published == 0  # nothing was left in the outbox for this start
    assert len(await completed_events(nats_server.url, task_id)) == 1
