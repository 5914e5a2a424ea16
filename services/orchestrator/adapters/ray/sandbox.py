"""The sandbox on Ray: every run is a Ray task on a worker (local Ray's worker processes locally, the RayCluster's
worker pods in production), so untrusted code never runs in the gRPC process and verification scales out with
the cluster. The worker runs the default bubblewrap adapter. Runs need CPU, which only the worker nodes offer (the
head has `num-cpus 0`), and are spread over them; a run whose worker or whole node dies mid-run is run again on
another (`max_retries`; a run is idempotent: a fresh work dir, no side effects outside it).

A run that cannot be placed waits for a node in Ray (a retry after its node died included), which never ends when
every worker is gone. So while a run waits, the cluster is watched: once no alive node has offered CPU for
`no_worker_grace_s`, the task is cancelled and the run is reported as skipped, saying why; the next run tries
again. Long queues on a busy cluster are not cut short: only the absence of any worker is."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import ray

from orchestrator.domain.execution import Execution, SandboxAvailability, SandboxLimits

BACKEND = "bubblewrap on Ray workers"
WATCH_PERIOD_S = 2.0
"""How often a waiting run looks at the cluster (one query per period, shared by all runs in flight)."""


class NoWorkerError(Exception):
    """No alive node offered the CPU a run needs for `grace_s` seconds: every worker lost, none come back."""

    def __init__(self, grace_s: float) -> None:
        super().__init__(f"no alive Ray worker node offered CPU for {grace_s:g} s")
        self.grace_s = grace_s


def _in_worker(
    files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits | None, config: Any = None
) -> Any:
    # Imported in the worker: a cluster gets this package through the job's runtime_env.
    from orchestrator.adapters.sandbox.bwrap import BwrapSandbox

    sandbox = BwrapSandbox(config)

    async def work() -> Execution | SandboxAvailability:
        if limits is None:
            return await sandbox.probe()
        return await sandbox.run(files, command, limits)

    return asyncio.run(work())


async def wait_while_workers(
    result: Awaitable[Any], workers_alive: Callable[[], Awaitable[bool]], *, grace_s: float, period_s: float
) -> Any:
    """`result`, awaited while `workers_alive()` is asked every `period_s`; raises NoWorkerError once it has
    said no for `grace_s` in a row. `result` is cancelled when this gives up or is cancelled."""
    pending = asyncio.ensure_future(result)
    loop = asyncio.get_running_loop()
    none_since: float | None = None
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=period_s)
            if done:
                return pending.result()
            if await workers_alive():
                none_since = None
            elif none_since is None:
                none_since = loop.time()
            elif loop.time() - none_since >= grace_s:
                raise NoWorkerError(grace_s)
    finally:
        pending.cancel()


def detached_result(ref: Any) -> asyncio.Future[Any]:
    """An ObjectRef's result as an asyncio future whose cancellation leaves Ray's own future alone: Ray Client
    settles that one later from its own thread, and fails there (an error in the log) if it was cancelled."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[Any] = loop.create_future()

    def settle(done: concurrent.futures.Future[Any]) -> None:
        if result.done():
            return
        if done.cancelled():
            result.cancel()
        elif (error := done.exception()) is not None:
            result.set_exception(error)
        else:
            result.set_result(done.result())

    def arrived(done: concurrent.futures.Future[Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for it any more
            loop.call_soon_threadsafe(settle, done)

    ref.future().add_done_callback(arrived)
    return result


def _offers_cpu(num_cpus: float) -> bool:
    """Whether the alive nodes offer the CPU of one run (Ray sums only alive nodes); unknown counts as yes."""
    try:
        return float(ray.cluster_resources().get("CPU", 0.0)) >= num_cpus  # type: ignore[no-untyped-call]
    except Exception:  # a Ray Client reconnecting: the task's own result says what went wrong
        return True


class RaySandbox:
    """A `Sandbox` whose runs are Ray tasks. `num_cpus` is what one run reserves on a worker; `no_worker_grace_s`
    how long a run waits with no worker node alive before it is cancelled and reported as skipped (a KubeRay
    worker pod replaced after its loss comes back well within the default)."""

    DEFAULT_NUM_CPUS = 0.5
    """CPU one run reserves on a worker: a worker of 2 CPUs runs 4 at once (its memory limit allows for that)."""

    def __init__(
        self,
        *,
        num_cpus: float = DEFAULT_NUM_CPUS,
        max_retries: int = 2,
        no_worker_grace_s: float = 60.0,
        config: Any = None,
    ) -> None:
        self._config = config
        """The workers' BwrapConfig (None: its defaults); its empty `python` means each worker's own interpreter."""
        self._task = ray.remote(_in_worker).options(
            num_cpus=num_cpus, max_retries=max_retries, scheduling_strategy="SPREAD"
        )
        self._num_cpus = num_cpus
        self._grace_s = no_worker_grace_s
        self._watch_s = min(WATCH_PERIOD_S, no_worker_grace_s / 2)
        self._checked_at = float("-inf")
        self._alive = True
        self._availability = SandboxAvailability(False, BACKEND, "not probed yet")

    def availability(self) -> SandboxAvailability:
        return self._availability

    async def probe(self) -> SandboxAvailability:
        """Probes on a worker, where the code will run: the service's own host may differ."""
        try:
            found = await self._task.remote({}, (), None, self._config)
        except Exception as exc:  # a Ray failure makes the sandbox unavailable, never the service
            found = SandboxAvailability(False, BACKEND, f"probe task failed: {type(exc).__name__}: {exc}"[:300])
        if isinstance(found, SandboxAvailability):
            self._availability = SandboxAvailability(found.available, BACKEND, found.reason, found.unsafe)
        return self._availability

    async def run(self, files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits) -> Execution:
        if not self._availability.available:
            return Execution.skip(self._availability.summary)
        ref = self._task.remote(dict(files), tuple(command), limits, self._config)
        try:
            result = await wait_while_workers(
                detached_result(ref), self._workers_alive, grace_s=self._grace_s, period_s=self._watch_s
            )
        except NoWorkerError as exc:
            await asyncio.to_thread(_cancel, ref)
            return Execution.skip(f"verification task not run: {exc} (every worker lost?); it was cancelled")
        except Exception as exc:  # the worker died past its retries, or the task could not be scheduled
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return Execution.skip(f"verification task failed on Ray: {type(exc).__name__}: {first_line}"[:300])
        assert isinstance(result, Execution)
        return result

    async def _workers_alive(self) -> bool:
        loop = asyncio.get_running_loop()
        if loop.time() - self._checked_at >= self._watch_s:
            self._checked_at = loop.time()
            self._alive = await asyncio.to_thread(_offers_cpu, self._num_cpus)
        return self._alive


def _cancel(ref: Any) -> None:
    with contextlib.suppress(Exception):  # already finished or gone with its node: nothing left to stop
        ray.cancel(ref, force=True)
