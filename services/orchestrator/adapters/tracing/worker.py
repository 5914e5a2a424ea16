"""Tracing inside Ray workers (agent actors, sandbox tasks): one tracer provider per worker process, set up from
the OTEL_* variables the orchestrator forwards in the job's `runtime_env`, flushed when the process exits.

The orchestrator sends `forwarded_env(os.environ)` as `runtime_env["env_vars"]`; a worker calls
`worker_tracing()` and continues the caller's trace with `tracing.attach(carrier)`. The collector endpoint must be
reachable from the workers (on a remote cluster, the cluster's collector, not a loopback address).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping

from orchestrator.adapters.tracing.facade import OtelTracing
from orchestrator.adapters.tracing.port import TraceCarrier
from orchestrator.adapters.tracing.setup import TracingRuntime, TracingSettings, start_tracing
from orchestrator.adapters.tracing.traced_ports import TracedGateway
from orchestrator.application.ports import AgentCall, AgentGateway, Completion
from orchestrator.domain.model import AgentSpec

FORWARDED_PREFIX = "OTEL_"
"""Only the standard OpenTelemetry variables travel (their `OTEL_EXPORTER_OTLP_HEADERS` may hold the collector's
own credentials, which the workers need to export); nothing else of the service's environment does."""

_lock = threading.Lock()
_runtime: TracingRuntime | None = None


def forwarded_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The OTEL_* variables a worker needs to trace as the orchestrator does."""
    return {k: v for k, v in environ.items() if k.startswith(FORWARDED_PREFIX)}


def worker_tracing() -> OtelTracing:
    """This worker process's tracing (created on first use, off when the OTEL_* variables say so)."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = start_tracing(TracingSettings.from_env(os.environ))
            atexit.register(_runtime.close)
        return _runtime.tracing


async def complete_traced(client: AgentGateway, agent: AgentSpec, call: AgentCall, carrier: TraceCarrier) -> Completion:
    """An agent actor's LLM call as a `chat` span of the caller's trace (the carrier sent with the Ray call)."""
    tracing = worker_tracing()
    with tracing.attach(carrier):
        return await TracedGateway(client, tracing).complete(agent, call)
