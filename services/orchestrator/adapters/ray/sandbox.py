"""The sandbox on Ray: every run is a Ray task on a worker (local Ray's worker processes locally, the RayCluster's
worker pods in production), so untrusted code never runs in the gRPC process and verification scales out with
the cluster. The worker runs the default bubblewrap adapter. Runs need CPU, which only the worker nodes offer (the
head has `num-cpus 0`), and are spread over them; a run whose worker or whole node dies mid-run is run again on
another (`max_retries`; a run is idempotent: a fresh work dir, no side effects outside it)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import ray

from orchestrator.domain.execution import Execution, SandboxAvailability, SandboxLimits

BACKEND = "bubblewrap on Ray workers"


def _in_worker(files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits | None) -> Any:
    # Imported in the worker: a cluster gets this package through the job's runtime_env.
    from orchestrator.adapters.sandbox.bwrap import BwrapSandbox

    sandbox = BwrapSandbox()

    async def work() -> Execution | SandboxAvailability:
        if limits is None:
            return await sandbox.probe()
        return await sandbox.run(files, command, limits)

    return asyncio.run(work())


class RaySandbox:
    """A `Sandbox` whose runs are Ray tasks. `num_cpus` is what one run reserves on a worker."""

    def __init__(self, *, num_cpus: float = 0.5, max_retries: int = 2) -> None:
        self._task = ray.remote(_in_worker).options(
            num_cpus=num_cpus, max_retries=max_retries, scheduling_strategy="SPREAD"
        )
        self._availability = SandboxAvailability(False, BACKEND, "not probed yet")

    def availability(self) -> SandboxAvailability:
        return self._availability

    async def probe(self) -> SandboxAvailability:
        """Probes on a worker, where the code will run: the service's own host may differ."""
        try:
            found = await self._task.remote({}, (), None)
        except Exception as exc:  # a Ray failure makes the sandbox unavailable, never the service
            found = SandboxAvailability(False, BACKEND, f"probe task failed: {type(exc).__name__}: {exc}"[:300])
        if isinstance(found, SandboxAvailability):
            self._availability = SandboxAvailability(found.available, BACKEND, found.reason, found.unsafe)
        return self._availability

    async def run(self, files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits) -> Execution:
        if not self._availability.available:
            return Execution.skip(self._availability.summary)
        try:
            result = await self._task.remote(dict(files), tuple(command), limits)
        except Exception as exc:  # the worker died past its retries, or the task could not be scheduled
            return Execution.skip(f"verification task failed on Ray: {type(exc).__name__}"[:300])
        assert isinstance(result, Execution)
        return result
