"""Lint of a proposal's Python blocks: `ast.parse`, then ruff's pyflakes rules (E9, F) on each block.

Severity. Errors are findings that stop the code from running, or make the line concerned raise: syntax errors
(ast's SyntaxError, ruff's E9 and invalid-syntax), undefined names (F821-F823), misplaced statements (F7xx,
F404, F406, F407, F621, F622, F633), malformed %-format / str.format calls (F50x, F52x, except the
unused-argument ones F504, F522, F523) and `raise NotImplemented` (F901). Every other F-code (unused imports
and variables, redefinitions, star imports, f-strings without placeholders...) is a warning.

Blocks are snippets of one proposal, so a name bound in any of its Python blocks counts as defined in all of
them (passed to ruff as extra builtins): a later block may use what an earlier one defined. Interactive
`>>>` sessions are reduced to their input lines first.

At most MAX_PYTHON_BLOCKS blocks are linted, one ruff process each (a few milliseconds). When ruff cannot be
run, a stdlib fallback reports syntax errors and, leniently, names that are read but bound nowhere in the
proposal.
"""

from __future__ import annotations

import ast
import builtins
import functools
import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.domain.model import LintResult
from orchestrator.domain.python_names import bound_names

MAX_PYTHON_BLOCKS = 10
RUFF_TIMEOUT_S = 10.0
MAX_LISTED_FINDINGS = 50
_MAX_SHARED_NAMES = 500

_ERROR_CODES = frozenset(
    {"F404", "F406", "F407", "F621", "F622", "F633", "F821", "F822", "F823", "F901"}
    | {f"F50{n}" for n in (1, 2, 3, 5, 6, 7, 8, 9)}
    | {"F521", "F524", "F525"}
)
_IMPLICIT_NAMES = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__", "__builtins__"}


@dataclass(frozen=True)
class Finding:
    block: int
    """1-based ordinal among the proposal's Python blocks."""
    line: int
    code: str
    message: str
    error: bool

    def __str__(self) -> str:
        suffix = "" if self.error else " (warning)"
        return f"python block {self.block} line {self.line}: {self.code} {self.message}{suffix}"


@dataclass(frozen=True)
class PythonLint:
    result: LintResult
    linter: str
    """"ruff", "stdlib-fallback", or "" when there was nothing to lint."""
    skipped: tuple[str, ...] = ()


def lint_python(sources: Sequence[str]) -> PythonLint:
    """Lints each source (the code of one Python block, in order of appearance)."""
    skipped = tuple(
        f"python block {n}: not linted (limit of {MAX_PYTHON_BLOCKS} blocks)"
        for n in range(MAX_PYTHON_BLOCKS + 1, len(sources) + 1)
    )
    codes = [_strip_prompts(source) for source in sources[:MAX_PYTHON_BLOCKS]]
    trees = [_parse(code) for code in codes]
    shared = set().union(*(bound_names(t) for t in trees if isinstance(t, ast.Module)))
    findings: list[Finding] = []
    linters: set[str] = set()
    for n, (code, tree) in enumerate(zip(codes, trees, strict=True), 1):
        if isinstance(tree, Finding):
            findings.append(replace(tree, block=n))
            continue
        found = _ruff(n, code, shared)
        linters.add("stdlib-fallback" if found is None else "ruff")
        findings.extend(_fallback(n, tree, shared) if found is None else found)
    return PythonLint(_result(findings), "+".join(sorted(linters)), skipped)


def _result(findings: list[Finding]) -> LintResult:
    ordered = sorted(findings, key=lambda f: (f.block, f.line, f.code, f.message))
    errors = sum(1 for f in ordered if f.error)
    return LintResult(
        passed=errors == 0,
        error_count=errors,
        warning_count=len(ordered) - errors,
        errors=tuple(str(f) for f in ordered[:MAX_LISTED_FINDINGS]),
    )


def _strip_prompts(code: str) -> str:
    lines = code.splitlines()
    if not any(line.startswith(">>>") for line in lines):
        return code
    kept = [line[4:] for line in lines if line.startswith((">>> ", "... ")) or line in (">>>", "...")]
    return "\n".join(kept) + "\n"


def _parse(code: str) -> ast.Module | Finding:
    try:
        # Snippets often hold "\d"-style escapes; their SyntaxWarning is no finding and must not escape.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(code)
    except SyntaxError as exc:
        return Finding(0, exc.lineno or 1, "SyntaxError", exc.msg, True)
    except (ValueError, RecursionError, MemoryError) as exc:
        return Finding(0, 1, "SyntaxError", type(exc).__name__, True)


@functools.cache
def _ruff_command() -> tuple[str, ...]:
    # The binary next to the interpreter (a virtualenv's) spares `python -m ruff`'s ~50 ms interpreter start.
    sibling = Path(sys.executable).parent / "ruff"
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return (str(sibling),)
    on_path = shutil.which("ruff")
    return (on_path,) if on_path else (sys.executable, "-m", "ruff")


def _ruff(block: int, code: str, shared: set[str]) -> list[Finding] | None:
    """Ruff's findings on one block; None when ruff could not be run or answered nonsense."""
    minor = min(max(sys.version_info.minor, 8), 13)
    args = ["check", "--output-format=json", "--no-cache", "--isolated", "--select", "E9,F"]
    args += ["--target-version", f"py3{minor}", "--stdin-filename", "block.py"]
    if shared:
        args += ["--config", f"builtins = {json.dumps(sorted(shared)[:_MAX_SHARED_NAMES])}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUFF_")}
    try:
        proc = subprocess.run(
            [*_ruff_command(), *args, "-"],
            input=code,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=RUFF_TIMEOUT_S,
            check=False,
            env=env,
        )
        report = json.loads(proc.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if not isinstance(report, list):
        return None
    return [_ruff_finding(block, item) for item in report if isinstance(item, dict)]


def _ruff_finding(block: int, item: dict[str, object]) -> Finding:
    code = item.get("code")
    code = code if isinstance(code, str) and code else "invalid-syntax"
    location = item.get("location")
    line = location.get("row") if isinstance(location, dict) else None
    error = code in _ERROR_CODES or code.startswith(("E9", "F7", "invalid"))
    return Finding(block, line if isinstance(line, int) else 1, code, str(item.get("message", "")), error)


def _fallback(block: int, tree: ast.Module, shared: set[str]) -> list[Finding]:
    if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in ast.walk(tree)):
        return []  # a star import may bind anything
    known = shared | bound_names(tree) | _IMPLICIT_NAMES
    findings: dict[str, Finding] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in known:
            first = findings.get(node.id)
            if first is None or node.lineno < first.line:
                findings[node.id] = Finding(block, node.lineno, "F821", f"Undefined name `{node.id}`", True)
    return list(findings.values())
