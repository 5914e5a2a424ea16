"""Deliberation latency against the critical-path bound, and the speedup over one-call-at-a-time.

The real service path (Ray actors, HTTP to the fake OpenAI-compatible server at a fixed latency, the SQLite
store, the real checks) runs each (N agents, R rounds) case twice in the same process:
- parallel: the protocol as shipped, every stage one concurrent fan-out;
- sequential baseline: the same stages through a gateway that lets one LLM call run at a time, as the
  earlier service did.
Printed per case: wall time, the bound (2 + 2R) x latency, wall / bound, and sequential / parallel; and what the
execution checks cost: sandbox runs per deliberation and the verify stages' time (summed over the deliberation's
verify stages). The task has doctest examples and every agent answers a scripted solution with its own tests (one
correct, two subtly wrong ones, in turn, the same text in every stage), so verify stages run real code in the
bubblewrap sandbox of this host (early stop off, so every round runs): as the service runs, the proposals of one
text share a run and one static check, and the revision stage, having changed nothing, runs none
(adapters/checks/verdicts.py, checker.py; every deliberation starts with nothing kept). `--no-shared`: every
agent's solution a text of its own and nothing kept, so every proposal and every revision runs and is checked:
the cost where no two proposals are the same code and every revision changes its code.

The sandbox runs in this process (bubblewrap), every run started when its job is ready, as the service's runs (Ray
tasks) are. `--warm`: the verifier starts each verify stage's sandbox runs ahead (`ExecutionVerifier(warm=True)`),
at the end of a verify stage, for the next one, which then finds them waiting (the first stage of a deliberation
finds those the previous deliberation's last stage started) — a configuration the service does not use yet.

    python bench/deliberation.py [--latency 0.2] [--rounds 1,2] [--warm] [--no-shared] [--out …]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import ray

from orchestrator.adapters.checks.checker import MAX_SUITES_KEPT, ThreadedChecker
from orchestrator.adapters.checks.execution import ExecutionVerifier
from orchestrator.adapters.checks.verdicts import MAX_RUNS_KEPT
from orchestrator.adapters.llm.openai_chat import LLMEndpoint
from orchestrator.adapters.ray.agents import RayAgents, RayConfig
from orchestrator.adapters.sandbox import BwrapSandbox
from orchestrator.adapters.sandbox.bwrap import StartedRun
from orchestrator.adapters.store.sqlite import SqliteStore
from orchestrator.application.commands import CreateCouncil, Deliberate
from orchestrator.application.ports import AgentCall, AgentGateway, Completion
from orchestrator.application.service import Orchestrator
from orchestrator.compose import Ports, compose
from orchestrator.config.logging_setup import configure_logging
from orchestrator.domain.evidence import ProposalEvidence, Specification
from orchestrator.domain.execution import Execution, SandboxAvailability, SandboxLimits
from orchestrator.domain.model import AgentSpec, DeliberationStatus
from orchestrator.testing.evidence_task import CORRECT, NO_LOWER, OFF_BY_ONE, TASK
from orchestrator.testing.fake_llm import FakeLLMConfig, FakeLLMServer
from orchestrator.testing.fakes import fake_options
from orchestrator.testing.sandbox_required import CountingSandbox as SandboxCounting

ROLE_FOR_SIZE = {3: "DEV", 5: "QA", 10: "ARCHITECT"}
SCRIPTED = {
    f"agent-{role.lower()}-{i + 1:03d}": (OFF_BY_ONE, CORRECT, NO_LOWER)[i % 3]
    for size, role in ROLE_FOR_SIZE.items()
    for i in range(size)
}


def distinct(scripted: Mapping[str, str]) -> dict[str, str]:
    """Every agent's solution code of its own (a constant naming the agent: comments do not count, the solution is
    taken without them), so no two proposals share a run."""
    return {
        agent: text.replace("```python\ndef ", f'```python\nAUTHOR = "{agent}"\n\n\ndef ', 1)
        for agent, text in scripted.items()
    }


class CountingSandbox(SandboxCounting):
    """The sandbox, counting its runs (a run started ahead counts once it is given its job)."""

    def __init__(self, inner: BwrapSandbox) -> None:
        super().__init__(inner)
        self._bwrap = inner

    async def start(
        self, files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits
    ) -> CountedRun:
        return CountedRun(self, await self._bwrap.start(files, command, limits))


class CountedRun:
    def __init__(self, sandbox: CountingSandbox, inner: StartedRun) -> None:
        self._sandbox = sandbox
        self._inner = inner

    @property
    def alive(self) -> bool:
        return self._inner.alive

    async def run(self, stdin: bytes = b"") -> Execution:
        self._sandbox.runs += 1
        return await self._inner.run(stdin)

    async def close(self) -> None:
        await self._inner.close()


class TimedVerifier:
    """The execution verifier, summing the wall time of its verify stages."""

    def __init__(self, inner: ExecutionVerifier) -> None:
        self._inner = inner
        self.seconds = 0.0

    async def verify(
        self, spec: Specification, proposals: Mapping[str, str], round_: int
    ) -> dict[str, ProposalEvidence]:
        started = time.perf_counter()
        try:
            return await self._inner.verify(spec, proposals, round_)
        finally:
            self.seconds += time.perf_counter() - started

    def availability(self) -> SandboxAvailability:
        return self._inner.availability()


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
    sandbox_runs: float
    """Sandbox runs per deliberation (median over the parallel repeats)."""
    verify_s: float
    """Wall time of the deliberation's verify stages together (median over the parallel repeats)."""


@dataclass
class Cost:
    sandbox: CountingSandbox
    verifier: TimedVerifier
    runs: list[int]
    verify: list[float]


async def timed(
    service: Orchestrator, role: str, rounds: int, repeats: int, fresh: Callable[[], None], cost: Cost | None = None
) -> float:
    """The median wall time of `repeats` deliberations, each starting with nothing kept (`fresh()` before each)."""
    walls = []
    for _ in range(repeats):
        fresh()
        if cost is not None:
            cost.sandbox.runs, cost.verifier.seconds = 0, 0.0
        started = time.perf_counter()
        result = await service.deliberate(Deliberate(TASK, role, rounds=rounds, task_id=f"b-{uuid.uuid4().hex[:10]}"))
        walls.append(time.perf_counter() - started)
        if cost is not None:
            cost.runs.append(cost.sandbox.runs)
            cost.verify.append(cost.verifier.seconds)
        if result.status is not DeliberationStatus.COMPLETED:
            raise RuntimeError(f"benchmark deliberation ended {result.status}: {result.error_message}")
    return statistics.median(walls)


async def run(
    latency: float, repeats: int, round_counts: Sequence[int], warm: bool = False, shared: bool = True
) -> list[Row]:
    rows = []
    sandbox = CountingSandbox(BwrapSandbox())
    availability = await sandbox.probe()
    if not availability.available:
        raise RuntimeError(f"the benchmark needs the sandbox: {availability.summary}")
    execution = ExecutionVerifier(sandbox, warm=warm, verdicts=MAX_RUNS_KEPT if shared else 0)
    verifier = TimedVerifier(execution)
    config = FakeLLMConfig(latency_s=latency, scripted_proposals=SCRIPTED if shared else distinct(SCRIPTED))
    with FakeLLMServer(config) as llm, tempfile.TemporaryDirectory() as tmp:
        agents = RayAgents(RayConfig(namespace=f"bench-{uuid.uuid4().hex[:6]}"), LLMEndpoint(llm.base_url))
        await agents.connect()
        store = await SqliteStore.open(f"sqlite:///{tmp}/bench.db")
        checker = ThreadedChecker(kept=MAX_SUITES_KEPT if shared else 0)

        def fresh() -> None:  # no verdicts or check suites kept from an earlier deliberation
            execution.verdicts.clear()
            checker.clear()

        ports = Ports(store, store.records, agents, agents, checker, verifier=verifier)
        options = fake_options(512, early_stop=False)
        app = parallel = compose(ports, options).orchestrator
        sequential = compose(replace(ports, gateway=SequentialGateway(agents)), options).orchestrator
        for size, role in ROLE_FOR_SIZE.items():
            await app.create_council(CreateCouncil(role=role, num_agents=size))
            await timed(parallel, role, 0, 1, fresh)  # warm-up: actors started, connections open
            for rounds in round_counts:
                cost = Cost(sandbox, verifier, [], [])
                wall = await timed(parallel, role, rounds, repeats, fresh, cost)
                seq = await timed(sequential, role, rounds, 1, fresh)
                bound = (2 + 2 * rounds) * latency
                runs, verify_s = statistics.median(cost.runs), statistics.median(cost.verify)
                rows.append(Row(size, rounds, wall, bound, wall / bound, seq, seq / wall, runs, verify_s))
                print_row(rows[-1])
        await execution.aclose()
        await store.close()
        await agents.close()
    return rows


def print_row(r: Row) -> None:
    print(
        f"N={r.agents:<3} R={r.rounds}  wall {r.wall_s:6.3f}s  bound {r.bound_s:5.2f}s  ratio {r.ratio:5.3f}  "
        f"sequential {r.sequential_s:6.2f}s  speedup {r.speedup:5.2f}x  "
        f"sandbox runs {r.sandbox_runs:g}  verify {r.verify_s:6.3f}s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per fake LLM call")
    parser.add_argument("--repeats", type=int, default=3, help="parallel runs per case (median reported)")
    parser.add_argument("--rounds", default="1,2", help="round counts to run, comma-separated")
    parser.add_argument("--out", type=Path, default=Path("bench/results/deliberation.json"))
    parser.add_argument(
        "--warm",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="start each verify stage's sandbox runs ahead, during the stages before it (the service does not)",
    )
    parser.add_argument(
        "--shared",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="as the service runs: proposals of the same code share a run, and a revision that changed nothing is "
        "not run again; --no-shared: every agent's code a text of its own and nothing kept, so every proposal "
        "and revision runs (the cost where no two proposals agree and every revision changes its code)",
    )
    args = parser.parse_args()
    round_counts = [int(r) for r in args.rounds.split(",") if r.strip()]
    configure_logging(level="WARNING")
    rows = asyncio.run(run(args.latency, args.repeats, round_counts, args.warm, args.shared))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "latency_s": args.latency,
        "ray": ray.__version__,
        "warm": args.warm,
        "shared": args.shared,
        "rows": [asdict(r) for r in rows],
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
