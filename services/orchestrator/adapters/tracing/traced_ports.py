"""Spans around the ports the protocol already calls: wrapped once in the composition root, so the protocol needs
no tracing code for its agent calls, checks and sandbox runs.

- `TracedGateway` (AgentGateway): a `chat {model}` span per call, with its token usage and retries. The service
  wraps a gateway that calls the LLM in this process with it; on Ray the agent actor wraps its own client with it
  in the worker (`adapters/tracing/worker.py`), under the trace context sent along with the call.
- `TracedChecker` (Checker): `execute_tool checks` per proposal check.
- `TracedSandbox` (Sandbox): `execute_tool sandbox` per sandboxed run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from orchestrator.adapters.llm.openai_chat import counting_attempts
from orchestrator.adapters.tracing.port import (
    ChatInfo,
    ChatUsage,
    Failure,
    Retries,
    Span,
    ToolInfo,
    ToolResult,
    Tracing,
)
from orchestrator.application.ports import AgentCall, AgentGateway, Checker, Completion, Sandbox
from orchestrator.domain.errors import LLMCallError
from orchestrator.domain.execution import Execution, ExecutionOutcome, SandboxAvailability, SandboxLimits
from orchestrator.domain.model import AgentSpec, CheckSuite


class TracedGateway:
    def __init__(self, inner: AgentGateway, tracing: Tracing) -> None:
        self._inner = inner
        self._tracing = tracing

    async def complete(self, agent: AgentSpec, call: AgentCall) -> Completion:
        info = ChatInfo(
            agent.agent_id,
            agent.model,
            call.stage.value,
            call.round,
            temperature=agent.temperature,
            seed=agent.seed,
            max_tokens=agent.max_tokens,
        )
        with self._tracing.span(info) as span, counting_attempts() as attempts:
            try:
                completion = await self._inner.complete(agent, call)
            except LLMCallError as exc:
                _retries(span, attempts)
                span.record(Failure(exc.code))  # the kind (`rate_limited`, `unavailable`...), never the detail text
                raise
            _retries(span, attempts)
            span.record(ChatUsage(completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.model))
            return completion


def _retries(span: Span, attempts: list[str]) -> None:
    """The SDK's retries of this call, counted from the HTTP requests the chat client sent for it (an inner
    gateway that sends none here, such as one on Ray, whose worker traces the call itself, leaves it unset)."""
    if attempts:
        span.record(Retries(len(attempts) - 1))


class TracedChecker:
    def __init__(self, inner: Checker, tracing: Tracing) -> None:
        self._inner = inner
        self._tracing = tracing

    async def check(self, content: str, requirements: Sequence[str]) -> CheckSuite:
        with self._tracing.span(ToolInfo("checks")) as span:
            suite = await self._inner.check(content, requirements)
            span.record(ToolResult(passed=suite.all_passed))
            return suite


class TracedSandbox:
    def __init__(self, inner: Sandbox, tracing: Tracing) -> None:
        self._inner = inner
        self._tracing = tracing

    async def run(self, files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits) -> Execution:
        with self._tracing.span(ToolInfo("sandbox")) as span:
            execution = await self._inner.run(files, command, limits)
            skipped = execution.outcome is ExecutionOutcome.SKIPPED
            ended = execution.outcome in (ExecutionOutcome.KILLED, ExecutionOutcome.TIMED_OUT)
            status = execution.outcome.value if ended else ""
            span.record(ToolResult(execution.passed, execution.exit_code, skipped=skipped, status=status))
            return execution

    async def probe(self) -> SandboxAvailability:
        return await self._inner.probe()

    def availability(self) -> SandboxAvailability:
        return self._inner.availability()


if TYPE_CHECKING:  # mypy proves the wrappers are the ports they wrap

    def _conforms(gateway: TracedGateway, checker: TracedChecker, sandbox: TracedSandbox) -> None:
        _g: AgentGateway = gateway
        _c: Checker = checker
        _s: Sandbox = sandbox
