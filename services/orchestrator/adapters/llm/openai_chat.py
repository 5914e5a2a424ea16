"""OpenAI-compatible chat client (vLLM, llama.cpp server, the fake server in tests).

Retries are the SDK's own: exponential backoff with jitter on 408/409/429/5xx and connection errors,
honouring `Retry-After`/`retry-after-ms`. Each attempt has `timeout_s`. Vendor errors become LLMCallError
here, once, with a typed kind (CallErrorKind: RATE_LIMITED, TIMEOUT, UNAVAILABLE, HTTP with the status as data,
MALFORMED) callers can act on:
`unavailable` (connection refused, connect timeout, 502/503/504) is the endpoint being down for everyone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx2
import openai

from orchestrator.application.ports import AgentCall, Completion
from orchestrator.domain.errors import CallErrorKind, DependencyUnavailableError, LLMCallError
from orchestrator.domain.model import AgentSpec, Usage
from orchestrator.domain.parsing import strip_reasoning
from orchestrator.domain.validation import normalize_base_url


@dataclass(frozen=True)
class LLMEndpoint:
    base_url: str
    api_key: str = "not-needed"
    timeout_s: float = 120.0
    max_retries: int = 3
    connect_timeout_s: float = 5.0


def _messages(call: AgentCall) -> list[dict[str, str]]:
    return [{"role": "system", "content": call.prompt.system}, {"role": "user", "content": call.prompt.user}]


def _response_format(call: AgentCall) -> dict[str, Any] | None:
    if call.prompt.schema is None:
        return None
    return {
        "type": "json_schema",
        "json_schema": {"name": call.prompt.schema_name, "schema": dict(call.prompt.schema)},
    }


ENDPOINT_DOWN_STATUSES = (502, 503, 504)
"""What a proxy or load balancer in front of a stopped or restarting model server answers."""


def _error(agent_id: str, exc: Exception) -> LLMCallError:
    # UNAVAILABLE means the endpoint itself is down for every agent: a run then waits
    # for it instead of dropping agents. A read timeout or another status is about this call only.
    if isinstance(exc, openai.RateLimitError):
        return LLMCallError(agent_id, CallErrorKind.RATE_LIMITED, "429 after all retries")
    if isinstance(exc, openai.APITimeoutError) and isinstance(exc.__cause__, httpx2.ConnectTimeout):
        return LLMCallError(agent_id, CallErrorKind.UNAVAILABLE, "cannot reach the LLM endpoint (connect timeout)")
    if isinstance(exc, openai.APITimeoutError):
        return LLMCallError(agent_id, CallErrorKind.TIMEOUT, "no answer within the per-call timeout")
    if isinstance(exc, openai.APIConnectionError):
        return LLMCallError(
            agent_id, CallErrorKind.UNAVAILABLE, f"cannot reach the LLM endpoint ({exc.__cause__ or exc})"
        )
    if isinstance(exc, openai.APIStatusError) and exc.status_code in ENDPOINT_DOWN_STATUSES:
        detail = f"the LLM endpoint answers {exc.status_code} ({str(exc.message)[:200]})"
        return LLMCallError(agent_id, CallErrorKind.UNAVAILABLE, detail)
    if isinstance(exc, openai.APIStatusError):
        return LLMCallError(agent_id, CallErrorKind.HTTP, str(exc.message)[:300], status=exc.status_code)
    return LLMCallError(
        agent_id, CallErrorKind.MALFORMED, f"unreadable response ({type(exc).__name__}: {str(exc)[:200]})"
    )


_attempts: ContextVar[list[str] | None] = ContextVar("llm_attempts", default=None)


async def _count_attempt(request: httpx2.Request) -> None:
    counter = _attempts.get()
    if counter is not None:
        counter.append(request.url.path)


@contextmanager
def counting_attempts() -> Iterator[list[str]]:
    """Inside the block, every HTTP request this process's chat clients send for the current task (first tries and
    the SDK's retries) is appended to the list yielded: a call's retries are `len(list) - 1`."""
    counter: list[str] = []
    token = _attempts.set(counter)
    try:
        yield counter
    finally:
        _attempts.reset(token)


class OpenAIChatClient:
    """One client per process (per Ray actor); connections are pooled by the injected httpx2 client."""

    def __init__(self, endpoint: LLMEndpoint, http_client: httpx2.AsyncClient | None = None) -> None:
        self.endpoint = endpoint
        timeout = httpx2.Timeout(endpoint.timeout_s, connect=endpoint.connect_timeout_s)
        self._http = http_client or httpx2.AsyncClient(
            timeout=timeout,
            limits=httpx2.Limits(max_connections=256, max_keepalive_connections=64),
            event_hooks={"request": [_count_attempt]},
        )
        self._client = openai.AsyncOpenAI(
            base_url=normalize_base_url(endpoint.base_url),
            api_key=endpoint.api_key or "not-needed",
            timeout=timeout,
            max_retries=endpoint.max_retries,
            http_client=self._http,
        )
        self._structured_output = True

    async def complete(self, agent: AgentSpec, call: AgentCall) -> Completion:
        started = time.perf_counter()
        try:
            response = await self._create(agent, call)
        except openai.BadRequestError as exc:
            if _response_format(call) is None or not self._structured_output or not _about_structured_output(exc):
                raise _error(agent.agent_id, exc) from exc
            # Servers without structured output reject response_format; the lenient parser copes without it.
            self._structured_output = False
            try:
                response = await self._create(agent, call)
            except Exception as retry_exc:
                raise _error(agent.agent_id, retry_exc) from retry_exc
        except Exception as exc:
            raise _error(agent.agent_id, exc) from exc
        return self._completion(agent, response, (time.perf_counter() - started) * 1000)

    async def _create(self, agent: AgentSpec, call: AgentCall) -> Any:
        response_format = _response_format(call) if self._structured_output else None
        extra: dict[str, Any] = {"response_format": response_format} if response_format else {}
        if call.prompt.stop:
            extra["stop"] = list(call.prompt.stop)
        return await self._client.chat.completions.create(
            model=agent.model,
            messages=_messages(call),  # type: ignore[arg-type]
            temperature=agent.temperature,
            seed=agent.seed,
            max_tokens=agent.max_tokens,
            user=agent.agent_id,
            **extra,
        )

    def _completion(self, agent: AgentSpec, response: Any, latency_ms: float) -> Completion:
        try:
            message = response.choices[0].message
            # `reasoning_content` (vLLM reasoning parsers) is ignored; inline <think> blocks are stripped.
            content = strip_reasoning(message.content or "")
        except (AttributeError, IndexError, TypeError) as exc:
            raise LLMCallError(agent.agent_id, CallErrorKind.MALFORMED, f"no choices in the response ({exc})") from exc
        usage = response.usage
        tokens = Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else Usage()
        return Completion(content, tokens, latency_ms, str(getattr(response, "model", "") or agent.model))

    async def probe(self, timeout_s: float = 2.0) -> None:
        """One cheap request (GET /v1/models, no retries) to tell whether the endpoint answers: raises
        DependencyUnavailableError when it cannot be reached, does not answer in `timeout_s`, or answers 5xx.
        Any other answer (401, 404 from a server without the route) means it is up."""
        url = f"{normalize_base_url(self.endpoint.base_url)}/models"
        headers = {"Authorization": f"Bearer {self.endpoint.api_key or 'not-needed'}"}
        try:
            response = await self._http.get(url, headers=headers, timeout=timeout_s)
        except httpx2.HTTPError as exc:
            raise DependencyUnavailableError("LLM endpoint", f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        if response.status_code >= 500:
            raise DependencyUnavailableError("LLM endpoint", f"GET /v1/models answered {response.status_code}")

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()


STRUCTURED_OUTPUT_WORDS = ("response_format", "json_schema", "guided", "structured", "grammar")


def _about_structured_output(exc: openai.BadRequestError) -> bool:
    """Whether a 400 refuses the structured-output request itself (then calls go on without it), rather than
    something else about the call, such as a prompt longer than the context (then only this call fails)."""
    text = str(exc).lower()
    return any(word in text for word in STRUCTURED_OUTPUT_WORDS)
