"""Prometheus metrics: what the deliberations, the LLM calls and the NATS consumer did, served at /metrics.

`DeliberationMetrics.observe` is a run listener: every call-finished event becomes counters and a latency sample,
stage boundaries a stage duration, a run's end a count by status and by stop code (token_budget: the budget ended
it), its token spend and, under a budget, the share of the budget it used. Queue depth, running deliberations and
the NATS consumer's acks/naks/terms and the gRPC calls and web requests the tokens refused are read when
Prometheus scrapes, from the objects that own them. Every metric lives in the instance's own registry, so
several services (or tests) in one process never collide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestrator.domain.errors import DependencyUnavailableError
from orchestrator.domain.events import CallFinished, RunEvent, RunFinished, StageFinished, StageStarted

STAGE_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
RUN_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)
MAX_TRACKED_RUNS = 20_000
"""More stages in flight than the admission limits let run at once: the oldest beyond it is of a run long gone."""
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
TOKEN_BUCKETS = (1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000)
BUDGET_RATIO_BUCKETS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0)


def _token_metrics(r: CollectorRegistry) -> tuple[Histogram, Histogram]:
    """The tokens a run spent, and the share of its budget."""
    tokens = Histogram(
        "orchestrator_deliberation_tokens",
        "Tokens (prompt + completion) one deliberation spent, by its final status",
        ["role", "status"],
        buckets=TOKEN_BUCKETS,
        registry=r,
    )
    used = Histogram(
        "orchestrator_deliberation_budget_used_ratio",
        "Tokens spent over the token budget, for deliberations that had one (over 1: the last stage's overshoot)",
        ["role"],
        buckets=BUDGET_RATIO_BUCKETS,
        registry=r,
    )
    return tokens, used


class DeliberationMetrics:
    """Counters and histograms of deliberations, stages and LLM calls, by role."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.deliberations = Counter(
            "orchestrator_deliberations", "Deliberations that reached a final state", ["role", "status"], registry=r
        )
        self.deliberation_seconds = Histogram(
            "orchestrator_deliberation_duration_seconds",
            "Wall time of a deliberation from start to its final state",
            ["role", "status"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "orchestrator_stage_duration_seconds",
            "Wall time of one stage (one concurrent fan-out over the council)",
            ["role", "stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.llm_calls = Counter("orchestrator_llm_calls", "LLM calls made by agents", ["role", "stage"], registry=r)
        self.llm_errors = Counter(
            "orchestrator_llm_errors", "LLM calls that failed after their retries", ["role", "stage"], registry=r
        )
        self.llm_tokens = Counter("orchestrator_llm_tokens", "Tokens used by LLM calls", ["role", "kind"], registry=r)
        self.llm_seconds = Histogram(
            "orchestrator_llm_call_duration_seconds",
            "Latency of one agent's LLM call, retries included",
            ["role", "stage"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.stops = Counter(
            "orchestrator_deliberation_stops",
            "Finished deliberations by why their rounds ended: rounds_done, evidence_decided, token_budget",
            ["role", "stop_code"],
            registry=r,
        )
        self.deliberation_tokens, self.budget_used = _token_metrics(r)
        self._stage_started: dict[str, float] = {}
        """When the current stage of each run began (time.monotonic), by task_id."""

    def observe(self, event: RunEvent) -> None:
        """A run listener, called on the event loop (the metric objects themselves are safe to read from the
        scrape thread). Calls made before a restart were counted by the process that made them."""
        snapshot = event.snapshot
        role = snapshot.task.role.value
        if isinstance(event, CallFinished):
            self._count_call(role, event)
        elif isinstance(event, StageStarted):
            self._stage_started[snapshot.task_id] = time.monotonic()
            if len(self._stage_started) > MAX_TRACKED_RUNS:  # runs that never told us their end (a lost lease)
                del self._stage_started[next(iter(self._stage_started))]
        elif isinstance(event, StageFinished) and (began := self._stage_started.pop(snapshot.task_id, 0.0)):
            self.stage_seconds.labels(role, snapshot.stage).observe(time.monotonic() - began)
        elif isinstance(event, RunFinished):
            self._count_run(role, event)
            self._stage_started.pop(snapshot.task_id, None)

    def _count_run(self, role: str, event: RunFinished) -> None:
        d, status = event.snapshot, event.snapshot.status.value
        self.deliberations.labels(role, status).inc()
        self.deliberation_seconds.labels(role, status).observe(d.duration_ms / 1000)
        spent = d.usage.total_tokens
        self.deliberation_tokens.labels(role, status).observe(spent)
        if d.progress.stop_code is not None:
            self.stops.labels(role, d.progress.stop_code.value).inc()
        if d.task.token_budget:
            self.budget_used.labels(role).observe(spent / d.task.token_budget)

    def _count_call(self, role: str, event: CallFinished) -> None:
        call, stage = event.call, event.call.stage.value
        self.llm_calls.labels(role, stage).inc()
        self.llm_seconds.labels(role, stage).observe(call.latency_ms / 1000)
        if not call.ok:
            self.llm_errors.labels(role, stage).inc()
        self.llm_tokens.labels(role, "prompt").inc(call.usage.prompt_tokens)
        self.llm_tokens.labels(role, "completion").inc(call.usage.completion_tokens)


class LiveCollector(Collector):
    """Values read at scrape time: queue depth, running deliberations, and the NATS consumer's outcomes. Like
    prometheus_client's own metrics, it registers itself in the `registry` it is given."""

    def __init__(
        self,
        queue_depth: Callable[[], int],
        running: Callable[[], int],
        nats_stats: Callable[[], Mapping[str, int]] | None = None,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._queue_depth = queue_depth
        self._running = running
        self._nats_stats = nats_stats
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterator[Metric]:
        return iter(list(self._families(describe=True)))

    def collect(self) -> Iterator[Metric]:
        return iter(list(self._families(describe=False)))

    def _families(self, *, describe: bool) -> Iterator[Metric]:
        queue = GaugeMetricFamily("orchestrator_queue_depth", "Deliberations waiting for a free slot")
        running = GaugeMetricFamily("orchestrator_deliberations_running", "Deliberations holding a slot")
        if not describe:
            depth = self._queue_depth()
            queue.add_metric([], depth)
            running.add_metric([], max(0, self._running() - depth))
        yield queue
        yield running
        if self._nats_stats is not None:
            events = CounterMetricFamily(
                "orchestrator_nats_plan_events",
                "Plan events settled by the consumer: acked, nacked (redelivered later) or termed to the DLQ",
                labels=["outcome"],
            )
            if not describe:
                stats = self._nats_stats()
                for outcome, key in (("ack", "acked"), ("nak", "nacked"), ("term", "dead")):
                    events.add_metric([outcome], stats.get(key, 0))
            yield events


class RefusedCallsCollector(Collector):
    """gRPC calls the bearer tokens refused, by status code and reason (missing_token, invalid_token,
    needs_write), read at scrape time from the server's count (every refusal, logged or not); with `web_counts`,
    the web view's refused requests as well (`orchestrator_web_refused_requests_total`, by reason). Registers
    itself in the `registry` it is given."""

    def __init__(
        self,
        counts: Callable[[], Mapping[tuple[str, str], int]],
        *,
        registry: CollectorRegistry | None = None,
        web_counts: Callable[[], Mapping[tuple[str, str], int]] | None = None,
    ) -> None:
        self._counts = counts
        self._web_counts = web_counts
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterator[Metric]:
        return iter([self._family(), *([self._web_family()] if self._web_counts is not None else [])])

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for (code, reason), count in sorted(self._counts().items()):
            family.add_metric([code, reason], count)
        if self._web_counts is None:
            return iter([family])
        by_reason: dict[str, int] = {}
        for (_, reason), count in self._web_counts().items():
            by_reason[reason] = by_reason.get(reason, 0) + count
        web = self._web_family()
        for reason, count in sorted(by_reason.items()):
            web.add_metric([reason], count)
        return iter([family, web])

    @staticmethod
    def _web_family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "orchestrator_web_refused_requests",
            "Web view requests refused (401) for a missing or invalid bearer token",
            labels=["reason"],
        )

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "orchestrator_grpc_refused_calls",
            "gRPC calls refused for a missing or invalid bearer token, or a token without the scope",
            labels=["code", "reason"],
        )


class MetricsServer:
    """The /metrics HTTP endpoint on its own thread (prometheus_client's server), bound at once."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        try:
            server, thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise DependencyUnavailableError("metrics", f"cannot bind {host}:{port}: {exc.strerror}") from exc
        self._server: WSGIServer = server
        self._thread = thread
        self.port: int = server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
