"""Composition root: builds every adapter from Settings, wires the application, closes all in reverse order."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from orchestrator.adapters.checks.checker import ThreadedChecker
from orchestrator.adapters.llm.openai_chat import LLMEndpoint
from orchestrator.adapters.ray.agents import RayAgents, RayConfig
from orchestrator.adapters.store.sqlite import SqliteStore
from orchestrator.application.commands import CouncilDefaults, Limits
from orchestrator.application.deliberations import Admission, Deliberations
from orchestrator.application.service import Orchestrator
from orchestrator.config import Settings
from orchestrator.domain.errors import ConfigError

log = structlog.get_logger(__name__)


@dataclass
class App:
    settings: Settings
    orchestrator: Orchestrator
    agents: RayAgents
    store: SqliteStore


def council_defaults(settings: Settings) -> CouncilDefaults:
    return CouncilDefaults(
        model=settings.vllm_model,
        temperature=settings.vllm_temperature,
        max_tokens=settings.vllm_max_tokens,
        rounds=settings.default_rounds,
        num_agents=settings.default_agents,
    )


async def _open_store(settings: Settings) -> SqliteStore:
    url = settings.store_url
    if url.startswith(("neo4j", "bolt")) or settings.neo4j_uri:
        raise ConfigError("the Neo4j store is not available in this build; use STORE_URL=sqlite:///path")
    return await SqliteStore.open(url)


@contextlib.asynccontextmanager
async def bootstrap(settings: Settings) -> AsyncIterator[App]:
    """Yields a ready App: store open, Ray connected, councils restored, interrupted runs resumed."""
    settings.require_llm()
    async with contextlib.AsyncExitStack() as stack:
        store = await _open_store(settings)
        stack.push_async_callback(store.close)
        endpoint = LLMEndpoint(
            base_url=settings.vllm_url,
            api_key=settings.vllm_api_key,
            timeout_s=settings.vllm_timeout,
            max_retries=settings.vllm_max_retries,
        )
        agents = RayAgents(RayConfig(address=settings.ray_address, namespace=settings.ray_namespace), endpoint)
        await agents.connect()
        stack.push_async_callback(agents.close)
        deliberations = Deliberations(
            councils=store,
            store=store.deliberations,
            gateway=agents,
            checker=ThreadedChecker(),
            limits=Limits(),
            default_timeout_s=settings.deliberation_timeout,
            admission=Admission(settings.max_concurrent_deliberations, settings.deliberation_queue_size),
        )
        orchestrator = Orchestrator(store, agents, deliberations, council_defaults(settings), Limits())
        stack.push_async_callback(deliberations.shutdown, settings.shutdown_grace)
        restored, resumed = await orchestrator.restore()
        log.info("orchestrator_ready", councils=[c.role.value for c in restored], resumed=resumed)
        yield App(settings, orchestrator, agents, store)
