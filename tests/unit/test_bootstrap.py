"""The composition root: `bootstrap` builds the whole service once from Settings, taking fakes where given."""

from __future__ import annotations

from pathlib import Path

from orchestrator.adapters.checks.execution import ExecutionVerifier
from orchestrator.adapters.metrics.prometheus import DeliberationMetrics
from orchestrator.adapters.store.sqlite import SqliteStore
from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.bootstrap import Overrides, bootstrap
from orchestrator.config import load_settings
from orchestrator.domain.events import RunEvent
from orchestrator.domain.model import DeliberationStatus, Role
from orchestrator.testing.fakes import FakeClock, FakeGateway, FakeRuntime
from orchestrator.testing.sandbox import FakeSandbox

TASK = "Write a Python function that slugifies a title"
NO_SANDBOX = ExecutionVerifier(FakeSandbox(available=False))  # no Ray worker to probe in a unit test


async def test_bootstrap_builds_the_service_on_fakes_and_a_restart_restores_it(tmp_path: Path) -> None:
    settings = load_settings(store_url=f"sqlite:///{tmp_path}/orchestrator.db", enable_nats=False)
    clock = FakeClock()
    gateway = FakeGateway()
    seen: list[str] = []
    metrics = DeliberationMetrics()
    runtime = FakeRuntime(gateway=gateway)
    overrides = Overrides(gateway=gateway, runtime=runtime, verifier=NO_SANDBOX, clock=clock, llm_probe=False)

    async with bootstrap(settings, metrics, overrides=overrides, listeners=[lambda e: seen.append(e.name)]) as app:
        assert app.bus is None and app.relay is None and app.orchestrator.dispatcher is None  # NATS is off
        await app.orchestrator.create_council(CreateCouncil(role="DEV", num_agents=2))
        done = await app.orchestrator.deliberate(Deliberate(TASK, "DEV", task_id="boot-1", rounds=0))

    assert done.status is DeliberationStatus.COMPLETED
    assert done.created_at_ms == clock.now_ms() and done.finished_at_ms == clock.now_ms()  # the fake clock's time
    assert seen[0] == "started" and seen[-1] == "finished" and "call_finished" in seen
    counted = metrics.registry.get_sample_value("orchestrator_llm_calls_total", {"role": "DEV", "stage": "propose"})
    assert counted == 2

    # Started again on the same database, the council and the finished deliberation are still there.
    async with bootstrap(settings, overrides=overrides) as again:
        assert [c.role for c in await again.orchestrator.list_councils()] == [Role.DEV]
        assert (await again.orchestrator.get_result("boot-1")).status is DeliberationStatus.COMPLETED


async def test_a_store_given_to_bootstrap_is_used_and_left_open(tmp_path: Path) -> None:
    store = await SqliteStore.open("sqlite://:memory:")
    gateway = FakeGateway()
    events: list[RunEvent] = []
    overrides = Overrides(store=store, gateway=gateway, runtime=FakeRuntime(), verifier=NO_SANDBOX, llm_probe=False)
    async with bootstrap(load_settings(), overrides=overrides, listeners=[events.append]) as app:
        assert app.store is store
        await app.orchestrator.create_council(CreateCouncil(role="QA", num_agents=2))
        await app.orchestrator.deliberate(Deliberate(TASK, "QA", task_id="boot-2", rounds=0))
    assert (await store.records.get("boot-2")) is not None  # still open after the service stopped
    assert {e.task_id for e in events} == {"boot-2"}
    await store.close()
