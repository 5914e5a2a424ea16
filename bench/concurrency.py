"""Concurrent deliberations: does one slow deliberation, or fifty at once, delay the others?

The real service path (Ray actors, HTTP to the fake OpenAI-compatible server at 1 s per call, the SQLite
store, the real checks): 1, 10 and 50 deliberations of 5 agents x 2 rounds submitted at once. Printed for each
batch: the wall time until the last one finished and its ratio to the single deliberation's wall time.

    python bench/concurrency.py [--latency 1.0] [--out bench/results/concurrency.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import ray

from orchestrator.adapters.checks.checker import ThreadedChecker
from orchestrator.adapters.llm.openai_chat import LLMEndpoint
from orchestrator.adapters.ray.agents import RayAgents, RayConfig
from orchestrator.adapters.store.sqlite import SqliteStore
from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.application.service import Orchestrator
from orchestrator.compose import Ports, compose
from orchestrator.config.logging_setup import configure_logging
from orchestrator.domain.model import DeliberationStatus
from orchestrator.testing.fake_llm import FakeLLMConfig, FakeLLMServer
from orchestrator.testing.fakes import fake_options

TASK = "Write a Python function that merges overlapping intervals"
AGENTS, ROUNDS = 5, 2


@dataclass
class Row:
    concurrent: int
    wall_s: float
    ratio_to_single: float
    mean_deliberation_s: float
    peak_llm_calls_in_flight: int


async def batch(app: Orchestrator, size: int) -> tuple[float, float]:
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            app.deliberate(Deliberate(TASK, "DEV", rounds=ROUNDS, task_id=f"c-{uuid.uuid4().hex[:10]}"))
            for _ in range(size)
        )
    )
    wall = time.perf_counter() - started
    bad = [r for r in results if r.status is not DeliberationStatus.COMPLETED]
    if bad:
        raise RuntimeError(f"{len(bad)} deliberations ended {bad[0].status}: {bad[0].error_message}")
    return wall, sum(r.duration_ms for r in results) / len(results) / 1000


async def run(latency: float, sizes: list[int]) -> list[Row]:
    rows: list[Row] = []
    with FakeLLMServer(FakeLLMConfig(latency_s=latency)) as llm, tempfile.TemporaryDirectory() as tmp:
        agents = RayAgents(RayConfig(namespace=f"bench-{uuid.uuid4().hex[:6]}"), LLMEndpoint(llm.base_url))
        await agents.connect()
        store = await SqliteStore.open(f"sqlite:///{tmp}/bench.db")
        ports = Ports(store, store.records, agents, agents, ThreadedChecker())
        app = compose(ports, fake_options(512)).orchestrator
        await app.create_council(CreateCouncil(role="DEV", num_agents=AGENTS))
        await batch(app, 1)  # warm-up: actors started, connections open
        single = 0.0
        for size in sizes:
            llm.reset()
            wall, mean = await batch(app, size)
            single = single or wall
            rows.append(Row(size, wall, wall / single, mean, llm.max_in_flight))
            r = rows[-1]
            print(
                f"{size:>3} concurrent  wall {wall:6.2f}s  ratio {r.ratio_to_single:5.3f}  "
                f"mean per deliberation {mean:5.2f}s  peak calls in flight {r.peak_llm_calls_in_flight}",
                flush=True,
            )
        await store.close()
        await agents.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per fake LLM call")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--out", type=Path, default=Path("bench/results/concurrency.json"))
    args = parser.parse_args()
    configure_logging(level="WARNING")
    rows = asyncio.run(run(args.latency, args.sizes))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "latency_s": args.latency,
        "agents": AGENTS,
        "rounds": ROUNDS,
        "ray": ray.__version__,
        "rows": [asdict(r) for r in rows],
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
