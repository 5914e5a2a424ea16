"""ClassEval tasks (a whole class, several methods, hidden unittest suites) and their judge for `bench/quality.py`.

The 42 dev tasks are in `bench/data/classeval-dev.jsonl` (ClassEval, FudanSELab, MIT licence: `bench/data/
ClassEval-LICENSE`; `bench/data/README.md` says how they were chosen). A task's `test` is the hidden unittest suite:
the judge runs it here, in the same sandboxed child as the HumanEval judge, and it is never shown to the service.
A candidate is judged by the TestCase classes it passes: the task is solved when it passes all of them.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from humaneval import JUDGE_TIMEOUT_S, Verdict, run_sandboxed

from orchestrator.adapters.checks.code_blocks import PYTHON, extract_code_blocks
from orchestrator.adapters.checks.execution import split_proposal

DATA = Path(__file__).resolve().parent / "data" / "classeval-dev.jsonl"
_RESULT = "CLASSEVAL-RESULT "


@dataclass(frozen=True)
class ClassTask:
    index: int
    task_id: str
    skeleton: str
    class_name: str
    imports: tuple[str, ...]
    test: str
    test_classes: tuple[str, ...]
    solution_code: str

    @property
    def name(self) -> str:
        """What the task asks to define (the class's name)."""
        return self.class_name

    def task_text(self) -> str:
        """What the service and the single-call arms are asked: the skeleton with its docstrings, nothing hidden."""
        return (
            f"Implement the Python class `{self.class_name}` below so that every method does what its docstring "
            "says. Answer with the complete class, including the imports it needs, in one ```python block.\n\n"
            f"```python\n{self.skeleton.rstrip()}\n```"
        )

    def plain_text(self) -> str:
        return (
            f"```python\n{self.skeleton.rstrip()}\n```\n\n"
            f"Complete the class `{self.class_name}`. Answer with the class in one ```python block."
        )

    def hidden_test_lines(self) -> list[str]:
        """Lines of the hidden suite distinctive enough that finding one in a prompt means it leaked: its TestCase
        class headers (ClassEval's own names) and its longer assertions."""
        lines = [line.strip() for line in self.test.splitlines()]
        headers = [line for line in lines if line.startswith("class ") and "TestCase" in line]
        asserts = [line for line in lines if line.startswith("self.assert") and len(line) >= 40]
        return headers + asserts


def load_tasks(path: Path = DATA) -> list[ClassTask]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        ClassTask(
            i,
            r["task_id"],
            r["skeleton"],
            r["class_name"],
            tuple(r["import_statement"]),
            r["test"],
            tuple(r["test_classes"]),
            r["solution_code"],
        )
        for i, r in enumerate(rows)
    ]


def select(
    tasks: list[ClassTask], slice_name: str, limit: int = 0, indices: list[int] | None = None
) -> list[ClassTask]:
    if slice_name != "dev" and indices is None:
        raise SystemExit("ClassEval has only its dev slice here (tasks 50 and above are held out and not copied)")
    chosen = [tasks[i] for i in indices] if indices else list(tasks)
    return chosen[:limit] if limit > 0 else chosen


_CLASS = re.compile(r"^\s*class\s+(\w+)\b", re.MULTILINE)


def extract_solution(content: str, class_name: str) -> str:
    """The code of a proposal to judge: the solution as the service separates it, when it defines the class; else
    the Python blocks up to the last one that defines it; else every Python block."""
    solution = split_proposal(content).solution
    if class_name in _CLASS.findall(solution):
        return solution
    blocks = [b.code for b in extract_code_blocks(content) if b.language in (PYTHON, "")]
    defining = [i for i, code in enumerate(blocks) if class_name in _CLASS.findall(code)]
    if defining:
        return "\n\n".join(blocks[: defining[-1] + 1])
    return "\n\n".join(blocks)


def reference_solution(task: ClassTask) -> str:
    return task.solution_code


def wrong_solution(task: ClassTask) -> str:
    """A candidate known to fail: the skeleton itself (every method returns None)."""
    return task.skeleton


_RUNNER = """
import json, sys, unittest
sys.path.insert(0, '.')
from solution import *
{test}

_passed = []
for _name in {classes!r}:
    _suite = unittest.defaultTestLoader.loadTestsFromTestCase(globals()[_name])
    _outcome = unittest.TextTestRunner(stream=open('/dev/null', 'w'), verbosity=0).run(_suite)
    if _outcome.wasSuccessful() and _outcome.testsRun > 0:
        _passed.append(_name)
print({marker!r} + json.dumps(_passed))
"""


def judge(task: ClassTask, solution: str, timeout_s: float = 2 * JUDGE_TIMEOUT_S) -> Verdict:
    """Runs the hidden suite against `solution` in the judge's sandbox; counts the TestCase classes passed."""
    total = len(task.test_classes)
    if not solution.strip():
        return Verdict(False, "no code", 0, total)
    with tempfile.TemporaryDirectory(prefix="classeval-") as work:
        Path(work, "solution.py").write_text("\n".join(task.imports) + f"\n\n{solution}\n", encoding="utf-8")
        runner = _RUNNER.format(test=task.test, classes=list(task.test_classes), marker=_RESULT)
        Path(work, "run_test.py").write_text(runner, encoding="utf-8")
        code, text = run_sandboxed(work, timeout_s)
    if code is None:
        return Verdict(False, f"timeout after {timeout_s:.0f}s", 0, total)
    found = [line for line in text.splitlines() if line.startswith(_RESULT)]
    if code != 0 or not found:
        return Verdict(False, f"exit {code}: {text[-512:].strip()}", 0, total)
    try:
        passed = {str(n) for n in json.loads(found[-1].removeprefix(_RESULT))} & set(task.test_classes)
    except ValueError:
        return Verdict(False, "malformed result line", 0, total)
    detail = "" if len(passed) == total else f"fails {', '.join(sorted(set(task.test_classes) - passed))}"
    return Verdict(len(passed) == total, detail[:300], len(passed), total)
