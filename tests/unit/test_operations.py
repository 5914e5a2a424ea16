"""Operator settings at the application level: the councils file, Prometheus metrics, code shipped to a Ray cluster."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from orchestrator.adapters.metrics.prometheus import DeliberationMetrics, LiveCollector
from orchestrator.adapters.ray.agents import AGENT_DISTRIBUTIONS, agent_runtime_env
from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.application.protocol.engine import Listener
from orchestrator.application.service import Orchestrator
from orchestrator.compose import compose
from orchestrator.config.councils_file import load_councils_file
from orchestrator.domain.errors import ConfigError
from orchestrator.domain.events import RunFinished
from orchestrator.domain.model import DeliberationStatus, Role
from orchestrator.testing.fakes import FakeGateway, InMemoryCouncilStore, fake_options, fake_ports

GOOD = """
councils:
  - role: DEV
    num_agents: 2
    rounds: 2
    model: Qwen/Qwen3-0.6B
    temperature: 0.5
    max_tokens: 512
  - role: devops
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "councils.yaml"
    path.write_text(text)
    return str(path)


def test_a_councils_file_becomes_create_commands(tmp_path: Path) -> None:
    commands = load_councils_file(write(tmp_path, GOOD))
    assert commands == [
        CreateCouncil(role="DEV", num_agents=2, rounds=2, model="Qwen/Qwen3-0.6B", temperature=0.5, max_tokens=512),
        CreateCouncil(role="DEVOPS"),
    ]
    assert load_councils_file(write(tmp_path, "")) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("councils:\n  - role: TESTER\n", "councils.0.role: Input should be 'DEV'"),
        (
            "councils:\n  - role: DEV\n    num_agents: 11\n",
            "councils.0.num_agents: Input should be less than or equal to 10",
        ),
        ("councils:\n  - role: DEV\n    rounds: 6\n", "councils.0.rounds"),
        ("councils:\n  - role: DEV\n    temperature: 3\n", "councils.0.temperature"),
        ("councils:\n  - role: DEV\n    max_tokens: 8\n", "councils.0.max_tokens"),
        ("councils:\n  - role: DEV\n    agents: 3\n", "councils.0.agents: Extra inputs are not permitted"),
        ("councils:\n  - role: DEV\n  - role: dev\n", "listed more than once: DEV"),
        ("councils: [role: DEV\n", "not valid YAML at line"),
        ("- role: DEV\n", "(top level): Input should be a valid dictionary"),
        ("councils: 3\n", "councils: Input should be a valid list"),
    ],
)
def test_an_invalid_councils_file_is_one_clear_error(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_councils_file(write(tmp_path, text))
    message = str(info.value)
    assert message.startswith("COUNCILS_FILE ") and reason in message and "\n" not in message


def test_a_missing_or_oversize_councils_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_councils_file(str(tmp_path / "absent.yaml"))
    with pytest.raises(ConfigError, match="larger than 256 KiB"):
        load_councils_file(write(tmp_path, "# " + "x" * 300_000))


async def make_app(gateway: FakeGateway, *listeners: Listener) -> tuple[Orchestrator, InMemoryCouncilStore]:
    councils = InMemoryCouncilStore()
    options = fake_options(listeners=listeners)
    return compose(fake_ports(gateway, councils=councils), options).orchestrator, councils


async def test_the_file_creates_only_missing_councils(tmp_path: Path) -> None:
    app, store = await make_app(FakeGateway())
    await app.create_council(CreateCouncil(role="DEVOPS", num_agents=4))
    created = await app.ensure_councils(load_councils_file(write(tmp_path, GOOD)))
    assert [c.role for c in created] == [Role.DEV]
    assert len(store.councils[Role.DEV].agents) == 2 and store.councils[Role.DEV].rounds == 2
    assert len(store.councils[Role.DEVOPS].agents) == 4  # an existing council is never reconfigured
    assert await app.ensure_councils(load_councils_file(write(tmp_path, GOOD))) == []


def sample(metrics: DeliberationMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_metrics_count_runs_stages_calls_tokens_and_failures() -> None:
    gateway = FakeGateway(failing={"agent-dev-003"})
    metrics = DeliberationMetrics()
    app, _ = await make_app(gateway, metrics.observe)
    LiveCollector(lambda: app.supervisor.queue_depth, lambda: app.supervisor.running_count, registry=metrics.registry)
    await app.create_council(CreateCouncil(role="DEV", num_agents=3))
    first = await app.deliberate(Deliberate("Write a slugify function", "DEV", task_id="m-1", rounds=1))
    second = await app.deliberate(Deliberate("Write a slugify function", "DEV", task_id="m-2", rounds=2))
    assert first.status is second.status is DeliberationStatus.COMPLETED

    assert sample(metrics, "orchestrator_deliberations_total", role="DEV", status="COMPLETED") == 2
    # agent-dev-003 fails its proposal in both runs and takes no further part
    assert sample(metrics, "orchestrator_llm_calls_total", role="DEV", stage="propose") == 6
    assert sample(metrics, "orchestrator_llm_errors_total", role="DEV", stage="propose") == 2
    assert sample(metrics, "orchestrator_llm_calls_total", role="DEV", stage="critique") == 2 + 4
    assert sample(metrics, "orchestrator_llm_calls_total", role="DEV", stage="revise") == 2 + 4
    assert sample(metrics, "orchestrator_llm_calls_total", role="DEV", stage="score") == 4
    assert sample(metrics, "orchestrator_llm_errors_total", role="DEV", stage="score") == 0
    completion = first.usage.completion_tokens + second.usage.completion_tokens
    assert completion > 0
    assert sample(metrics, "orchestrator_llm_tokens_total", role="DEV", kind="completion") == completion
    assert sample(metrics, "orchestrator_stage_duration_seconds_count", role="DEV", stage="propose") == 2
    assert sample(metrics, "orchestrator_stage_duration_seconds_count", role="DEV", stage="revise") == 1 + 2
    assert sample(metrics, "orchestrator_deliberation_duration_seconds_count", role="DEV", status="COMPLETED") == 2
    assert sample(metrics, "orchestrator_queue_depth") == 0
    assert metrics.registry.get_sample_value("orchestrator_nats_plan_events_total", {"outcome": "ack"}) is None


def test_nats_outcomes_are_read_at_scrape_time() -> None:
    metrics = DeliberationMetrics()
    stats = {"acked": 0, "nacked": 0, "dead": 0}
    LiveCollector(lambda: 3, lambda: 5, lambda: stats, registry=metrics.registry)
    stats.update(acked=7, nacked=2, dead=1)
    assert sample(metrics, "orchestrator_nats_plan_events_total", outcome="ack") == 7
    assert sample(metrics, "orchestrator_nats_plan_events_total", outcome="nak") == 2
    assert sample(metrics, "orchestrator_nats_plan_events_total", outcome="term") == 1
    assert sample(metrics, "orchestrator_queue_depth") == 3
    assert sample(metrics, "orchestrator_deliberations_running") == 2


def test_the_ray_runtime_env_ships_the_package_and_pins_the_agent_dependencies() -> None:
    env = agent_runtime_env()
    (package,) = env["py_modules"]
    assert (Path(package) / "adapters" / "ray" / "agents.py").is_file()
    assert all("==" in pin for pin in env["pip"]) and len(env["pip"]) == len(AGENT_DISTRIBUTIONS)


def test_the_shipped_pip_list_covers_every_library_the_actor_code_imports() -> None:
    """A cluster gets only the pinned list: a new third-party import in the actor's modules must be added to it."""
    import ast
    import subprocess
    import sys

    # The orchestrator modules a Ray worker loads to run the actor class, in a clean interpreter.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, orchestrator.adapters.ray.agents; "
            "print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
            "if n.split('.')[0] == 'orchestrator' and getattr(m, '__file__', None)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    imported = set()
    for path in loaded:
        for node in ast.walk(ast.parse(Path(path).read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"orchestrator", "ray", "__future__"}
    providers = metadata.packages_distributions()
    needed = {dist for module in third_party for dist in providers.get(module, [module])}
    assert len(loaded) > 5 and needed  # the probe saw the actor's modules and their imports
    assert needed <= set(AGENT_DISTRIBUTIONS), (
        f"not shipped to the cluster: {sorted(needed - set(AGENT_DISTRIBUTIONS))}"
    )


async def test_a_terminal_event_stays_under_the_bus_payload_limit() -> None:
    import json
    from dataclasses import replace

    from orchestrator.application.events import MAX_CONTENT_CHARS, deliberation_events

    app, _ = await make_app(FakeGateway())
    await app.create_council(CreateCouncil(role="DEV", num_agents=10))
    done = await app.deliberate(Deliberate("Write a slugify function", "DEV", task_id="big-1", rounds=0))
    small = json.loads(deliberation_events(RunFinished(done), 0)[0].payload)["payload"]["results"]
    assert all("content_truncated" not in r for r in small)  # normal events carry the whole text
    huge = replace(
        done,
        results=tuple(replace(r, proposal=replace(r.proposal, content="x" * 130_000)) for r in done.results),
    )
    (event,) = deliberation_events(RunFinished(huge), 0)
    assert len(event.payload.encode()) < 1024 * 1024  # NATS's default max_payload
    results = json.loads(event.payload)["payload"]["results"]
    assert len(results) == 10 and all(r["content_truncated"] for r in results)
    assert sum(len(r["content"]) for r in results) <= MAX_CONTENT_CHARS
