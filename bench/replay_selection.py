"""Replays the council's selection on the candidates a quality run recorded: no model call, only the sandbox.

A quality run's rows keep every candidate's text and whether it passed the hidden tests. This script pools the
candidates of chosen arms per problem (e.g. the greedy `single.plain` answer and `sample.budget`'s five samples),
runs them through the service's own verification (the task's examples, plus the probes a variant adds) and ranks
them with the service's own `rank_by_evidence`, then reports pass@1 of the winner, the pool's oracle and the
selection efficiency for each (pool, probes) variant, side by side, in one invocation. The designer's probes (a
model call) are not replayed: every variant here has the same handicap, so the variants compare with each other,
not with the recorded council.

    python bench/replay_selection.py --rows bench/results/quality-v3-dev.rows.jsonl \
        --pool selected --pool plain+budget --probes none --probes mutants

Dev slices only: choosing a protocol on the holdout's rows would tune on the holdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "services"), str(ROOT / "bench")]

from humaneval import SLICES, load_problems  # noqa: E402

from orchestrator.adapters.checks.checker import ThreadedChecker  # noqa: E402
from orchestrator.adapters.checks.execution import ExecutionVerifier  # noqa: E402
from orchestrator.adapters.sandbox import open_sandbox  # noqa: E402
from orchestrator.application.protocol import verification  # noqa: E402
from orchestrator.domain.evidence import example_mutants  # noqa: E402
from orchestrator.domain.model import Proposal, Role, TaskSpec  # noqa: E402
from orchestrator.domain.ranking import rank_by_evidence  # noqa: E402

ARMS = {"plain": "single_plain", "selected": "selected", "budget": "budget", "council": "council"}
PROBES = ("none", "mutants")


def pool_of(row: dict[str, Any], pool: str) -> dict[str, tuple[str, bool]]:
    """author id -> (text, passed the hidden tests), for the arms named `a+b+...`. The greedy answer is named so
    that it sorts first where every other key ties (the ranking's last key is the author id)."""
    found: dict[str, tuple[str, bool]] = {}
    for part in pool.split("+"):
        arm = row.get(ARMS[part]) or {}
        for i, c in enumerate(arm.get("candidates") or []):
            author = "a0-greedy" if part == "plain" else f"{part}-{i}"
            found[author] = (str(c.get("content", "")), bool(c.get("passed")))
    return found


def probes_for(task: TaskSpec, variant: str) -> tuple[str, ...]:
    if variant == "none":
        return ()
    spec = verification.spec_of(task)
    return tuple(example_mutants(spec.units, spec.names))


async def replay(rows: Sequence[dict[str, Any]], pools: Sequence[str], variants: Sequence[str]) -> dict[str, Any]:
    problems = {p.index: p for p in load_problems()}
    sandbox = await open_sandbox()
    verifier, checker = ExecutionVerifier(sandbox), ThreadedChecker(sandbox)
    results: dict[str, list[dict[str, Any]]] = {f"{p}/{v}": [] for p in pools for v in variants}
    for n, row in enumerate(rows, 1):
        problem = problems[row["index"]]
        task = TaskSpec(f"humaneval-{problem.index}", problem.task_text(), Role.DEV, 0, 3)
        for pool in pools:
            candidates = pool_of(row, pool)
            if not candidates:
                continue
            proposals = {a: Proposal(a, Role.DEV, text, 0) for a, (text, _) in candidates.items()}
            for variant in variants:
                probes = probes_for(task, variant)
                checks, evidence = await verification.verify(
                    task, proposals, 0, checker=checker, verifier=verifier, probes=probes
                )
                ranked = rank_by_evidence(
                    list(proposals.values()),
                    checks,
                    (),
                    evidence=evidence,
                    spec=verification.spec_of(task, probes),
                )
                winner = ranked[0].proposal.author_id
                results[f"{pool}/{variant}"].append(
                    {
                        "index": problem.index,
                        "winner": winner,
                        "passed": candidates[winner][1],
                        "oracle": any(ok for _, ok in candidates.values()),
                        "probes": len(probes),
                        "reason": ranked[0].rank_reason,
                    }
                )
        print(f"{n}/{len(rows)} {problem.task_id}", file=sys.stderr, flush=True)
    await verifier.aclose()
    return results


def summary(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| pool / probes | problems | pass@1 | oracle | sel. eff. | mean probes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, found in results.items():
        if not found:
            continue
        passed = sum(r["passed"] for r in found)
        oracle = sum(r["oracle"] for r in found)
        eff = passed / oracle if oracle else 0.0
        probes = sum(r["probes"] for r in found) / len(found)
        rate, reach = passed / len(found), oracle / len(found)
        lines.append(f"| {name} | {len(found)} | {rate:.3f} | {reach:.3f} | {eff:.3f} | {probes:.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=Path, required=True, help="a quality run's rows (.rows.jsonl), HumanEval")
    parser.add_argument("--pool", action="append", default=[], help="arms pooled, e.g. plain+budget (repeatable)")
    parser.add_argument("--probes", action="append", choices=PROBES, default=[], help="probe variants (repeatable)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N rows")
    parser.add_argument("--out", type=Path, help="write every variant's per-problem winners here (JSON)")
    args = parser.parse_args(argv)
    pools = args.pool or ["selected", "plain+budget"]
    for pool in pools:
        if not pool or any(part not in ARMS for part in pool.split("+")):
            parser.error(f"--pool {pool!r}: arms are {', '.join(ARMS)}, joined with +")
    rows = [json.loads(line) for line in args.rows.read_text(encoding="utf-8").splitlines() if line.strip()]
    dev = set(SLICES["dev"])
    if any(r["index"] not in dev for r in rows):
        parser.error("these rows hold problems outside the dev slice: selection is tuned on dev only")
    rows.sort(key=lambda r: r["index"])
    if args.limit:
        rows = rows[: args.limit]
    results = asyncio.run(replay(rows, pools, args.probes or list(PROBES)))
    print(summary(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
