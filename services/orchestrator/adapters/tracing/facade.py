"""`OtelTracing`: the `Tracing` port on the OpenTelemetry API, with the attribute whitelist enforced.

Off (`OtelTracing.disabled()`), every span is one shared do-nothing handle: no OpenTelemetry call, no attribute
built, so an untraced service pays one method call per span. The whitelist is checked either way, so a forbidden
attribute fails in tests and development even where production would not trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from orchestrator.adapters.tracing import attributes as attr
from orchestrator.adapters.tracing import propagation
from orchestrator.adapters.tracing.port import (
    AttributeValue,
    ChatInfo,
    ChatUsage,
    DeliberationInfo,
    Failure,
    ForbiddenAttributeError,
    Outcome,
    ReceiveInfo,
    Retries,
    RunOutcome,
    SpanInfo,
    StageInfo,
    ToolInfo,
    ToolResult,
    TraceCarrier,
    Tracing,
)
from orchestrator.domain.redaction import redact_secrets

WORKFLOW = "deliberation"


def clean_value(key: str, value: AttributeValue) -> AttributeValue:
    """The value a whitelisted attribute is exported with: strings without URL credentials, cut short."""
    if key not in attr.ALLOWED:
        raise ForbiddenAttributeError(key)
    if isinstance(value, bool | int | float):
        return value
    if not isinstance(value, str):
        raise TypeError(f"span attribute {key!r} must be str, int, float or bool, not {type(value).__name__}")
    return redact_secrets(value)[: attr.MAX_VALUE_CHARS]


class _Span:
    """A span handle; `span` None is the do-nothing handle of disabled tracing (which still checks names)."""

    __slots__ = ("_failed", "_span")

    def __init__(self, span: trace.Span | None) -> None:
        self._span = span
        self._failed = False

    def set(self, key: str, value: AttributeValue) -> None:
        """Sets a whitelisted attribute; raises ForbiddenAttributeError for any other name."""
        cleaned = clean_value(key, value)
        if self._span is not None:
            self._span.set_attribute(key, cleaned)

    def fail(self, error_type: str) -> None:
        self.set(attr.ERROR_TYPE, error_type)
        self._failed = True
        if self._span is not None:
            self._span.set_status(Status(StatusCode.ERROR))

    @property
    def failed(self) -> bool:
        return self._failed

    def record(self, outcome: Outcome) -> None:
        match outcome:
            case RunOutcome():
                self._finish(outcome)
            case ChatUsage(input_tokens, output_tokens, response_model):
                self.set(attr.INPUT_TOKENS, input_tokens)
                self.set(attr.OUTPUT_TOKENS, output_tokens)
                if response_model:
                    self.set(attr.RESPONSE_MODEL, response_model)
            case Retries(count):
                self.set(attr.RETRIES, count)
            case ToolResult(passed, exit_code, skipped, status):
                self.set(attr.CHECK_PASSED, passed)
                self.set(attr.CHECK_SKIPPED, skipped)
                if exit_code is not None:
                    self.set(attr.EXIT_CODE, exit_code)
                if status:
                    self.set(attr.STATUS, status)
            case Failure(error_type):
                self.fail(error_type)

    def _finish(self, run: RunOutcome) -> None:
        self.set(attr.STATUS, run.status)
        self.set(attr.ROUNDS_RUN, run.rounds_run)
        if run.stop_code:
            self.set(attr.STOP_CODE, run.stop_code)
        self.set(attr.TOKENS_SPENT, run.tokens_spent)
        self.set(attr.INPUT_TOKENS, run.input_tokens)
        self.set(attr.OUTPUT_TOKENS, run.output_tokens)
        if run.status not in ("COMPLETED", "CANCELLED"):  # a run that did not decide is an error to operators
            self.fail(run.status.lower())


_OFF = nullcontext(_Span(None))
"""Off: one shared do-nothing handle in a reusable context manager; nothing else is built."""


def _described(info: SpanInfo) -> tuple[str, SpanKind, dict[str, AttributeValue]]:
    """A span's name, kind and attributes from what it is about."""
    match info:
        case DeliberationInfo():
            attributes: dict[str, AttributeValue] = {
                attr.OPERATION: "invoke_workflow",
                attr.WORKFLOW_NAME: WORKFLOW,
                attr.TASK_ID: info.task_id,
                attr.ROLE: info.role,
                attr.AGENT_COUNT: info.agents,
                attr.ROUNDS: info.rounds,
                attr.TOKEN_BUDGET: info.token_budget,
            }
            if info.source:
                attributes[attr.SOURCE] = info.source
            return f"invoke_workflow {WORKFLOW}", SpanKind.INTERNAL, attributes
        case StageInfo(stage, round_, callers):
            return f"stage {stage}", SpanKind.INTERNAL, {attr.STAGE: stage, attr.ROUND: round_, attr.CALLERS: callers}
        case ChatInfo():
            return f"chat {info.model}", SpanKind.CLIENT, _chat_attributes(info)
        case ToolInfo(name, agent_id):
            attributes = {attr.OPERATION: "execute_tool", attr.TOOL_NAME: name}
            if agent_id:
                attributes[attr.AGENT_ID] = agent_id
            return f"execute_tool {name}", SpanKind.INTERNAL, attributes
        case ReceiveInfo(subject):
            attributes = {attr.MESSAGING_SYSTEM: "nats", attr.MESSAGING_DESTINATION: subject}
            return f"{subject} process", SpanKind.CONSUMER, attributes


def _chat_attributes(info: ChatInfo) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        attr.OPERATION: "chat",
        attr.REQUEST_MODEL: info.model,
        attr.AGENT_ID: info.agent_id,
        attr.STAGE: info.stage,
        attr.ROUND: info.round,
    }
    optional = {
        attr.REQUEST_TEMPERATURE: info.temperature,
        attr.REQUEST_SEED: info.seed,
        attr.REQUEST_MAX_TOKENS: info.max_tokens,
    }
    attributes.update({k: v for k, v in optional.items() if v is not None})
    return attributes


class OtelTracing:
    """The `Tracing` port (application/tracing.py) on an OpenTelemetry tracer; `attach` continues a carried trace
    on the far side of a Ray call (adapters only)."""

    def __init__(self, tracer: trace.Tracer | None) -> None:
        self._tracer = tracer

    @classmethod
    def disabled(cls) -> OtelTracing:
        return cls(None)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def span(self, info: SpanInfo, parent: Mapping[str, str] | None = None) -> AbstractContextManager[_Span]:
        if self._tracer is None:
            return _OFF
        name, kind, attributes = _described(info)
        # A NATS message without trace headers starts a new trace; elsewhere no parent continues the current one.
        context = propagation.extract(parent) if parent or isinstance(info, ReceiveInfo) else None
        return self._span(name, kind, attributes, context)

    def carrier(self) -> TraceCarrier:
        return propagation.inject() if self.enabled else {}

    def attach(self, carrier: Mapping[str, str] | None) -> AbstractContextManager[None]:
        return propagation.attached(carrier if self.enabled else None)

    @contextmanager
    def _span(
        self,
        name: str,
        kind: SpanKind,
        attributes: dict[str, AttributeValue],
        context: Context | None = None,
    ) -> Iterator[_Span]:
        if self._tracer is None:  # the public methods return the off handles before coming here
            raise RuntimeError("tracing is off")
        cleaned = {key: clean_value(key, value) for key, value in attributes.items()}
        # Exceptions are recorded by class name only (below): the SDK's own recording would export the message
        # and the traceback, which can quote a URL with credentials or a provider's error body.
        with self._tracer.start_as_current_span(
            name, context=context, kind=kind, attributes=cleaned, record_exception=False, set_status_on_exception=False
        ) as span:
            current = _Span(span)
            try:
                yield current
            except BaseException as exc:
                if not current.failed:  # a more precise kind set by the caller wins over the class name
                    current.fail(type(exc).__name__)
                raise


if TYPE_CHECKING:  # mypy proves the facade implements the port
    _conforms: Tracing = OtelTracing(None)
