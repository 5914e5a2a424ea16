"""The tracing port, as small as a transport: `Tracing.span(info, parent)` opens a span described by a value,
`Tracing.carrier()` gives the current trace context as text, and a span takes what is known at its end with
`Span.record(outcome)`. `NoTracing` is the shipped no-op (in-memory tests, benchmarks); the service gets
`adapters.tracing.facade.OtelTracing`, on or off, which also enforces the attribute whitelist.

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


# What a span is about (given when it starts).


@dataclass(frozen=True)
class DeliberationInfo:
    """`invoke_workflow deliberation`: the whole run."""

    task_id: str
    role: str
    agents: int
    rounds: int
    token_budget: int = 0
    """0 = unlimited."""
    source: str = ""


@dataclass(frozen=True)
class StageInfo:
    """`stage {stage}`: one protocol stage."""

    stage: str
    round: int
    callers: int = 0


@dataclass(frozen=True)
class ChatInfo:
    """`chat {model}`: one agent's LLM call (all its retries)."""

    agent_id: str
    model: str
    stage: str
    round: int
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class ToolInfo:
    """`execute_tool {name}`: one check or sandbox run."""

    name: str
    agent_id: str = ""


@dataclass(frozen=True)
class ReceiveInfo:
    """`{subject} process`: handling one inbound NATS message. Its parent is the message's headers (none: a
    new trace), and what the handler starts (a plan's deliberations) is inside it."""

    subject: str


SpanInfo = DeliberationInfo | StageInfo | ChatInfo | ToolInfo | ReceiveInfo


# What a span records when it is known (usually at its end).


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: its status, the rounds that ran, why they stopped, its token totals. A status other than
    COMPLETED or CANCELLED marks the span as an error."""

    status: str
    rounds_run: int
    stop_code: str = ""
    tokens_spent: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class ChatUsage:
    input_tokens: int
    output_tokens: int
    response_model: str = ""


@dataclass(frozen=True)
class Retries:
    count: int


@dataclass(frozen=True)
class ToolResult:
    passed: bool
    exit_code: int | None = None
    skipped: bool = False
    status: str = ""
    """How the run ended when that is not a plain exit (killed, timed_out)."""


@dataclass(frozen=True)
class Failure:
    """Marks the span as an error of kind `error_type` (a class name or a short code, never a message)."""

    error_type: str


Outcome = RunOutcome | ChatUsage | Retries | ToolResult | Failure


class Span(Protocol):
    def record(self, outcome: Outcome) -> None:
        """Adds what `outcome` says to the span (whitelisted attributes only)."""
        ...


class Tracing(Protocol):
    """Spans of the deliberation protocol (GenAI semantic conventions), and the trace context to carry."""

    def span(self, info: SpanInfo, parent: Mapping[str, str] | None = None) -> AbstractContextManager[Span]:
        """Opens the span `info` describes, child of the current span, or of `parent`'s when a carrier (or a
        NATS message's headers) is given."""
        ...

    def carrier(self) -> TraceCarrier:
        """The current trace context as text ({} when tracing is off or no span is current)."""
        ...


class _NoSpan:
    def record(self, outcome: Outcome) -> None:
        pass


_NO_SPAN = nullcontext(_NoSpan())


class NoTracing:
    """The `Tracing` port that traces nothing: the default of the application's collaborators, so a use case
    built without tracing runs unchanged."""

    def span(self, info: SpanInfo, parent: Mapping[str, str] | None = None) -> AbstractContextManager[Span]:
        return _NO_SPAN

    def carrier(self) -> TraceCarrier:
        return {}


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


def run_outcome(final: Deliberation) -> RunOutcome:
    """The end of a run, for its deliberation span: status, rounds that ran, token totals."""
    usage = final.usage
    return RunOutcome(
        status=final.status.value,
        rounds_run=final.progress.rounds_run,
        stop_code=final.progress.stop_code.value if final.progress.stop_code else "",
        tokens_spent=usage.total_tokens,
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
    )


if TYPE_CHECKING:  # mypy proves the no-op is the port
    _conforms: Tracing = NoTracing()
