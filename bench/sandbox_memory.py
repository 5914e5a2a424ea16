"""Peak memory of sandbox runs on HumanEval's canonical solutions: the figure the per-run memory bound
(SANDBOX_RUN_MEMORY_MB) is chosen against, so that no problem is lost to it.

For each problem of the slice, two kinds of run through the service's own sandbox (BwrapSandbox, default
config): the execution checks as the service runs them (ExecutionVerifier on the problem's task text, whose
docstring examples become units, with the canonical solution as the proposal), and one run of the problem's
hidden test against the canonical solution (`check(entry_point)`), which exercises every test case. Each run's
peak is what the sandbox measured: its cgroup's maximum usage where there is one, else the accounting's samples
of resident memory. Writes bench/results/sandbox-memory-<slice>.json.

    .venv/bin/python bench/sandbox_memory.py --slice dev
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from humaneval import SLICES, Problem, canonical_solution, load_problems, select

from orchestrator.adapters.checks.execution import RUN_LIMITS, ExecutionVerifier
from orchestrator.adapters.sandbox.bwrap import BwrapConfig, BwrapSandbox
from orchestrator.domain.evidence import specification
from orchestrator.domain.execution import Execution

MIB = 1024 * 1024
RESULTS = Path(__file__).parent / "results"


class Recording:
    """The sandbox, with every run's Execution kept."""

    def __init__(self, inner: BwrapSandbox) -> None:
        self.inner = inner
        self.runs: list[Execution] = []

    def availability(self):  # type: ignore[no-untyped-def]
        return self.inner.availability()

    async def probe(self):  # type: ignore[no-untyped-def]
        return await self.inner.probe()

    async def run(self, files, command, limits):  # type: ignore[no-untyped-def]
        execution = await self.inner.run(files, command, limits)
        self.runs.append(execution)
        return execution


async def measure(problems: list[Problem], use_cgroups: bool) -> dict[str, object]:
    sandbox = BwrapSandbox(BwrapConfig(use_cgroups=use_cgroups))
    availability = await sandbox.probe()
    if not availability.available:
        raise SystemExit(f"no sandbox here: {availability.reason}")
    recording = Recording(sandbox)
    verifier = ExecutionVerifier(recording)
    rows = []
    for problem in problems:
        solution = canonical_solution(problem)
        recording.runs.clear()
        spec = specification(problem.task_text(), "", "")
        await verifier.verify(spec, {"canonical": f"```python\n{solution}\n```"}, 0)
        checks = [r.peak_memory_bytes or 0 for r in recording.runs]
        hidden = f"{solution}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"
        judged = await sandbox.run({"judge.py": hidden}, ["python3", "-I", "-S", "judge.py"], RUN_LIMITS)
        rows.append(
            {
                "index": problem.index,
                "verifier_runs": len(checks),
                "verifier_peak_mib": round(max(checks, default=0) / MIB, 2),
                "hidden_test_passed": judged.passed,
                "hidden_test_peak_mib": round((judged.peak_memory_bytes or 0) / MIB, 2),
                "hidden_test_detail": judged.detail,
            }
        )
    peaks = [max(float(str(r["verifier_peak_mib"])), float(str(r["hidden_test_peak_mib"]))) for r in rows]
    return {
        "bound_mib": BwrapConfig().run_memory_bytes // MIB,
        "how": sandbox.describe(),
        "problems": len(rows),
        "hidden_tests_passed": sum(1 for r in rows if r["hidden_test_passed"]),
        "max_peak_mib": max(peaks, default=0),
        "median_peak_mib": sorted(peaks)[len(peaks) // 2] if peaks else 0,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slice", choices=sorted(SLICES), default="dev")
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    problems = select(load_problems(), args.slice, args.limit)
    started = time.monotonic()
    report = {
        "slice": args.slice,
        "cgroup": asyncio.run(measure(problems, use_cgroups=True)),
        "accounting": asyncio.run(measure(problems, use_cgroups=False)),
        "seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"sandbox-memory-{args.slice}.json").write_text(json.dumps(report, indent=1) + "\n")
    for mode in ("cgroup", "accounting"):
        part = report[mode]
        assert isinstance(part, dict)
        print(
            f"{mode}: {part['problems']} problems, hidden tests passed {part['hidden_tests_passed']}, "
            f"peak max {part['max_peak_mib']} MiB, median {part['median_peak_mib']} MiB, bound {part['bound_mib']} MiB"
            f" ({part['how']})"
        )


if __name__ == "__main__":
    main()
