"""The OpenAI-compatible client against the fake server over real HTTP on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from orchestrator.adapters.llm.openai_chat import LLMEndpoint, OpenAIChatClient, normalize_base_url
from orchestrator.application.ports import AgentCall
from orchestrator.domain import prompts
from orchestrator.domain.errors import LLMCallError
from orchestrator.domain.model import AgentSpec, Proposal, Role, Stage, TaskSpec
from orchestrator.domain.parsing import parse_scores
from orchestrator.testing.fake_llm import FakeLLMServer, FaultSpec

pytestmark = pytest.mark.integration

AGENT = AgentSpec("agent-dev-001", Role.DEV, "fake-llm", 0.7, 1000, 256)
TASK = TaskSpec("t", "Write a slugify function in Python", Role.DEV, 1, 2, requirements=("lowercase output",))
PROPOSE = AgentCall("t", Stage.PROPOSE, 0, prompts.propose(TASK))


@pytest.fixture
async def client(fake_llm: FakeLLMServer) -> AsyncIterator[OpenAIChatClient]:
    base = fake_llm.base_url.removesuffix("/v1")  # the client adds /v1 itself
    c = OpenAIChatClient(LLMEndpoint(base, timeout_s=2.0, max_retries=2))
    yield c
    await c.aclose()


def test_vllm_url_with_or_without_v1_is_the_same_endpoint() -> None:
    assert normalize_base_url("http://h:8000") == normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    with pytest.raises(ValueError):
        normalize_base_url("h:8000")


async def test_a_completion_carries_content_usage_and_model(client: OpenAIChatClient) -> None:
    completion = await client.complete(AGENT, PROPOSE)
    assert "```" in completion.content
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.model == "fake-llm"


async def test_think_blocks_and_reasoning_content_stay_out_of_the_answer(
    client: OpenAIChatClient, fake_llm: FakeLLMServer
) -> None:
    fake_llm.update_config(think=True)
    completion = await client.complete(AGENT, PROPOSE)
    assert "<think>" not in completion.content and "thinking about" not in completion.content


async def test_scores_wrapped_in_prose_are_still_read(client: OpenAIChatClient, fake_llm: FakeLLMServer) -> None:
    fake_llm.update_config(ignore_response_format=True)
    peers = [Proposal("agent-dev-002", Role.DEV, "```python\ndef f(:\n```", 0)]
    completion = await client.complete(
        AGENT, AgentCall("t", Stage.SCORE, 1, prompts.score(TASK, [(p.author_id, p) for p in peers]))
    )
    assert completion.content.startswith("Here are my scores")
    scores = parse_scores(completion.content, ["agent-dev-002"])
    assert scores["agent-dev-002"][0] <= 4


async def test_a_429_with_retry_after_is_retried_after_the_given_delay(
    client: OpenAIChatClient, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_fault(AGENT.agent_id, FaultSpec("429", times=1, retry_after_s=1.0))
    completion = await client.complete(AGENT, PROPOSE)
    assert completion.content
    calls = fake_llm.calls()
    assert [c.status_code for c in calls] == [429, 200]
    assert calls[1].started_at - calls[0].finished_at >= 0.9


async def test_persistent_server_errors_end_as_an_llm_call_error_after_retries(
    client: OpenAIChatClient, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_fault(AGENT.agent_id, FaultSpec("500"))
    with pytest.raises(LLMCallError) as info:
        await client.complete(AGENT, PROPOSE)
    assert info.value.code == "http_500"
    assert fake_llm.count(AGENT.agent_id) == 3  # the first try and two retries


async def test_a_malformed_body_is_reported_not_raised_raw(client: OpenAIChatClient, fake_llm: FakeLLMServer) -> None:
    fake_llm.set_fault(AGENT.agent_id, FaultSpec("malformed"))
    with pytest.raises(LLMCallError) as info:
        await client.complete(AGENT, PROPOSE)
    assert info.value.kind == "malformed"


async def test_a_hanging_server_times_out_and_the_request_is_closed(fake_llm: FakeLLMServer) -> None:
    fake_llm.set_fault(AGENT.agent_id, FaultSpec("hang"))
    c = OpenAIChatClient(LLMEndpoint(fake_llm.base_url, timeout_s=0.5, max_retries=0))
    with pytest.raises(LLMCallError) as info:
        await c.complete(AGENT, PROPOSE)
    await c.aclose()
    assert info.value.kind == "timeout"
    assert fake_llm.wait_for_calls(1, agent_id=AGENT.agent_id, timeout=30.0)
    assert fake_llm.calls()[0].disconnected


async def test_an_unreachable_endpoint_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = OpenAIChatClient(LLMEndpoint(f"http://127.0.0.1:{port}", timeout_s=1.0, max_retries=0))
    with pytest.raises(LLMCallError) as info:
        await c.complete(AGENT, PROPOSE)
    await c.aclose()
    assert info.value.kind == "unavailable"


async def test_a_server_without_structured_output_is_asked_again_without_it(
    client: OpenAIChatClient, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_fault(AGENT.agent_id, FaultSpec("no_structured_output"))
    peers = [Proposal("agent-dev-002", Role.DEV, "```python\ndef f(x):\n    return x\n```", 0)]
    score = AgentCall("t", Stage.SCORE, 1, prompts.score(TASK, [(p.author_id, p) for p in peers]))
    completion = await client.complete(AGENT, score)
    assert parse_scores(completion.content, ["agent-dev-002"])
    assert [c.status_code for c in fake_llm.calls()] == [400, 200]
    await client.complete(AGENT, score)  # from now on this client does not ask for it
    assert [c.status_code for c in fake_llm.calls()] == [400, 200, 200]


async def test_a_prompt_too_long_fails_that_call_only_and_keeps_structured_output(
    client: OpenAIChatClient, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_fault(AGENT.agent_id, FaultSpec("context_length", times=1))
    peers = [Proposal("agent-dev-002", Role.DEV, "```python\ndef f(x):\n    return x\n```", 0)]
    score = AgentCall("t", Stage.SCORE, 1, prompts.score(TASK, [(p.author_id, p) for p in peers]))
    with pytest.raises(LLMCallError, match="maximum context length"):
        await client.complete(AGENT, score)
    assert len(fake_llm.calls()) == 1  # a 400 is not retried
    fake_llm.set_fault(AGENT.agent_id, FaultSpec("no_structured_output", times=1))
    await client.complete(AGENT, score)  # still asks for structured output: the server answers 400 again
    assert [c.status_code for c in fake_llm.calls()] == [400, 400, 200]
