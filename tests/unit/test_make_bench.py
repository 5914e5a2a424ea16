"""`make bench` runs every benchmark of the README's `make bench` row, the web view's included, each writing the
results file the README cites."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench_recipe() -> list[str]:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = lines.index("bench: install") + 1
    recipe = []
    for line in lines[start:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_make_bench_runs_the_deliberation_concurrency_and_web_benchmarks() -> None:
    scripts = [re.search(r"bench/(\w+)\.py --out bench/results/(\w+)\.json", line) for line in bench_recipe()]
    assert all(scripts), bench_recipe()
    runs = {m.group(1): m.group(2) for m in scripts if m}
    assert runs == {"deliberation": "deliberation", "concurrency": "concurrency", "web": "web"}
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `make bench` |"))
    for script, results in runs.items():
        assert f"`bench/{script}.py`" in row
        assert (ROOT / "bench" / "results" / f"{results}.json").is_file()


def test_the_web_benchmark_takes_the_out_option_make_passes() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "web.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "--out" in done.stdout, done.stderr
