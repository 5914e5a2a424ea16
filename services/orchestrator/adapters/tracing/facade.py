"""`OtelTracing`: the `Tracing` port on the OpenTelemetry API, with the attribute whitelist enforced.

Off (`OtelTracing.disabled()`), every span is one shared do-nothing handle: no OpenTelemetry call, no attribute
built, so an untraced service pays one method call per span. The whitelist is checked either way, so a forbidden
attribute fails in tests and development even where production would not trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from orchestrator.adapters.tracing import attributes as attr
from orchestrator.adapters.tracing import propagation
from orchestrator.adapters.tracing.port import (
    AttributeValue,
    ChatInfo,
    DeliberationInfo,
    ForbiddenAttributeError,
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
    """A span handle; `span` None is the do-nothing handle of disabled tracing."""

    __slots__ = ("_failed", "_span")

    def __init__(self, span: trace.Span | None) -> None:
        self._span = span
        self._failed = False

    def set(self, key: str, value: AttributeValue) -> None:
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


class _DeliberationSpan(_Span):
    __slots__ = ()

    def finish(
        self,
        *,
        status: str,
        rounds_run: int,
        stop_code: str = "",
        tokens_spent: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        self.set(attr.STATUS, status)
        self.set(attr.ROUNDS_RUN, rounds_run)
        if stop_code:
            self.set(attr.STOP_CODE, stop_code)
        self.set(attr.TOKENS_SPENT, tokens_spent)
        self.set(attr.INPUT_TOKENS, input_tokens)
        self.set(attr.OUTPUT_TOKENS, output_tokens)
        if status not in ("COMPLETED", "CANCELLED"):  # a run that did not decide is an error to operators
            self.fail(status.lower())


class _ChatSpan(_Span):
    __slots__ = ()

    def record_usage(self, input_tokens: int, output_tokens: int, response_model: str = "") -> None:
        self.set(attr.INPUT_TOKENS, input_tokens)
        self.set(attr.OUTPUT_TOKENS, output_tokens)
        if response_model:
            self.set(attr.RESPONSE_MODEL, response_model)

    def retried(self, retries: int) -> None:
        self.set(attr.RETRIES, retries)


class _ToolSpan(_Span):
    __slots__ = ()

    def result(self, *, passed: bool, exit_code: int | None = None, skipped: bool = False) -> None:
        self.set(attr.CHECK_PASSED, passed)
        self.set(attr.CHECK_SKIPPED, skipped)
        if exit_code is not None:
            self.set(attr.EXIT_CODE, exit_code)


H = TypeVar("H", bound=_Span)
# Off: one shared do-nothing handle per kind, in a reusable context manager; nothing else is built.
_OFF_RUN = nullcontext(_DeliberationSpan(None))
_OFF_STAGE = nullcontext(_Span(None))
_OFF_CHAT = nullcontext(_ChatSpan(None))
_OFF_TOOL = nullcontext(_ToolSpan(None))


class OtelTracing:
    """The `Tracing` port (adapters/tracing/port.py) on an OpenTelemetry tracer."""

    def __init__(self, tracer: trace.Tracer | None) -> None:
        self._tracer = tracer

    @classmethod
    def disabled(cls) -> OtelTracing:
        return cls(None)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def deliberation(
        self, info: DeliberationInfo, parent: Mapping[str, str] | None = None
    ) -> AbstractContextManager[_DeliberationSpan]:
        if self._tracer is None:
            return _OFF_RUN
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
        context = propagation.extract(parent) if parent else None
        return self._span(f"invoke_workflow {WORKFLOW}", SpanKind.INTERNAL, attributes, _DeliberationSpan, context)

    def receive(self, subject: str, headers: Mapping[str, str] | None) -> AbstractContextManager[_Span]:
        if self._tracer is None:
            return _OFF_STAGE
        attributes: dict[str, AttributeValue] = {attr.MESSAGING_SYSTEM: "nats", attr.MESSAGING_DESTINATION: subject}
        context = propagation.extract_nats(headers)
        return self._span(f"{subject} process", SpanKind.CONSUMER, attributes, _Span, context)

    def stage(self, stage: str, round_: int, callers: int = 0) -> AbstractContextManager[_Span]:
        if self._tracer is None:
            return _OFF_STAGE
        attributes: dict[str, AttributeValue] = {attr.STAGE: stage, attr.ROUND: round_, attr.CALLERS: callers}
        return self._span(f"stage {stage}", SpanKind.INTERNAL, attributes, _Span)

    def chat(self, info: ChatInfo) -> AbstractContextManager[_ChatSpan]:
        if self._tracer is None:
            return _OFF_CHAT
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
        return self._span(f"chat {info.model}", SpanKind.CLIENT, attributes, _ChatSpan)

    def tool(self, name: str, agent_id: str = "") -> AbstractContextManager[_ToolSpan]:
        if self._tracer is None:
            return _OFF_TOOL
        attributes: dict[str, AttributeValue] = {attr.OPERATION: "execute_tool", attr.TOOL_NAME: name}
        if agent_id:
            attributes[attr.AGENT_ID] = agent_id
        return self._span(f"execute_tool {name}", SpanKind.INTERNAL, attributes, _ToolSpan)

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
        handle: type[H],
        context: Context | None = None,
    ) -> Iterator[H]:
        if self._tracer is None:  # the public methods return the off handles before coming here
            raise RuntimeError("tracing is off")
        cleaned = {key: clean_value(key, value) for key, value in attributes.items()}
        # Exceptions are recorded by class name only (below): the SDK's own recording would export the message
        # and the traceback, which can quote a URL with credentials or a provider's error body.
        with self._tracer.start_as_current_span(
            name, context=context, kind=kind, attributes=cleaned, record_exception=False, set_status_on_exception=False
        ) as span:
            current = handle(span)
            try:
                yield current
            except BaseException as exc:
                if not current.failed:  # a more precise kind set by the caller wins over the class name
                    current.fail(type(exc).__name__)
                raise


if TYPE_CHECKING:  # mypy proves the facade implements the port
    _conforms: Tracing = OtelTracing(None)
