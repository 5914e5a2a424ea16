"""The fake OpenAI-compatible server, driven by the real `openai` SDK over loopback HTTP."""

from __future__ import annotations

import ast
import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import openai
import pytest

from orchestrator.domain import prompts
from orchestrator.domain.model import Proposal, Role, TaskSpec
from orchestrator.testing.fake_llm import FakeLLMConfig, FakeLLMServer, FaultSpec

pytestmark = pytest.mark.integration

TASK = TaskSpec(
    task_id="t-1",
    description="Write a function that deduplicates a list of e-mail addresses.\nKeep it small.",
    role=Role.DEV,
    rounds=2,
    num_agents=3,
    rubric="correct, tested, readable",
    requirements=("must preserve the original order", "must compare case-insensitively"),
)
MODEL = "fake-llm"
_FENCE = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)

ServerFactory = Callable[..., FakeLLMServer]


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    servers: list[FakeLLMServer] = []

    def make(**config: Any) -> FakeLLMServer:
        server = FakeLLMServer(FakeLLMConfig(**config))
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def srv(make_server: ServerFactory) -> FakeLLMServer:
    return make_server()


@pytest.fixture
async def client(srv: FakeLLMServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with _client(srv) as c:
        yield c


def _client(srv: FakeLLMServer, timeout: float = 5.0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=srv.base_url, api_key="x", max_retries=0, timeout=timeout, http_client=httpx2.AsyncClient()
    )


def _kwargs(agent_id: str, prompt: prompts.Prompt) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}],
        "temperature": 0.7,
        "seed": 42,
        "max_tokens": 1024,
        "user": agent_id,
    }
    if prompt.schema is not None:
        schema = {"name": prompt.schema_name, "schema": dict(prompt.schema), "strict": True}
        kwargs["response_format"] = {"type": "json_schema", "json_schema": schema}
    return kwargs


async def _ask(client: openai.AsyncOpenAI, agent_id: str, prompt: prompts.Prompt) -> str:
    completion = await client.chat.completions.create(**_kwargs(agent_id, prompt))
    return str(completion.choices[0].message.content or "")


def _python_block(content: str) -> str:
    return str(next(code for lang, code in _FENCE.findall(content) if lang == "python"))


async def test_propose_returns_markdown_with_code_block_and_usage(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(**_kwargs("agent-dev-001", prompts.propose(TASK)))

    content = completion.choices[0].message.content or ""
    assert completion.object == "chat.completion" and completion.model == MODEL
    assert completion.choices[0].finish_reason == "stop"
    assert "deduplicates a list of e-mail addresses" in content
    assert _FENCE.search(content)
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_content_is_deterministic_and_differs_by_agent(client: openai.AsyncOpenAI) -> None:
    first = await _ask(client, "agent-dev-001", prompts.propose(TASK))
    again = await _ask(client, "agent-dev-001", prompts.propose(TASK))
    other = await _ask(client, "agent-dev-002", prompts.propose(TASK))

    assert first == again
    assert first != other


async def test_most_agents_mention_requirements(client: openai.AsyncOpenAI) -> None:
    answers = [await _ask(client, f"agent-dev-{i:03}", prompts.propose(TASK)) for i in range(1, 13)]

    covering = [a for a in answers if all(r in a for r in TASK.requirements)]
    assert len(answers) // 2 < len(covering) < len(answers)


async def test_critique_names_every_peer(client: openai.AsyncOpenAI, srv: FakeLLMServer) -> None:
    srv.update_config(broken_python_agents={"agent-dev-002"})
    peers = [
        Proposal(a, Role.DEV, await _ask(client, a, prompts.propose(TASK)), 0)
        for a in ("agent-dev-001", "agent-dev-002")
    ]

    critiques = json.loads(await _ask(client, "agent-dev-003", prompts.critique(TASK, 1, peers)))["critiques"]

    assert [c["target"] for c in critiques] == ["agent-dev-001", "agent-dev-002"]
    assert "does not parse" in critiques[1]["critique"]
    assert srv.count(stage="critique") == 1 and srv.calls()[-1].round == 1


async def test_score_gives_broken_python_peer_at_most_4(client: openai.AsyncOpenAI, srv: FakeLLMServer) -> None:
    srv.update_config(broken_python_agents={"agent-dev-001"}, valid_python_agents={"agent-dev-002"})
    peers = [
        Proposal(a, Role.DEV, await _ask(client, a, prompts.propose(TASK)), 0)
        for a in ("agent-dev-001", "agent-dev-002")
    ]

    for scorer in ("agent-dev-003", "agent-dev-004", "agent-dev-005"):
        scores = json.loads(await _ask(client, scorer, prompts.score(TASK, [(p.author_id, p) for p in peers])))[
            "scores"
        ]
        by_target = {s["target"]: s["score"] for s in scores}
        assert 1 <= by_target["agent-dev-001"] <= 4
        assert 5 <= by_target["agent-dev-002"] <= 10


async def test_broken_python_agents_always_write_a_syntax_error(make_server: ServerFactory) -> None:
    srv = make_server(broken_python_agents={"agent-dev-001"}, valid_python_agents={"agent-dev-002"})
    async with _client(srv) as client:
        broken = await _ask(client, "agent-dev-001", prompts.propose(TASK))
        own = Proposal("agent-dev-001", Role.DEV, broken, 0)
        revised = await _ask(client, "agent-dev-001", prompts.revise(TASK, 2, own, ["fix the syntax"]))
        valid = await _ask(client, "agent-dev-002", prompts.propose(TASK))

    for content in (broken, revised):
        with pytest.raises(SyntaxError):
            ast.parse(_python_block(content))
    ast.parse(_python_block(valid))
    assert revised != broken and "Revision 2: addressed: fix the syntax" in revised


async def test_ignore_response_format_and_think(make_server: ServerFactory) -> None:
    srv = make_server(ignore_response_format=True, think_agents={"agent-dev-003"})
    peers = [Proposal("agent-dev-001", Role.DEV, "no code here", 0)]
    async with _client(srv) as client:
        completion = await client.chat.completions.create(
            **_kwargs("agent-dev-003", prompts.score(TASK, [(p.author_id, p) for p in peers]))
        )

    message = completion.choices[0].message
    content = message.content or ""
    assert content.startswith("<think>") and "</think>" in content
    assert (message.model_extra or {}).get("reasoning_content")
    fenced = re.search(r"```json\n(.*?)\n```", content, re.DOTALL)
    assert fenced and json.loads(fenced.group(1))["scores"][0]["target"] == "agent-dev-001"


async def test_429_once_then_success(client: openai.AsyncOpenAI, srv: FakeLLMServer) -> None:
    srv.set_fault("agent-dev-001", FaultSpec("429", times=1, retry_after_s=2.0))

    with pytest.raises(openai.RateLimitError) as caught:
        await _ask(client, "agent-dev-001", prompts.propose(TASK))
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.response.headers["retry-after-ms"] == "2000"
    assert await _ask(client, "agent-dev-001", prompts.propose(TASK))
    assert [(c.status_code, c.fault) for c in srv.calls()] == [(429, "429"), (200, None)]


async def test_500_fault_limited_to_a_stage(client: openai.AsyncOpenAI, srv: FakeLLMServer) -> None:
    srv.set_fault("agent-dev-001", FaultSpec("500", stage="critique"))

    assert await _ask(client, "agent-dev-001", prompts.propose(TASK))
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await _ask(client, "agent-dev-001", prompts.critique(TASK, 1, []))
    srv.set_fault("agent-dev-001", None)
    assert await _ask(client, "agent-dev-001", prompts.critique(TASK, 1, []))
    assert [c.status_code for c in srv.calls()] == [200, 500, 500, 200]


async def test_malformed_body_makes_the_sdk_raise(client: openai.AsyncOpenAI, srv: FakeLLMServer) -> None:
    srv.set_fault("agent-dev-001", FaultSpec("malformed"))

    with pytest.raises(ValueError):  # the SDK lets the JSON decoding error through
        await _ask(client, "agent-dev-001", prompts.propose(TASK))
    assert srv.calls()[0].fault == "malformed"


async def test_hang_until_client_timeout_records_disconnect(srv: FakeLLMServer) -> None:
    srv.set_fault("agent-dev-001", FaultSpec("hang"))

    async with _client(srv, timeout=0.3) as client:
        with pytest.raises(openai.APITimeoutError):
            await _ask(client, "agent-dev-001", prompts.propose(TASK))

    assert await asyncio.to_thread(srv.wait_for_calls, 1, timeout=30.0)
    (call,) = srv.calls()
    assert call.disconnected and call.fault == "hang" and srv.in_flight() == 0


async def test_latency_overlaps_concurrent_calls(make_server: ServerFactory) -> None:
    srv = make_server(latency_s=0.2)
    async with _client(srv) as client:
        started = time.monotonic()
        answers = await asyncio.gather(*(_ask(client, f"agent-dev-{i:03}", prompts.propose(TASK)) for i in range(10)))
        elapsed = time.monotonic() - started

    assert all(answers) and 0.2 <= elapsed < 1.0
    assert srv.max_in_flight >= 10 and srv.count(stage="propose") == 10


async def test_per_agent_latency(srv: FakeLLMServer, client: openai.AsyncOpenAI) -> None:
    srv.set_latency(0.3, agent_id="agent-dev-slow")

    started = time.monotonic()
    await _ask(client, "agent-dev-fast", prompts.propose(TASK))
    fast = time.monotonic() - started
    await _ask(client, "agent-dev-slow", prompts.propose(TASK))

    assert fast < 0.25 and time.monotonic() - started >= 0.3


async def test_models_lists_the_model(make_server: ServerFactory) -> None:
    srv = make_server(models=("fake-llm", "fake-llm-large"))
    async with _client(srv) as client:
        models = await client.models.list()

    assert [m.id for m in models.data] == ["fake-llm", "fake-llm-large"]


def test_bad_requests_get_openai_errors(srv: FakeLLMServer) -> None:
    with httpx2.Client(base_url=srv.base_url) as http:
        not_json = http.post("/chat/completions", content=b"{nope", headers={"content-type": "application/json"})
        no_messages = http.post("/chat/completions", json={"model": MODEL})
        health = http.get(srv.base_url.removesuffix("/v1") + "/health")

    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
    assert no_messages.status_code == 400 and set(no_messages.json()["error"]) >= {"message", "type", "code"}
    assert health.status_code == 200


def test_command_line_serves_until_sigterm() -> None:
    command = [sys.executable, "-m", "orchestrator.testing.fake_llm", "--port", "0", "--latency", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url)
            assert httpx2.get(base_url + "/models").json()["data"][0]["id"] == MODEL
        finally:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
