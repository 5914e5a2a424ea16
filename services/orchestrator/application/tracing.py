"""The tracing port: what the deliberation protocol sees of tracing, in standard library types only.
`Tracing` is the port; `adapters.tracing.facade.OtelTracing` implements it on OpenTelemetry, and `NoTracing` (below)
is the default where nothing is traced (tests with in-memory fakes).

Spans are context managers: a span started inside another one (in the same task, or in a task created inside
it, as `asyncio.gather` does) is its child. Leaving the block ends the span; an exception leaving it marks the
span as an error with only the exception's class name (`error.type`), never its message, which could quote a
secret (a URL with credentials, a provider's error body).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from orchestrator.domain.deliberation import Deliberation

AttributeValue = str | int | float | bool
TraceCarrier = dict[str, str]
"""W3C trace context as text (`traceparent`, `tracestate`): what travels in NATS headers and Ray calls."""


class ForbiddenAttributeError(ValueError):
    """A span attribute outside the whitelist (`adapters.tracing.attributes.ALLOWED`): refused, so no secret, prompt
    or proposal text can be exported by mistake."""

    def __init__(self, key: str) -> None:
        super().__init__(f"span attribute {key!r} is not in the tracing whitelist")
        self.key = key


class SpanHandle(Protocol):
    def set(self, key: str, value: AttributeValue) -> None:
        """Sets a whitelisted attribute; raises ForbiddenAttributeError for any other name."""
        ...

    def fail(self, error_type: str) -> None:
        """Marks the span as an error of kind `error_type` (a class name or a short code, never a message)."""
        ...


class DeliberationSpan(SpanHandle, Protocol):
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
        """How the run ended: its status, the rounds that ran, why they stopped, and its token totals."""
        ...


class ChatSpan(SpanHandle, Protocol):
    def record_usage(self, input_tokens: int, output_tokens: int, response_model: str = "") -> None: ...

    def retried(self, retries: int) -> None: ...


class ToolSpan(SpanHandle, Protocol):
    def result(self, *, passed: bool, exit_code: int | None = None, skipped: bool = False) -> None: ...


@dataclass(frozen=True)
class DeliberationInfo:
    """What a deliberation span says about the run when it starts."""

    task_id: str
    role: str
    agents: int
    rounds: int
    token_budget: int = 0
    """0 = unlimited."""
    source: str = ""


@dataclass(frozen=True)
class ChatInfo:
    """One LLM call of one agent: the `chat {model}` span."""

    agent_id: str
    model: str
    stage: str
    round: int
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int | None = None


class Tracing(Protocol):
    """Spans of the deliberation protocol (GenAI semantic conventions), and the trace context to carry."""

    def deliberation(
        self, info: DeliberationInfo, parent: Mapping[str, str] | None = None
    ) -> AbstractContextManager[DeliberationSpan]:
        """`invoke_workflow deliberation`: the whole run. `parent` continues a trace from a carrier (the plan event
        or the RPC that asked for it); None continues the current one."""
        ...

    def receive(self, subject: str, headers: Mapping[str, str] | None) -> AbstractContextManager[SpanHandle]:
        """`{subject} process`: handling one inbound NATS message, continuing the publisher's trace from its
        headers; what the handler starts (a plan's deliberations) is inside it."""
        ...

    def stage(self, stage: str, round_: int, callers: int = 0) -> AbstractContextManager[SpanHandle]:
        """One protocol stage (`stage propose` ...)."""
        ...

    def chat(self, info: ChatInfo) -> AbstractContextManager[ChatSpan]:
        """`chat {model}`: one agent's LLM call (all its retries)."""
        ...

    def tool(self, name: str, agent_id: str = "") -> AbstractContextManager[ToolSpan]:
        """`execute_tool {name}`: one check or sandbox run."""
        ...

    def carrier(self) -> TraceCarrier:
        """The current trace context as text ({} when tracing is off or no span is current)."""
        ...

    def attach(self, carrier: Mapping[str, str] | None) -> AbstractContextManager[None]:
        """Makes the carrier's trace current inside the block (the far side of a Ray call or a NATS message)."""
        ...


class _NoSpan:
    """The span handle of `NoTracing`: accepts everything, keeps nothing."""

    def set(self, key: str, value: AttributeValue) -> None:
        pass

    def fail(self, error_type: str) -> None:
        pass

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
        pass

    def record_usage(self, input_tokens: int, output_tokens: int, response_model: str = "") -> None:
        pass

    def retried(self, retries: int) -> None:
        pass

    def result(self, *, passed: bool, exit_code: int | None = None, skipped: bool = False) -> None:
        pass


_NO_SPAN = nullcontext(_NoSpan())


class NoTracing:
    """The `Tracing` port that traces nothing: the default of the application's collaborators, so a use case
    built without tracing (in-memory tests, benchmarks) runs unchanged. The service itself always gets
    `OtelTracing`, on or off, which also enforces the attribute whitelist."""

    def deliberation(
        self, info: DeliberationInfo, parent: Mapping[str, str] | None = None
    ) -> AbstractContextManager[DeliberationSpan]:
        return _NO_SPAN

    def receive(self, subject: str, headers: Mapping[str, str] | None) -> AbstractContextManager[SpanHandle]:
        return _NO_SPAN

    def stage(self, stage: str, round_: int, callers: int = 0) -> AbstractContextManager[SpanHandle]:
        return _NO_SPAN

    def chat(self, info: ChatInfo) -> AbstractContextManager[ChatSpan]:
        return _NO_SPAN

    def tool(self, name: str, agent_id: str = "") -> AbstractContextManager[ToolSpan]:
        return _NO_SPAN

    def carrier(self) -> TraceCarrier:
        return {}

    def attach(self, carrier: Mapping[str, str] | None) -> AbstractContextManager[None]:
        return nullcontext()


def run_info(record: Deliberation) -> DeliberationInfo:
    """What the deliberation span of a run says when it starts."""
    return DeliberationInfo(
        task_id=record.task_id,
        role=record.task.role.value,
        agents=len(record.agents),
        rounds=record.task.rounds,
        token_budget=record.task.token_budget or 0,
        source=record.source.partition(":")[0] if record.source else "",
    )


def finish_run(span: DeliberationSpan, final: Deliberation) -> None:
    """The end of a run on its deliberation span: status, rounds that ran, token totals."""
    usage = final.usage
    span.finish(
        status=final.status.value,
        rounds_run=final.progress.rounds_run,
        stop_code=final.progress.stop_code.value if final.progress.stop_code else "",
        tokens_spent=usage.total_tokens,
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
    )


if TYPE_CHECKING:  # mypy proves the no-op is the port
    _conforms: Tracing = NoTracing()
