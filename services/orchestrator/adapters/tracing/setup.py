"""Tracing from the standard OpenTelemetry environment, and its flush on shutdown.

On/off (`TracingSettings.from_env`):
- `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`: off.
- `OTEL_TRACES_EXPORTER=otlp` (OTLP over gRPC; the SDK's default endpoint `localhost:4317` when none is set) or
  `console`: on.
- unset: on, exporting over OTLP/gRPC, only when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
  `OTEL_EXPORTER_OTLP_ENDPOINT` is set; otherwise off (a no-op tracer, nothing exported, nothing buffered).
`OTEL_SERVICE_NAME` (default `fleet-orchestrator`), `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default
`parentbased_always_on`, so a sampled parent's decision is kept). The exporter's other standard settings
(`OTEL_EXPORTER_OTLP_HEADERS`, `_CERTIFICATE`, `_COMPRESSION`, `_TIMEOUT`, `_INSECURE`, the `OTEL_BSP_*` batching)
and `OTEL_RESOURCE_ATTRIBUTES` are read by the SDK itself. An `http://` endpoint is plaintext, `https://` TLS.

The tracer provider is this service's own, not the process-global one, so a second service in one process (tests)
does not fight over it; spans still nest through the OpenTelemetry context as usual.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata

import structlog
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from orchestrator.adapters.tracing.facade import OtelTracing
from orchestrator.adapters.tracing.grpc_interceptor import TracingServerInterceptor
from orchestrator.domain.errors import ConfigError
from orchestrator.domain.redaction import redact_url

log = structlog.get_logger(__name__)

DEFAULT_SERVICE_NAME = "fleet-orchestrator"
EXPORTERS = ("otlp", "console")


@dataclass(frozen=True)
class TracingSettings:
    """Whether and where spans go, from the standard OTEL_* variables (module docstring)."""

    exporter: str = ""
    """"otlp", "console", or "" for off."""
    endpoint: str = ""
    """The OTLP/gRPC endpoint; "" = the SDK's default."""
    service_name: str = DEFAULT_SERVICE_NAME
    sampler: str = "parentbased_always_on"
    sampler_arg: float = 1.0

    @property
    def enabled(self) -> bool:
        return bool(self.exporter)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TracingSettings:
        def get(name: str) -> str:
            return environ.get(name, "").strip()

        endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or get("OTEL_EXPORTER_OTLP_ENDPOINT")
        exporter = _exporter(get("OTEL_TRACES_EXPORTER").lower(), endpoint)
        if get("OTEL_SDK_DISABLED").lower() == "true":
            exporter = ""
        ratio = get("OTEL_TRACES_SAMPLER_ARG") or "1.0"
        try:
            sampler_arg = float(ratio)
        except ValueError:
            raise ConfigError(f"OTEL_TRACES_SAMPLER_ARG must be a number in [0, 1], got {ratio!r}") from None
        settings = cls(
            exporter=exporter,
            endpoint=endpoint,
            service_name=get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME,
            sampler=get("OTEL_TRACES_SAMPLER").lower() or "parentbased_always_on",
            sampler_arg=sampler_arg,
        )
        make_sampler(settings)  # fails start-up on an unknown sampler, not the first span
        return settings


def _exporter(value: str, endpoint: str) -> str:
    if not value:
        return "otlp" if endpoint else ""
    chosen = [v.strip() for v in value.split(",") if v.strip() and v.strip() != "none"]
    unknown = [v for v in chosen if v not in EXPORTERS]
    if unknown:
        raise ConfigError(f"OTEL_TRACES_EXPORTER: unsupported {', '.join(unknown)}; use otlp, console or none")
    return chosen[0] if chosen else ""


def make_sampler(settings: TracingSettings) -> Sampler:
    ratio = TraceIdRatioBased(settings.sampler_arg) if 0.0 <= settings.sampler_arg <= 1.0 else None
    samplers: dict[str, Sampler | None] = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": ratio,
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": ParentBased(ratio) if ratio is not None else None,
    }
    if settings.sampler not in samplers:
        raise ConfigError(f"OTEL_TRACES_SAMPLER: unsupported {settings.sampler!r}; use one of {', '.join(samplers)}")
    sampler = samplers[settings.sampler]
    if sampler is None:
        raise ConfigError(f"OTEL_TRACES_SAMPLER_ARG must be in [0, 1], got {settings.sampler_arg}")
    return sampler


def _span_exporter(settings: TracingSettings) -> SpanExporter:
    if settings.exporter == "console":
        return ConsoleSpanExporter()
    # Imported here: gRPC exporter machinery is only loaded where traces are exported.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.endpoint or None)


def _version() -> str:
    try:
        return metadata.version("fleet-orchestrator")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class TracingRuntime:
    """The service's tracing: `tracing` for the protocol, `shutdown()` to flush what is buffered on stop."""

    def __init__(self, settings: TracingSettings, provider: TracerProvider | None) -> None:
        self.settings = settings
        self._provider = provider
        self.tracer = provider.get_tracer("orchestrator", _version()) if provider is not None else None
        """The raw OpenTelemetry tracer (None when off), for adapters that need one (the gRPC interceptor)."""
        self.tracing = OtelTracing(self.tracer)

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    @classmethod
    def off(cls) -> TracingRuntime:
        return cls(TracingSettings(), None)

    def server_interceptor(self) -> TracingServerInterceptor:
        """For `grpc.aio.server(interceptors=[...])`: a server span per RPC (passes calls through when off)."""
        return TracingServerInterceptor(self.tracer)

    def force_flush(self, timeout_ms: int = 10_000) -> bool:
        return self._provider.force_flush(timeout_ms) if self._provider is not None else True

    def close(self) -> None:
        """Exports what is buffered and stops the exporter (blocking). Idempotent."""
        provider, self._provider = self._provider, None
        if provider is not None:
            provider.shutdown()

    async def shutdown(self) -> None:
        """`close()` off the event loop: the export is blocking I/O."""
        if self._provider is not None:
            await asyncio.to_thread(self.close)


def start_tracing(settings: TracingSettings) -> TracingRuntime:
    """Builds the tracer provider the settings ask for (none when off) and logs which mode is on."""
    if not settings.enabled:
        log.info("tracing_off", hint="set OTEL_EXPORTER_OTLP_ENDPOINT to export traces")
        return TracingRuntime(settings, None)
    # `process.pid` tells the orchestrator's spans from those its Ray workers export under the same service name.
    resource = Resource.create(
        {"service.name": settings.service_name, "service.version": _version(), "process.pid": os.getpid()}
    )
    provider = TracerProvider(resource=resource, sampler=make_sampler(settings))
    provider.add_span_processor(BatchSpanProcessor(_span_exporter(settings)))
    log.info(
        "tracing_on",
        exporter=settings.exporter,
        endpoint=redact_url(settings.endpoint) or "sdk default",
        service_name=settings.service_name,
        sampler=settings.sampler,
    )
    return TracingRuntime(settings, provider)
