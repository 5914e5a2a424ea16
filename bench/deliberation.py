"""Deliberation latency against the critical-path bound, and the speedup over one-call-at-a-time.

The real service path (Ray actors, HTTP to the fake OpenAI-compatible server at a fixed latency, the SQLite
store, the real checks) runs each (N agents, R rounds) case twice in the same process:
- parallel: the protocol as shipped, every stage one concurrent fan-out;
- sequential baseline: the same stages through a gateway that lets one LLM call run at a time, as the
  earlier service did.
Printed per case: wall time, the bound (2 + 2R) x latency, wall / bound, and sequential / parallel.

    python bench/deliberation.py [--latency 0.2] [--out bench/results/deliberation.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import ray

from orchestrator.adapters.checks.checker import ThreadedChecker
from orchestrator.adapters.llm.openai_chat import LLMEndpoint
from orchestrator.adapters.ray.agents import RayAgents, RayConfig
from orchestrator.adapters.store.sqlite import SqliteStore
from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.application.ports import AgentCall, AgentGateway, Completion
from orchestrator.application.service import Orchestrator
from orchestrator.compose import Options, Ports, compose
from orchestrator.config.logging_setup import configure_logging
from orchestrator.domain.model import AgentSpec, DeliberationStatus
from orchestrator.testing.fake_llm import FakeLLMConfig, FakeLLMServer

TASK = "Write a Python function that validates and normalises e-mail addresses"
ROLE_FOR_SIZE = {3: "DEV", 5: "QA", 10: "ARCHITECT"}


class SequentialGateway:
    """The baseline: the same gateway, but only one LLM call in flight at any time."""

    def __init__(self, inner: AgentGateway) -> None:
        self._inner = inner
        self._lock = asyncio.Lock()

    async def complete(self, agent: AgentSpec, call: AgentCall) -> Completion:
        async with self._lock:
            return await self._inner.complete(agent, call)


@dataclass
class Row:
    agents: int
    rounds: int
    wall_s: float
    bound_s: float
    ratio: float
    sequential_s: float
    speedup: float


async def timed(service: Orchestrator, role: str, rounds: int, repeats: int) -> float:
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = await service.deliberate(Deliberate(TASK, role, rounds=rounds, task_id=f"b-{uuid.uuid4().hex[:10]}"))
        walls.append(time.perf_counter() - started)
        if result.status is not DeliberationStatus.COMPLETED:
            raise RuntimeError(f"benchmark deliberation ended {result.status}: {result.error_message}")
    return statistics.median(walls)


async def run(latency: float, repeats: int) -> list[Row]:
    rows = []
    with FakeLLMServer(FakeLLMConfig(latency_s=latency)) as llm, tempfile.TemporaryDirectory() as tmp:
        agents = RayAgents(RayConfig(namespace=f"bench-{uuid.uuid4().hex[:6]}"), LLMEndpoint(llm.base_url))
        await agents.connect()
        store = await SqliteStore.open(f"sqlite:///{tmp}/bench.db")
        ports = Ports(store, store.deliberations, agents, agents, ThreadedChecker())
        options = Options(CouncilDefaults("fake-llm", 0.7, 512))
        app = parallel = compose(ports, options).orchestrator
        sequential = compose(replace(ports, gateway=SequentialGateway(agents)), options).orchestrator
        for size, role in ROLE_FOR_SIZE.items():
            await app.create_council(CreateCouncil(role=role, num_agents=size))
            await timed(parallel, role, 0, 1)  # warm-up: actors started, connections open
            for rounds in (1, 2):
                wall = await timed(parallel, role, rounds, repeats)
                seq = await timed(sequential, role, rounds, 1)
                bound = (2 + 2 * rounds) * latency
                rows.append(Row(size, rounds, wall, bound, wall / bound, seq, seq / wall))
                print_row(rows[-1])
        await store.close()
        await agents.close()
    return rows


def print_row(r: Row) -> None:
    print(
        f"N={r.agents:<3} R={r.rounds}  wall {r.wall_s:6.3f}s  bound {r.bound_s:5.2f}s  ratio {r.ratio:5.3f}  "
        f"sequential {r.sequential_s:6.2f}s  speedup {r.speedup:5.2f}x",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per fake LLM call")
    parser.add_argument("--repeats", type=int, default=3, help="parallel runs per case (median reported)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/deliberation.json"))
    args = parser.parse_args()
    configure_logging(level="WARNING")
    rows = asyncio.run(run(args.latency, args.repeats))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"latency_s": args.latency, "ray": ray.__version__, "rows": [asdict(r) for r in rows]}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
