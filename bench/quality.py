"""What the council is worth: HumanEval pass@1 of the council against one call and N samples, at equal budget.

One run starts one model server (the embedded llama.cpp model, or `--vllm-url`/`VLLM_URL`), a recording proxy in
front of it (every prompt any arm sends is kept, so a test can prove the hidden tests never reached the model;
identical seeded requests of different arms share one answer, see `RecordingProxy`), and `orchestrator serve` as
a subprocess. Then, on the same problems, the same model and the same `max_tokens`:

- `single`: one greedy call (temperature 0) with the council's own propose prompt;
- `sample`: N independent calls with the propose prompt at the council agents' temperatures and seeds, no
  critique or revision. `random` is the expected pass@1 of picking one at random (the mean of the samples);
  `selected` (the sample the service's own ranking would pick without deliberating) needs the service's
  propose -> verify -> rank mode (`rounds = 0`) and stays empty until the service has it;
- `council`: the full protocol through the service's gRPC API (`Deliberate`), N agents x R rounds.

Every candidate is judged by the problem's hidden tests (bench/humaneval.py), which no agent ever sees. Rows are
appended to `<out>.rows.jsonl` as problems finish, so `--resume` carries on an interrupted run.

    python bench/quality.py --slice dev [--limit K | --problems 3,17,42] [--agents 3] [--rounds 1]
        [--max-tokens 512] [--concurrency 2] [--resume] [--out bench/results/quality-dev.json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

# The judge forks while gRPC's channel threads run; gRPC's fork handlers are not needed and would log per fork.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from aiohttp import ClientSession, ClientTimeout, web
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from humaneval import Problem, canonical_solution, extract_solution, judge, load_problems, select, wrong_solution

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

ROOT = Path(__file__).resolve().parent.parent
RPC_TIMEOUT_S = 3600.0
console = Console(stderr=True)


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
    await asyncio.to_thread(client.create_council, "DEV", args.agents, args.rounds, 300.0)
    (council,) = await asyncio.to_thread(client.list_councils, "DEV")
    return council


# --- the arms ---------------------------------------------------------------------------------------------------


class Arms:
    def __init__(self, client: OrchestratorClient, llm: OpenAIChatClient, council: CouncilView, model: str, args: Any):
        self.client, self.llm, self.model, self.args = client, llm, model, args
        self.agents = [
            (agent_id, temperature, seed)
            for (agent_id, temperature), seed in zip(council.agents, council.seeds, strict=True)
        ]
        self.run_id = uuid.uuid4().hex[:8]

    def _spec(self, problem: Problem) -> TaskSpec:
        return TaskSpec(f"he-{problem.index}", problem.task_text(), Role.DEV, self.args.rounds, self.args.agents)

    async def _call(self, problem: Problem, agent_id: str, temperature: float, seed: int) -> dict[str, Any]:
        agent = AgentSpec(agent_id, Role.DEV, self.model, temperature, seed, self.args.max_tokens)
        prompt = prompts.propose(self._spec(problem))
        completion = await self.llm.complete(agent, AgentCall(f"he-{problem.index}", Stage.PROPOSE, 0, prompt))
        verdict = await asyncio.to_thread(judge, problem, extract_solution(completion.content, problem.entry_point))
        return {
            "agent": agent_id,
            "temperature": temperature,
            "seed": seed,
            "passed": verdict.passed,
            "detail": verdict.detail[:300],
            "prompt_tokens": completion.usage.prompt_tokens,
            "completion_tokens": completion.usage.completion_tokens,
            "content": completion.content,
        }

    async def single(self, problem: Problem) -> dict[str, Any]:
        started = time.perf_counter()
        candidate = await self._call(problem, "single", 0.0, 0)
        return {
            "passed": candidate["passed"],
            "calls": 1,
            "prompt_tokens": candidate["prompt_tokens"],
            "completion_tokens": candidate["completion_tokens"],
            "wall_s": round(time.perf_counter() - started, 2),
            "candidates": [candidate],
        }

    async def sample(self, problem: Problem) -> dict[str, Any]:
        started = time.perf_counter()
        candidates = await asyncio.gather(
            *(
                self._call(problem, f"sample-{agent_id}", temperature, seed)
                for agent_id, temperature, seed in self.agents
            )
        )
        passes = [c["passed"] for c in candidates]
        return {
            "random": sum(passes) / len(passes),
            "selected": None,
            "oracle": any(passes),
            "calls": len(candidates),
            "prompt_tokens": sum(c["prompt_tokens"] for c in candidates),
            "completion_tokens": sum(c["completion_tokens"] for c in candidates),
            "wall_s": round(time.perf_counter() - started, 2),
            "candidates": candidates,
        }

    async def council(self, problem: Problem) -> dict[str, Any]:
        return await self._deliberate(problem, self.args.rounds, "council")

    async def selected(self, problem: Problem) -> dict[str, Any]:
        """The service's own choice among N proposals without deliberating: rounds = 0 (propose -> verify ->
        rank)."""
        return await self._deliberate(problem, 0, "selected")

    async def _deliberate(self, problem: Problem, rounds: int, arm: str) -> dict[str, Any]:
        started = time.perf_counter()
        task_id = f"he-{problem.index}-{arm}-{self.run_id}"
        spec = DeliberationSpec(
            problem.task_text(),
            role="DEV",
            rounds=rounds,
            agents=self.args.agents,
            task_id=task_id,
            timeout_s=int(RPC_TIMEOUT_S),
        )
        response = await asyncio.to_thread(self.client.deliberate, spec, RPC_TIMEOUT_S)
        wall = time.perf_counter() - started
        detail = await asyncio.to_thread(self.client.result, task_id)
        candidates = [await self._judge_result(problem, r) for r in response.results]
        winner = next((c for c in candidates if c["rank"] == 1), None)
        return {
            "status": f"DELIBERATION_STATUS_{status_name(response.status)}",  # the wire name, as earlier rows have it
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
        verdict = await asyncio.to_thread(judge, problem, extract_solution(content, problem.entry_point))
        checks = result.checks
        return {
            "agent": result.proposal.author_id,
            "rank": result.rank,
            "score": round(result.score, 4),
            "passed": verdict.passed,
            "detail": verdict.detail[:300],
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
            },
            "revisions": len(result.proposal.revisions),
            "content": content,
        }


async def run_problem(arms: Arms, problem: Problem) -> dict[str, Any]:
    row: dict[str, Any] = {"index": problem.index, "task_id": problem.task_id}
    # The judge itself is checked on every problem: the reference solution passes, a wrong one fails.
    reference, wrong = await asyncio.gather(
        asyncio.to_thread(judge, problem, canonical_solution(problem)),
        asyncio.to_thread(judge, problem, wrong_solution(problem)),
    )
    row["judge_check"] = {"canonical_passed": reference.passed, "wrong_passed": wrong.passed}
    row["single"] = await arms.single(problem)
    row["sample"] = await arms.sample(problem)
    if "selected" in arms.args.arms:
        row["selected"] = await arms.selected(problem)
        row["sample"]["selected"] = row["selected"]["passed"]
    row["council"] = await arms.council(problem)
    return row


# --- totals, comparison, output ---------------------------------------------------------------------------------


def mcnemar_exact(wins: int, losses: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs against p = 1/2."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / float(2**n)
    return min(1.0, 2 * tail)


def _arm_total(rows: list[dict[str, Any]], key: str, pass_of: Any, oracle: bool) -> dict[str, Any]:
    n = len(rows)
    passes = [float(pass_of(r)) for r in rows]
    total: dict[str, Any] = {
        "problems": n,
        "pass@1": round(sum(passes) / n, 4) if n else 0.0,
        "llm_calls": sum(r[key]["calls"] for r in rows),
        "prompt_tokens": sum(r[key]["prompt_tokens"] for r in rows),
        "completion_tokens": sum(r[key]["completion_tokens"] for r in rows),
        "wall_s": round(sum(r[key]["wall_s"] for r in rows), 1),
    }
    total["tokens_per_problem"] = round((total["prompt_tokens"] + total["completion_tokens"]) / n, 1) if n else 0
    if oracle:
        oracles = sum(1 for r in rows if r[key]["oracle"])
        total["oracle"] = round(oracles / n, 4) if n else 0.0
        total["selection_efficiency"] = round(sum(passes) / oracles, 4) if oracles else None
    return total


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    arms: dict[str, dict[str, Any] | None] = {
        "single": _arm_total(rows, "single", lambda r: r["single"]["passed"], oracle=False),
        "sample.random": _arm_total(rows, "sample", lambda r: r["sample"]["random"], oracle=True),
    }
    if rows and all("selected" in r for r in rows):
        arms["sample.selected"] = _arm_total(rows, "selected", lambda r: r["selected"]["passed"], oracle=True)
    else:
        arms["sample.selected"] = None  # needs the service's rounds = 0 mode (propose -> verify -> rank)
    arms["council"] = _arm_total(rows, "council", lambda r: r["council"]["passed"], oracle=True)
    return arms


def comparisons(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Council against each other arm on the same problems. Binary arms get wins, losses and the exact McNemar
    p-value; `sample.random` is an expectation, so it gets expected wins and losses only."""
    council = [bool(r["council"]["passed"]) for r in rows]
    out: dict[str, Any] = {}
    binary = {"single": [bool(r["single"]["passed"]) for r in rows]}
    seats = len(rows[0]["sample"]["candidates"]) if rows else 0
    for seat in range(seats):
        binary[f"sample[{seat}]"] = [bool(r["sample"]["candidates"][seat]["passed"]) for r in rows]
    if rows and all(r["sample"]["selected"] is not None for r in rows):
        binary["sample.selected"] = [bool(r["sample"]["selected"]) for r in rows]
    for name, other in binary.items():
        wins = sum(c and not o for c, o in zip(council, other, strict=True))
        losses = sum(o and not c for c, o in zip(council, other, strict=True))
        out[name] = {"wins": wins, "losses": losses, "mcnemar_p": round(mcnemar_exact(wins, losses), 4)}
    randoms = [r["sample"]["random"] for r in rows]
    out["sample.random"] = {
        "expected_wins": round(sum(c * (1 - p) for c, p in zip(council, randoms, strict=True)), 2),
        "expected_losses": round(sum((1 - c) * p for c, p in zip(council, randoms, strict=True)), 2),
    }
    return out


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return out.stdout.strip() + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def print_table(arms: dict[str, Any], compared: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    for column in ("arm", "pass@1", "oracle", "sel. eff.", "LLM calls", "tokens/problem", "wall s"):
        table.add_column(column, justify="right" if column != "arm" else "left")
    for name, t in arms.items():
        if t is None:
            table.add_row(name, "—", "—", "—", "—", "—", "needs rounds = 0 mode")
            continue
        eff = t.get("selection_efficiency")
        table.add_row(
            name,
            f"{t['pass@1']:.3f}",
            f"{t['oracle']:.3f}" if "oracle" in t else "",
            f"{eff:.3f}" if eff is not None else "",
            str(t["llm_calls"]),
            f"{t['tokens_per_problem']:.0f}",
            f"{t['wall_s']:.0f}",
        )
    Console(width=120).print(table)
    for name, c in compared.items():
        if "wins" in c:
            print(f"council vs {name}: {c['wins']} wins, {c['losses']} losses, McNemar p = {c['mcnemar_p']}")
        else:
            print(f"council vs {name}: expected {c['expected_wins']} wins, {c['expected_losses']} losses")


def markdown(arms: dict[str, Any], compared: dict[str, Any], title: str) -> str:
    """The table and the paired comparison as Markdown (for the README)."""
    lines = [
        f"**{title}**",
        "",
        "| arm | pass@1 | oracle | selection efficiency | LLM calls | tokens / problem | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in arms.items():
        if t is None:
            lines.append(f"| {name} | — | — | — | — | — | — |")
            continue
        eff = t.get("selection_efficiency")
        oracle = f"{t['oracle']:.3f}" if "oracle" in t else ""
        lines.append(
            f"| {name} | {t['pass@1']:.3f} | {oracle} | {'' if eff is None else f'{eff:.3f}'} | {t['llm_calls']} "
            f"| {t['tokens_per_problem']:.0f} | {t['wall_s']:.0f} |"
        )
    lines.append("")
    for name, c in compared.items():
        if "wins" in c:
            lines.append(f"- council vs {name}: {c['wins']} wins, {c['losses']} losses, McNemar p = {c['mcnemar_p']}")
        else:
            lines.append(f"- council vs {name}: expected {c['expected_wins']} wins, {c['expected_losses']} losses")
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
    return {
        "agents": args.agents,
        "rounds": args.rounds,
        "max_tokens": args.max_tokens,
        "model": model,
        "arms": list(args.arms),
        "shared_answers": args.share_answers,
    }


def load_rows(path: Path, settings: dict[str, Any]) -> dict[int, dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("settings") == settings:
                rows[row["index"]] = row
    return rows


# --- main -------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slice", choices=["dev", "holdout", "all"], default="dev")
    parser.add_argument("--limit", type=int, default=0, help="first K problems of the slice")
    parser.add_argument("--problems", default="", help="comma-separated HumanEval indices (overrides --slice)")
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
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
        "--report-only", action="store_true", help="write the JSON, table and plot from the finished rows, run nothing"
    )
    parser.add_argument(
        "--no-selected",
        dest="arms",
        action="store_const",
        const=("single", "sample", "council"),
        default=("single", "sample", "selected", "council"),
        help="skip the sample.selected arm (for a service without the rounds = 0 mode)",
    )
    parser.add_argument(
        "--no-shared-answers",
        dest="share_answers",
        action="store_false",
        help="send every arm's calls to the model, also identical seeded ones (by default the arms share those "
        "answers: the selected arm and the council start from the sample arm's very proposals)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = ROOT / "bench" / "results" / f"quality-{args.slice}.json"
    if args.vllm_url and not args.model:
        parser.error("--vllm-url needs --model (or VLLM_MODEL)")
    return args


async def main(args: argparse.Namespace) -> dict[str, Any]:
    indices = [int(i) for i in args.problems.split(",") if i.strip()] if args.problems else None
    problems = select(load_problems(), args.slice, args.limit, indices)
    rows_path = args.out.with_suffix(".rows.jsonl")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.report_only:  # the output from the rows an earlier (maybe still running) run wrote
        found = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
        wanted = {p.index for p in problems}
        rows = sorted((r for r in found if r["index"] in wanted), key=lambda r: r["index"])
        if not rows:
            raise SystemExit(f"no finished rows for these problems in {rows_path}")
        return report(rows, args, rows[0]["settings"])
    async with AsyncExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="quality-")))
        upstream, model = await start_model(stack, args)
        proxy = RecordingProxy(upstream, args.out.with_suffix(".prompts.jsonl"), share_answers=args.share_answers)
        if not args.resume:
            proxy.record.unlink(missing_ok=True)
            rows_path.unlink(missing_ok=True)
        settings = settings_of(args, model)
        done = load_rows(rows_path, settings)
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
            await run_all(Arms(client, llm, council, model, args), todo, rows_path, settings, args.concurrency)
            if args.share_answers:
                console.print(f"{proxy.shared} calls answered with an identical seeded request's answer")
    rows = [r for r in load_rows(rows_path, settings).values() if r["index"] in {p.index for p in problems}]
    rows.sort(key=lambda r: r["index"])
    return report(rows, args, settings)


async def run_all(arms: Arms, todo: list[Problem], rows_path: Path, settings: dict[str, Any], concurrency: int) -> None:
    gate = asyncio.Semaphore(max(1, concurrency))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("problems", total=len(todo))

        async def one(problem: Problem) -> None:
            async with gate:
                row = await run_problem(arms, problem)
            row["settings"] = settings
            with rows_path.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            progress.advance(bar)
            console.print(
                f"{problem.task_id}: single={int(row['single']['passed'])} "
                f"sample={row['sample']['random']:.2f} council={int(row['council']['passed'])} "
                f"(oracle {int(row['council']['oracle'])}, {row['council']['status']})"
            )

        await asyncio.gather(*(one(p) for p in todo))


def report(rows: list[dict[str, Any]], args: argparse.Namespace, settings: dict[str, Any]) -> dict[str, Any]:
    arms = totals(rows)
    compared = comparisons(rows)
    title = f"HumanEval {args.slice}: {len(rows)} problems, N={args.agents}, R={args.rounds}"
    result = {
        "benchmark": "quality",
        "slice": args.slice,
        "problems": [r["index"] for r in rows],
        "settings": settings,
        "git_commit": git_commit(),
        "command": "python bench/quality.py " + " ".join(sys.argv[1:]),
        "arms": arms,
        "council_vs": compared,
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if rows:
        print_table(arms, compared, title)
        plot(arms, args.out.with_suffix(".png"), title)
        args.out.with_suffix(".md").write_text(markdown(arms, compared, title))
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
