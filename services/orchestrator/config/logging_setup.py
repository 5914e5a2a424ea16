"""structlog configuration: JSON lines in production, readable console output in development."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from orchestrator.domain.redaction import redact_secrets
from orchestrator.domain.text import cut_with_size

LOG_VALUE_CHARS = 4_000
"""The longest string value one log line carries (a traceback: 16,000), however much a client sent."""
LOG_TRACEBACK_CHARS = 16_000


def _safe(value: object, limit: int) -> object:
    if isinstance(value, str | BaseException):
        text = redact_secrets(str(value))
        return cut_with_size(text, limit)
    if isinstance(value, list | tuple):
        return [_safe(v, limit) for v in value]
    if isinstance(value, dict):
        return {k: _safe(v, limit) for k, v in value.items()}
    return value


def scrub(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The safety net behind every call site: no URL credentials, and no unbounded value, reach a log line."""
    for key, value in event.items():
        event[key] = _safe(value, LOG_TRACEBACK_CHARS if key == "exception" else LOG_VALUE_CHARS)
    return event


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            scrub,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
