"""The `orchestrator` command: serve, councils setup|list|delete, deliberate."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.domain.errors import ConfigError, DependencyUnavailableError
from orchestrator.domain.redaction import redact_secrets

# gRPC's fork handlers serve a child that goes on using gRPC after fork(); this process forks only to exec (Ray's
# processes, nats-server), and each such fork while the server's threads are busy logged "skipping fork()
# handlers". gRPC reads the setting when it is first imported, hence here, before that.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
import grpc  # noqa: F401  (first imported here, after the setting above)

if TYPE_CHECKING:  # the service's heavy imports (Ray, gRPC server) load only for the commands that run it
    from orchestrator.adapters.grpc.client import Connection, OrchestratorClient
    from orchestrator.config import Settings
    from orchestrator.embedded_stack import EmbeddedOptions
    from orchestrator.runner import OnReady

app = typer.Typer(
    help="Fleet orchestrator: councils of LLM agents deliberating on software tasks.", no_args_is_help=True
)
councils_app = typer.Typer(help="Create, list and delete councils on a running service.", no_args_is_help=True)
app.add_typer(councils_app, name="councils")
plans_app = typer.Typer(help="Inspect dispatched plans.", no_args_is_help=True)
app.add_typer(plans_app, name="plans")
console = Console()
err = Console(stderr=True)

Address = Annotated[str, typer.Option("--address", "-a", envvar="ORCHESTRATOR_ADDRESS", help="gRPC address")]
DEFAULT_ADDRESS = "localhost:50055"


def _fail(message: str, code: int = 1) -> typer.Exit:
    # One line, however narrow the terminal: log collectors and `grep` see the whole reason.
    err.print(f"[red]error:[/red] {escape(redact_secrets(message))}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


@dataclass(frozen=True)
class _Credentials:
    token: str = field(default="", repr=False)
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None


_given: list[_Credentials] = []  # set once per process by the root callback below


@app.callback()
def _credentials(
    token: Annotated[
        str, typer.Option(envvar="ORCHESTRATOR_TOKEN", help="bearer token sent to the service", show_default=False)
    ] = "",
    tls_ca: Annotated[Path | None, typer.Option(envvar="ORCHESTRATOR_TLS_CA", help="PEM CA file: use TLS")] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(envvar="ORCHESTRATOR_TLS_CERT", help="PEM client certificate (mutual TLS)")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(envvar="ORCHESTRATOR_TLS_KEY", help="PEM client key (mutual TLS)")
    ] = None,
) -> None:
    """How client commands reach the service; given before the command (`orchestrator --token T councils list`)."""
    _given[:] = [_Credentials(token, tls_ca, tls_cert, tls_key)]


def _connection(address: str) -> Connection:
    from orchestrator.adapters.grpc.client import Connection

    creds = _given[0] if _given else _Credentials()
    return Connection(address, creds.token, creds.tls_ca, creds.tls_cert, creds.tls_key)


@contextlib.contextmanager
def _client(address: str) -> Iterator[OrchestratorClient]:
    """A client for one command; a refused or failed call ends the command with one line and exit code 1."""
    from orchestrator.adapters.grpc.client import OrchestratorClient, OrchestratorError

    try:
        with OrchestratorClient(_connection(address)) as client:
            yield client
    except OrchestratorError as exc:
        raise _fail(str(exc)) from None


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="gRPC port (overrides GRPC_PORT)")] = None,
    embedded: Annotated[
        bool, typer.Option("--embedded", help="start nats-server, the local LLM and a SQLite store as well")
    ] = False,
) -> None:
    """Run the gRPC service until SIGTERM/SIGINT (settings from the environment)."""
    from orchestrator.embedded_stack import EmbeddedOptions

    settings = _settings(port, need_llm=not embedded, web_view=embedded)
    options = EmbeddedOptions(
        grpc_port=settings.grpc_port,
        agents=settings.default_agents,
        rounds=settings.default_rounds,
        max_tokens=settings.vllm_max_tokens,
    )
    _run(settings, options if embedded else None)


def _settings(port: int | None, *, need_llm: bool, web_view: bool = False) -> Settings:
    """`web_view`: the web view is on at DEFAULT_WEB_PORT unless WEB_PORT says otherwise (0 or empty: off)."""
    from orchestrator.config import load_settings
    from orchestrator.config.logging_setup import configure_logging
    from orchestrator.config.settings import DEFAULT_WEB_PORT

    try:
        overrides: dict[str, object] = {"grpc_port": port} if port is not None else {}
        settings = load_settings(**overrides)
        if web_view and settings.web_port is None:
            settings = load_settings(**overrides, web_port=DEFAULT_WEB_PORT)
        if need_llm:
            settings.require_llm()
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _run(
    settings: Settings,
    embedded: EmbeddedOptions | None,
    on_ready: OnReady | None = None,
    last_words: Callable[[], None] = lambda: None,
) -> None:
    """Serves until SIGTERM/SIGINT (or `on_ready` returns). A shutdown that hangs past the runs' grace and a
    margin ends the process after `last_words()` (runner.exit_if_shutdown_hangs)."""
    try:
        asyncio.run(_serve(settings, embedded, on_ready, last_words))
    except (ConfigError, DependencyUnavailableError) as exc:
        raise _fail(str(exc), 2) from None


async def _serve(
    settings: Settings, embedded: EmbeddedOptions | None, on_ready: OnReady | None, last_words: Callable[[], None]
) -> None:
    from orchestrator.runner import SHUTDOWN_MARGIN_S, exit_if_shutdown_hangs, stop_on_signals

    stop = asyncio.Event()
    stop_on_signals(stop)
    limit_s = settings.shutdown_grace + SHUTDOWN_MARGIN_S
    watchdog = asyncio.create_task(exit_if_shutdown_hangs(stop, limit_s, last_words), name="shutdown-watchdog")
    try:
        await _serve_until_stopped(settings, embedded, on_ready, stop)
    finally:
        watchdog.cancel()


async def _serve_until_stopped(
    settings: Settings, embedded: EmbeddedOptions | None, on_ready: OnReady | None, stop: asyncio.Event
) -> None:
    from orchestrator.embedded_stack import embedded_stack
    from orchestrator.runner import run_service

    async with contextlib.AsyncExitStack() as stack:
        if embedded is not None:
            settings = await stack.enter_async_context(embedded_stack(settings, embedded))

        async def companion(address: str, running: Settings) -> None:
            try:
                if on_ready is not None:
                    await on_ready(address, running)
            finally:
                stop.set()

        await run_service(settings, stop, companion if on_ready else None)


def _check_plan_file(plan_file: Path | None, read: Callable[[Path], object]) -> None:
    """Before anything starts: a plan file that cannot be read is one line, at once."""
    if plan_file is not None:
        try:
            read(plan_file)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise _fail(f"--plan-file {plan_file}: {exc}", 2) from None


@app.command()
def demo(
    agents: Annotated[int, typer.Option(help="agents per council")] = 2,
    rounds: Annotated[int, typer.Option(help="critique/revise rounds of the DEV council")] = 1,
    review_rounds: Annotated[int, typer.Option(help="rounds of the other councils (0: best of N by checks)")] = 0,
    max_tokens: Annotated[int, typer.Option(help="max tokens per LLM call")] = 320,
    plan_file: Annotated[Path | None, typer.Option(help="approved plan (YAML/JSON) instead of the sample")] = None,
    report_dir: Annotated[Path, typer.Option(help="where the Markdown report goes")] = Path("reports"),
    timeout: Annotated[float, typer.Option(help="seconds to wait for the plan")] = 900.0,
    keep: Annotated[
        bool, typer.Option("--keep", help="keep serving (the web view too) after the plan finishes, until Ctrl-C")
    ] = False,
) -> None:
    """The whole system with a real local model: the embedded stack, the plan's councils, a sample plan, a report."""
    from orchestrator.adapters.grpc.client import OrchestratorError
    from orchestrator.config.logging_setup import configure_logging
    from orchestrator.embedded_stack import EmbeddedOptions
    from orchestrator.entrypoints.demo import DemoRequest, keep_serving, run_demo, sample_plan, web_url

    _check_plan_file(plan_file, sample_plan)
    settings = _settings(None, need_llm=False, web_view=True)
    configure_logging(settings.log_format, "WARNING")  # the live view owns the terminal: warnings and errors only
    # The service's default is 0 rounds: each council gets its own (DEV `rounds`, the others `review_rounds`).
    options = EmbeddedOptions(agents=agents, rounds=0, max_tokens=max_tokens)
    outcome: dict[str, Path] = {}
    failure: list[str] = []

    async def drive(address: str, running: Settings) -> None:
        request = DemoRequest(_connection(address), running.nats_url, agents, rounds, plan_file, report_dir, timeout)
        request = dataclasses.replace(request, web_url=web_url(running), review_rounds=review_rounds)
        try:
            outcome["report"] = await asyncio.to_thread(run_demo, request, console)
        except OrchestratorError as exc:
            failure.append(str(exc))
        except Exception as exc:  # a plan that never finished, a plan file that does not parse, ...
            failure.append(f"{type(exc).__name__}: {exc}")
        if keep and not failure:
            await keep_serving(address, request.web_url, console)

    def unfinished() -> str:
        return f"the demo did not finish: {failure[0]}" if failure else "the demo's shutdown did not finish"

    def last_words() -> None:  # the demo's one line, even when its shutdown has to be cut short
        _fail(unfinished())

    _run(settings, options, drive, last_words)
    if failure:
        raise _fail(unfinished())
    if "report" not in outcome:
        raise _fail("the demo was interrupted before its report was written")


@councils_app.command("setup")
def councils_setup(
    address: Address = DEFAULT_ADDRESS,
    num_agents: Annotated[int, typer.Option(help="agents per council (0 = service default)")] = 0,
    rounds: Annotated[int, typer.Option(help="default rounds (0 = service default)")] = 0,
    token: Annotated[str, typer.Option(help="bearer token (else --token before the command)", show_default=False)] = "",
    tls_ca: Annotated[Path | None, typer.Option(help="PEM CA file: use TLS", show_default=False)] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM client certificate (mutual TLS)", show_default=False)
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM client key (mutual TLS)", show_default=False)] = None,
) -> None:
    """Create a council for each of the five roles; existing councils are left as they are. Also takes the
    credentials after the command, as scripts/setup_all_councils.py (a thin call of this command) always has."""
    given = _given[0] if _given else _Credentials()
    _given[:] = [
        _Credentials(token or given.token, tls_ca or given.tls_ca, tls_cert or given.tls_cert, tls_key or given.tls_key)
    ]
    with _client(address) as client:
        outcomes = client.setup_councils(num_agents, rounds)
    for outcome in outcomes:
        mark = "[green]created[/green]" if outcome.created else "[yellow]exists[/yellow]"
        console.print(f"{outcome.role:<10} {mark}  {outcome.detail}")


@councils_app.command("list")
def councils_list(
    address: Address = DEFAULT_ADDRESS,
    role: Annotated[str, typer.Option(help="only this role")] = "",
    agents: Annotated[bool, typer.Option("--agents/--no-agents", help="show agents")] = True,
) -> None:
    """List councils and their agents."""
    from orchestrator.entrypoints.cli_render import token_budget_label

    with _client(address) as client:
        councils = client.list_councils(role, include_agents=agents)
    table = Table("role", "council", "agents", "rounds", "token budget", "model", "agent ids (temperature)")
    for c in councils:
        ids = ", ".join(f"{agent_id} ({temperature:.2f})" for agent_id, temperature in c.agents)
        budget = token_budget_label(c.token_budget)
        table.add_row(c.role, c.council_id, str(c.num_agents), str(c.rounds), budget, c.model, ids)
    console.print(table)


@councils_app.command("delete")
def councils_delete(role: str, address: Address = DEFAULT_ADDRESS) -> None:
    """Delete a role's council and stop its agents."""
    with _client(address) as client:
        deleted = client.delete_council(role)
    console.print(f"{deleted.message}; {deleted.agents_removed} agents removed")


TokenBudget = Annotated[
    int | None,
    typer.Option(
        "--token-budget",
        help="most tokens (prompt + completion) the run may spend (unset: council/service default; 0: unlimited)",
    ),
]
Samples = Annotated[
    int | None,
    typer.Option(
        "--samples", help="proposals per agent, 1..4 (unset: the council's custom_params samples_per_agent, else 1)"
    ),
]
TestsFile = Annotated[
    Path | None,
    typer.Option(
        "--tests",
        exists=True,
        dir_okay=False,
        help="Python acceptance tests (asserts, test_* functions): shown to the agents and run on every proposal",
    ),
]


@app.command()
def deliberate(
    task: Annotated[str, typer.Argument(help="the task to deliberate on")],
    role: Annotated[str, typer.Option(help="council role: DEV, QA, ARCHITECT, DEVOPS, DATA")] = "DEV",
    rounds: Annotated[
        int | None, typer.Option(help="most critique/revise rounds (unset: council default; 0: best-of-N, verified)")
    ] = None,
    agents: Annotated[int, typer.Option(help="agents taking part (0 = whole council)")] = 0,
    requirement: Annotated[list[str] | None, typer.Option("--requirement", "-r", help="a requirement (repeat)")] = None,
    rubric: Annotated[str, typer.Option(help="rubric text for peer scoring")] = "",
    tests_file: TestsFile = None,
    token_budget: TokenBudget = None,
    samples: Samples = None,
    task_id: Annotated[str, typer.Option(help="idempotency key (default: generated)")] = "",
    timeout: Annotated[float, typer.Option(help="seconds to wait")] = 900.0,
    full: Annotated[bool, typer.Option("--full", help="print every proposal in full")] = False,
    address: Address = DEFAULT_ADDRESS,
) -> None:
    """Run a deliberation and print the ranked proposals."""
    from orchestrator.adapters.grpc.client import DeliberationSpec
    from orchestrator.entrypoints.cli_render import render_result

    tests = tests_file.read_text(encoding="utf-8") if tests_file else ""
    spec = DeliberationSpec(
        task, role, rounds, agents, tuple(requirement or ()), rubric, tests, task_id, token_budget, samples=samples
    )
    with _client(address) as client:
        response = client.deliberate(spec, timeout)
    render_result(console, response, full=full)


@app.command()
def monitor(
    address: Address = DEFAULT_ADDRESS,
    once: Annotated[bool, typer.Option("--once", help="print one snapshot and exit")] = False,
    interval: Annotated[float, typer.Option(help="seconds between refreshes")] = 1.0,
    limit: Annotated[int, typer.Option(help="deliberations shown (newest first)")] = 20,
) -> None:
    """Live view of running and recent deliberations and of the Ray cluster, refreshing in place."""
    from orchestrator.entrypoints.monitor import run_monitor

    with contextlib.suppress(KeyboardInterrupt), _client(address) as client:
        run_monitor(client, once=once, interval_s=interval, limit=limit, console=console)


@app.command()
def watch(task_id: str, address: Address = DEFAULT_ADDRESS) -> None:
    """Print the updates of one deliberation as they happen, until it ends."""
    from orchestrator.entrypoints.monitor import run_watch

    with _client(address) as client:
        code = run_watch(client, task_id, console)
    raise typer.Exit(code)


@app.command()
def submit(
    task: Annotated[str, typer.Argument(help="the task to deliberate on")],
    role: Annotated[str, typer.Option(help="council role")] = "DEV",
    rounds: Annotated[
        int | None, typer.Option(help="most rounds (unset: council default; 0: best-of-N, verified)")
    ] = None,
    agents: Annotated[int, typer.Option(help="agents (0 = whole council)")] = 0,
    token_budget: TokenBudget = None,
    samples: Samples = None,
    task_id: Annotated[str, typer.Option(help="idempotency key (default: generated)")] = "",
    address: Address = DEFAULT_ADDRESS,
) -> None:
    """Start a deliberation in the background and print its task id."""
    from orchestrator.adapters.grpc.client import DeliberationSpec

    with _client(address) as client:
        spec = DeliberationSpec(task, role, rounds, agents, task_id=task_id, token_budget=token_budget, samples=samples)
        submitted = client.submit(spec)
    console.print(submitted.task_id)


@app.command()
def cancel(task_id: str, address: Address = DEFAULT_ADDRESS) -> None:
    """Cancel a running deliberation (what finished is kept)."""
    with _client(address) as client:
        cancelled = client.cancel(task_id)
    console.print(f"{cancelled.task_id}: {cancelled.message}")


@app.command("publish-plan")
def publish_plan(
    file: Annotated[Path | None, typer.Option("--file", "-f", help="JSON or YAML plan payload (with subtasks)")] = None,
    plan_id: Annotated[str, typer.Option(help="plan id (default: generated)")] = "",
    story_id: Annotated[str, typer.Option(help="story id (default: generated)")] = "",
    role: Annotated[list[str] | None, typer.Option("--role", help="a role of the plan (repeat)")] = None,
    title: Annotated[str, typer.Option(help="plan title")] = "",
    description: Annotated[str, typer.Option(help="plan description")] = "",
    criterion: Annotated[list[str] | None, typer.Option("--criterion", help="acceptance criterion (repeat)")] = None,
    approved_by: Annotated[str, typer.Option(help="who approved it")] = "cli",
    bare: Annotated[bool, typer.Option("--bare", help="publish the bare payload, as old producers do")] = False,
    nats_url: Annotated[str, typer.Option(envvar="NATS_URL", help="NATS server")] = "nats://127.0.0.1:4222",
) -> None:
    """Publish an approved plan on planning.plan.approved, validated as the service will validate it."""
    from orchestrator.domain.errors import InvalidArgumentError
    from orchestrator.entrypoints.plan_cli import build_payload, envelope_for, publish_sync

    try:
        payload = build_payload(
            file,
            plan_id=plan_id,
            story_id=story_id,
            roles=role or [],
            title=title,
            description=description,
            criteria=criterion or [],
            approved_by=approved_by,
        )
        seq, duplicate = publish_sync(nats_url, payload if bare else envelope_for(payload))
    except (OSError, ValueError, InvalidArgumentError) as exc:
        raise _fail(str(exc)) from None
    except DependencyUnavailableError as exc:
        raise _fail(str(exc)) from None
    note = " (duplicate: the stream already had it)" if duplicate else ""
    console.print(f"published plan {payload['plan_id']} (story {payload['story_id']}) as stream sequence {seq}{note}")


@plans_app.command("show")
def plans_show(plan_id: str, address: Address = DEFAULT_ADDRESS) -> None:
    """A dispatched plan's subtasks with their deliberation status and winners."""
    from orchestrator.entrypoints.plan_cli import render_plan

    with _client(address) as client:
        plan = client.plan(plan_id)
    render_plan(console, plan)


@app.command()
def history(
    story: Annotated[str, typer.Option(help="story id")] = "",
    plan: Annotated[str, typer.Option(help="plan id")] = "",
) -> None:
    """The decision graph of a story or plan (subtasks, deliberations, ranked proposals, winners), read from
    the store that STORE_URL or NEO4J_URI points at."""
    from orchestrator.config import load_settings
    from orchestrator.domain.errors import NotFoundError
    from orchestrator.entrypoints.history import print_history

    if bool(story) == bool(plan):
        raise _fail("give exactly one of --story or --plan", 2)
    try:
        asyncio.run(print_history(load_settings(), console, story=story, plan=plan))
    except (ConfigError, DependencyUnavailableError, NotFoundError) as exc:
        raise _fail(str(exc)) from None


def main() -> None:
    from orchestrator.config.logging_setup import configure_logging

    configure_logging("console", "WARNING")  # client commands stay quiet; `serve` and `demo` reconfigure
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
