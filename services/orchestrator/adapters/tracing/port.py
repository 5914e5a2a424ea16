"""What the deliberation protocol sees of tracing: standard library types only, so these Protocols can move into
`application/ports.py` as they are. `Tracing` is the port; `adapters.tracing.facade.OtelTracing` implements it.

Spans are context managers: a span started inside another one (in the same task, or in a task created inside
it, as `asyncio.gather` does) is its child. Leaving the block ends the span; an exception leaving it marks the
span as an error with only the exception's class name (`error.type`), never its message, which could quote a
secret (a URL with credentials, a provider's error body).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

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


def carrier_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> TraceCarrier:
    """The trace headers among gRPC invocation metadata (keys are lower case on the wire)."""
    found: TraceCarrier = {}
    for key, value in metadata or ():
        name = key.lower()
        if name in ("traceparent", "tracestate") and isinstance(value, str):
            found[name] = value
    return found
