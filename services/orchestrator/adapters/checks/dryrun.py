"""Syntax-only validation ("dry run") of a proposal's YAML, JSON, shell and Dockerfile blocks.

YAML is loaded with `yaml.safe_load_all`, JSON with `json.loads`, shell is given to `bash -n` (parse only,
nothing runs; C locale, no startup files), and a Dockerfile must open with FROM or ARG and use known
instructions. Blocks are skipped, not failed, when they are empty, when YAML holds Helm/Jinja `{{ }}` or
`{% %}` templating (not YAML until rendered), when bash is missing, or past MAX_BLOCKS_PER_LANGUAGE blocks
of one language. In shell blocks `$ ` prompts are stripped (all lines of a `console` block that have none are
output and dropped) and `<placeholder>` words are read as plain words, since `bash -n` would take them for
redirections. A failure without a process of its own (YAML, JSON, Dockerfile) has exit code 1.

Shell and Dockerfile blocks that pass are handed on (`Validation.lint_inputs`) to the external linters
(linters.py: shellcheck, hadolint), shell as the text `bash -n` saw. A block that fails here is not linted: its
parse error is reported once, by the dry run. zsh blocks are not handed on (shellcheck has no zsh dialect).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import yaml

from orchestrator.adapters.checks.code_blocks import DOCKERFILE, JSON, SHELL, YAML, CodeBlock
from orchestrator.adapters.checks.linters import LintInput
from orchestrator.domain.model import DryRunResult
from orchestrator.domain.text import ellipsize

MAX_BLOCKS_PER_LANGUAGE = 10
BASH_TIMEOUT_S = 5.0
MAX_OUTPUT_CHARS = 2000

_DOCKER_INSTRUCTIONS_TEXT = """FROM RUN CMD LABEL MAINTAINER EXPOSE ENV ADD COPY ENTRYPOINT VOLUME USER WORKDIR ARG
ONBUILD STOPSIGNAL HEALTHCHECK SHELL"""
_DOCKER_INSTRUCTIONS = frozenset(_DOCKER_INSTRUCTIONS_TEXT.split())
_HEREDOC = re.compile(r"<<-?\s*[\"']?(\w+)")
_PLACEHOLDER = re.compile(r"(?<![<\w])<([A-Za-z_][\w.:/-]*(?:[ -][\w.:/-]+)*)>(?![>&])")


@dataclass(frozen=True)
class BlockOutcome:
    label: str
    ok: bool = True
    message: str = ""
    exit_code: int = 0
    skipped: str = ""
    """Why the block was not validated; "" when it was."""
    documents: tuple[object, ...] = ()
    """The parsed YAML documents."""
    lint: LintInput | None = None
    """What the external linters should see of a block that passed."""


@dataclass(frozen=True)
class Validation:
    dryrun: DryRunResult
    yaml_documents: tuple[tuple[str, object], ...]
    """("yaml block N doc M", document) for every parsed YAML document."""
    skipped: tuple[str, ...]
    validated: int = 0
    failed: int = 0
    lint_inputs: tuple[LintInput, ...] = ()
    """Shell and Dockerfile blocks that passed, for shellcheck and hadolint."""

    @property
    def parsed_fraction(self) -> float:
        """Blocks that parse / blocks validated; 1.0 when none was validated."""
        return (self.validated - self.failed) / self.validated if self.validated else 1.0


def validate_blocks(blocks: Sequence[CodeBlock]) -> Validation:
    outcomes: list[BlockOutcome] = []
    seen: dict[str, int] = {}
    for block in blocks:
        validator = _VALIDATORS.get(block.language)
        if validator is None:
            continue
        seen[block.language] = n = seen.get(block.language, 0) + 1
        label = f"{block.language} block {n}"
        if n > MAX_BLOCKS_PER_LANGUAGE:
            outcomes.append(BlockOutcome(label, skipped=f"limit of {MAX_BLOCKS_PER_LANGUAGE} blocks"))
        elif not block.code.strip():
            outcomes.append(BlockOutcome(label, skipped="empty"))
        else:
            outcomes.append(validator(label, block))
    documents = tuple(
        (f"{o.label} doc {m}", doc) for o in outcomes for m, doc in enumerate(o.documents, 1) if doc is not None
    )
    skipped = tuple(f"{o.label}: {o.skipped}" for o in outcomes if o.skipped)
    validated = [o for o in outcomes if not o.skipped]
    failed = sum(1 for o in validated if not o.ok)
    lint_inputs = tuple(o.lint for o in validated if o.ok and o.lint is not None)
    return Validation(_dryrun(validated), documents, skipped, len(validated), failed, lint_inputs)


def _dryrun(validated: list[BlockOutcome]) -> DryRunResult:
    if not validated:
        return DryRunResult(passed=True, message="no YAML, JSON, shell or Dockerfile blocks to validate")
    failed = [o for o in validated if not o.ok]
    output = "\n".join(f"{o.label}: {o.message if not o.ok else 'ok'}" for o in validated)
    output = ellipsize(output, MAX_OUTPUT_CHARS)
    return DryRunResult(
        passed=not failed,
        output=output,
        exit_code=failed[0].exit_code if failed else 0,
        message=f"{len(validated)} blocks validated: {len(validated) - len(failed)} ok, {len(failed)} failed",
    )


def _validate_yaml(label: str, block: CodeBlock) -> BlockOutcome:
    if "{{" in block.code or "{%" in block.code:
        return BlockOutcome(label, skipped="templated (Helm/Jinja), not YAML until rendered")
    try:
        documents = tuple(yaml.safe_load_all(block.code))
    except yaml.MarkedYAMLError as exc:
        line = f"line {exc.problem_mark.line + 1}: " if exc.problem_mark else ""
        return BlockOutcome(label, False, f"YAML error {line}{exc.problem or exc.context or exc}", 1)
    # Constructors raise plain errors too: an impossible date is a ValueError, deep nesting a RecursionError.
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        return BlockOutcome(label, False, f"YAML error: {exc}", 1)
    return BlockOutcome(label, documents=documents)


def _validate_json(label: str, block: CodeBlock) -> BlockOutcome:
    try:
        json.loads(block.code)
    except json.JSONDecodeError as exc:
        return BlockOutcome(label, False, f"JSON error line {exc.lineno} column {exc.colno}: {exc.msg}", 1)
    except (ValueError, RecursionError) as exc:
        return BlockOutcome(label, False, f"JSON error: {exc}", 1)
    return BlockOutcome(label)


def _validate_shell(label: str, block: CodeBlock) -> BlockOutcome:
    bash = shutil.which("bash")
    if bash is None:
        return BlockOutcome(label, skipped="bash not found")
    env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}
    script = _shell_script(block)
    try:
        proc = subprocess.run(
            [bash, "--norc", "--noprofile", "-n"],
            input=script,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=BASH_TIMEOUT_S,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return BlockOutcome(label, False, f"bash -n timed out after {BASH_TIMEOUT_S:g} s", 124)
    except OSError as exc:
        return BlockOutcome(label, skipped=f"bash could not run: {exc}")
    if proc.returncode == 0:
        return BlockOutcome(label, lint=None if block.tag == "zsh" else LintInput(label, SHELL, script))
    # bash names itself by its path in messages; "bash" keeps the output the same on every machine.
    stderr = proc.stderr.replace(f"{bash}:", "bash:").strip()
    message = " | ".join(stderr.splitlines()[:3]) or "syntax error"
    return BlockOutcome(label, False, f"bash -n exit {proc.returncode}: {message}", proc.returncode)


def _shell_script(block: CodeBlock) -> str:
    lines = block.code.splitlines()
    first = next((line.strip() for line in lines if line.strip()), "")
    if block.tag == "console" or first.startswith("$ "):
        lines = [line.strip()[2:] for line in lines if line.strip().startswith("$ ")]
    return _PLACEHOLDER.sub(lambda m: re.sub(r"\W", "_", m.group(1)), "\n".join(lines)) + "\n"


def _validate_dockerfile(label: str, block: CodeBlock) -> BlockOutcome:
    instructions = _docker_instructions(block.code)
    if not instructions:
        return BlockOutcome(label, skipped="no instructions")
    line, first = instructions[0]
    if first not in ("FROM", "ARG"):
        return BlockOutcome(label, False, f"line {line}: first instruction is {first}, not FROM (or ARG)", 1)
    unknown = [(n, word) for n, word in instructions if word not in _DOCKER_INSTRUCTIONS]
    if unknown:
        return BlockOutcome(label, False, f"line {unknown[0][0]}: unknown instruction {unknown[0][1]}", 1)
    return BlockOutcome(label, lint=LintInput(label, DOCKERFILE, block.code))


def _docker_instructions(code: str) -> list[tuple[int, str]]:
    """(line, keyword) of every instruction, skipping continuation lines, heredoc bodies and comments."""
    found: list[tuple[int, str]] = []
    continuing = False
    heredoc: str | None = None
    for number, raw in enumerate(code.splitlines(), 1):
        line = raw.strip()
        if heredoc is not None:
            heredoc = None if line == heredoc else heredoc
        elif continuing:
            # Blank and comment lines inside a continued instruction do not end it.
            continuing = line.endswith("\\") or not line or line.startswith("#")
        elif line and not line.startswith("#"):
            found.append((number, line.split()[0].upper()))
            continuing = line.endswith("\\")
            marker = _HEREDOC.search(line)
            heredoc = marker.group(1) if marker else None
    return found


_VALIDATORS: dict[str, Callable[[str, CodeBlock], BlockOutcome]] = {
    YAML: _validate_yaml,
    JSON: _validate_json,
    SHELL: _validate_shell,
    DOCKERFILE: _validate_dockerfile,
}
