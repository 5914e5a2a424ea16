"""Deterministic checks of one proposal's markdown text, in two parts: `inspect_proposal(content, requirements)`
runs everything that works in-process, `assemble(inspection, tool_reports)` adds what the external linters
(linters.py: shellcheck and hadolint, run in the sandbox by the checker) found and scores the whole.
`run_checks(content, requirements)` is both without the external linters.

Only the first MAX_CONTENT_CHARS characters are considered. The fenced code blocks are extracted
(code_blocks.py) and then:
- policy: rules over the whole text, credentials and dangerous practices (policy.py);
- lint: Python blocks, ast.parse then ruff's E9/F rules, errors vs warnings as in python_lint.py; plus, when the
  linters ran, shellcheck's findings on shell blocks and hadolint's on Dockerfiles (SCxxxx / DLxxxx codes with
  their block and line, severity as in linters.py);
- dryrun: YAML, JSON, shell (`bash -n`) and Dockerfile blocks, parse only, nothing runs (dryrun.py);
- additional, in this order:
  - "requirements": coverage of the task's requirements (below);
  - "k8s_schema": only when a YAML document is a Kubernetes manifest (manifests.py);
  - "kubernetes-validate": the same manifests against the Kubernetes API schemas (manifests.py);
  - "shellcheck", "hadolint": one per linter that had blocks to lint, with its findings per block, or
    *skipped* (not passed) when there was no sandbox to run it in (linters.py);
  - "code_blocks": informational, always passes and takes no part in the score: 1.0 when the text has a
    fenced block, 0.5 when it is prose only; details count the blocks per language and list the skipped.

Requirement coverage. Words are lowercased runs of letters and digits; stop words and words under 3
characters are dropped; the rest are stemmed naively (-ies to -y, then one of -ing, -ed, -es, -s, then a
final -e and a doubled last letter). A requirement is covered when at least half of its distinct keywords
appear among the proposal's stemmed words (one with no keyword counts as covered). score = covered / total,
passed when every requirement is covered; no requirements: passed, score 1.0.

Score, in [0, 1], rounded to 4 decimals:
    score = clamp(0.35 P + 0.30 L + 0.15 D + 0.20 R - 0.10 (1 - K) - 0.10 (1 - V), 0, 1)
    P = max(0, 1 - 0.5 * policy violations)
    L = 1 with no linted block, else max(0, 1 - 0.25 * lint errors - min(0.2, 0.05 * lint warnings)), over the
        Python blocks and the shell and Dockerfile blocks a linter checked (a skipped linter adds nothing)
    D = 1 with no block validated, else blocks that parse / blocks validated
    R = requirements score
    K = k8s_schema score, 1 without manifests
    V = kubernetes-validate score, 1 without manifests
Nothing to lint or validate earns full L and D: a test plan or a design may rightly be prose, and what tells
proposals apart then is requirement coverage (and the peers' scores). A linter that could not run costs
nothing in the score, since every proposal of the run is in the same position, but its check is not passed.
all_passed = policy, lint and dryrun passed and every additional check passed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.adapters.checks.code_blocks import PYTHON, CodeBlock, extract_code_blocks
from orchestrator.adapters.checks.dryrun import Validation, validate_blocks
from orchestrator.adapters.checks.linters import LintInput, ToolReport
from orchestrator.adapters.checks.manifests import check_manifests, validate_manifests
from orchestrator.adapters.checks.policy import check_policy
from orchestrator.adapters.checks.python_lint import MAX_LISTED_FINDINGS, PythonLint, lint_python
from orchestrator.domain.model import CheckResult, CheckSuite, LintResult, PolicyResult
from orchestrator.domain.text import flat_ellipsize

__all__ = [
    "CodeBlock",
    "Inspection",
    "assemble",
    "extract_code_blocks",
    "inspect_proposal",
    "requirement_coverage",
    "run_checks",
]

MAX_CONTENT_CHARS = 200_000
REQUIREMENT_KEY_CHARS = 80
COVERAGE_THRESHOLD = 0.5

_STOP_WORDS_TEXT = """about above after again against all also and any are because been before being below between
    both but can could did does doing down during each either else ensure etc few for from further had has have having
    her here hers him his how into its itself just like make may might more most must not now off once only
    other our ours out over own per same shall she should so some such than that the their theirs them
    then there these they this those through too under until upon use used using very via was way well were
    what when where which while who whom why will with within without would yet you your yours"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Inspection:
    """The in-process checks of one proposal, waiting for the external linters' reports."""

    blocks: tuple[CodeBlock, ...]
    python: PythonLint
    validation: Validation
    policy: PolicyResult
    coverage: CheckResult
    manifests: CheckResult | None
    schemas: CheckResult | None
    summary: CheckResult

    @property
    def lint_inputs(self) -> tuple[LintInput, ...]:
        """The shell and Dockerfile blocks for shellcheck and hadolint."""
        return self.validation.lint_inputs


def run_checks(content: str, requirements: Sequence[str] = ()) -> CheckSuite:
    """The in-process checks only (no external linter, no sandbox)."""
    return assemble(inspect_proposal(content, requirements), ())


def inspect_proposal(content: str, requirements: Sequence[str] = ()) -> Inspection:
    truncated = len(content) > MAX_CONTENT_CHARS
    text = content[:MAX_CONTENT_CHARS]
    blocks = extract_code_blocks(text)
    python = lint_python([b.code for b in blocks if b.language == PYTHON])
    validation = validate_blocks(blocks)
    return Inspection(
        blocks=tuple(blocks),
        python=python,
        validation=validation,
        policy=check_policy(text, [doc for _, doc in validation.yaml_documents], blocks),
        coverage=requirement_coverage(text, requirements),
        manifests=check_manifests(validation.yaml_documents),
        schemas=validate_manifests(validation.yaml_documents),
        summary=_blocks_summary(blocks, python.linter, python.skipped + validation.skipped, truncated),
    )


def assemble(inspection: Inspection, tool_reports: Sequence[ToolReport]) -> CheckSuite:
    """The suite and its score (module docstring) from the in-process checks and the linters' reports."""
    i = inspection
    lint = _lint(i.python.result, tool_reports)
    linted = any(b.language == PYTHON for b in i.blocks) or any(r.completed for r in tool_reports)
    additional = (
        i.coverage,
        *(c for c in (i.manifests, i.schemas) if c is not None),
        *(r.check_result() for r in tool_reports),
        i.summary,
    )
    score = (
        0.35 * max(0.0, 1 - 0.5 * len(i.policy.violations))
        + 0.30 * _lint_points(lint, linted)
        + 0.15 * i.validation.parsed_fraction
        + 0.20 * i.coverage.score
        - 0.10 * (1 - (i.manifests.score if i.manifests is not None else 1.0))
        - 0.10 * (1 - (i.schemas.score if i.schemas is not None else 1.0))
    )
    return CheckSuite(
        policy=i.policy,
        lint=lint,
        dryrun=i.validation.dryrun,
        additional=additional,
        all_passed=i.policy.passed and lint.passed and i.validation.dryrun.passed and all(c.passed for c in additional),
        score=round(min(1.0, max(0.0, score)), 4),
    )


def _lint(python: LintResult, tool_reports: Sequence[ToolReport]) -> LintResult:
    """Python's lint with the linters' findings after it (the listed ones capped as python_lint caps them)."""
    findings = [f for r in tool_reports if r.completed for f in r.findings]
    if not findings:
        return python
    errors = python.error_count + sum(1 for f in findings if f.error)
    listed = (*python.errors, *(str(f) for f in findings))[:MAX_LISTED_FINDINGS]
    return LintResult(
        passed=errors == 0,
        error_count=errors,
        warning_count=python.warning_count + sum(1 for f in findings if not f.error),
        errors=listed,
    )


def requirement_coverage(content: str, requirements: Sequence[str]) -> CheckResult:
    if not requirements:
        return CheckResult("requirements", passed=True, score=1.0, message="no requirements given")
    words = _keywords(content)
    details: dict[str, str] = {}
    covered = 0
    for requirement in requirements:
        keywords = _keywords(requirement)
        hit = not keywords or len(keywords & words) >= COVERAGE_THRESHOLD * len(keywords)
        covered += hit
        details[_detail_key(requirement, details)] = "covered" if hit else "missing"
    total = len(requirements)
    return CheckResult(
        "requirements",
        passed=covered == total,
        score=round(covered / total, 4),
        message=f"{covered}/{total} requirements covered",
        details=details,
    )


def _detail_key(requirement: str, taken: dict[str, str]) -> str:
    key = flat_ellipsize(requirement, REQUIREMENT_KEY_CHARS)
    n = 1
    unique = key
    while unique in taken:
        n += 1
        unique = f"{key} ({n})"
    return unique


def _keywords(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in _STOP_WORDS}


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) >= 6 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) >= 5 and word.endswith(("ed", "es")):
        word = word[:-2]
    elif len(word) >= 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    # "cache", "caches", "cached" and "caching" must meet, as must "stop" and "stopped".
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 4 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]
    return word


def _lint_points(lint: LintResult, linted: bool) -> float:
    if not linted:
        return 1.0
    return max(0.0, 1 - 0.25 * lint.error_count - min(0.2, 0.05 * lint.warning_count))


def _blocks_summary(blocks: Sequence[CodeBlock], linter: str, skipped: Sequence[str], truncated: bool) -> CheckResult:
    counts = Counter(b.language or "untagged" for b in blocks)
    details = {**{lang: str(n) for lang, n in sorted(counts.items())}, "total": str(len(blocks))}
    if linter:
        details["python_linter"] = linter
    if skipped:
        details["skipped"] = "; ".join(skipped)
    if truncated:
        details["content_truncated"] = f"only the first {MAX_CONTENT_CHARS} characters were checked"
    return CheckResult(
        "code_blocks",
        passed=True,
        score=1.0 if blocks else 0.5,
        message=f"{len(blocks)} fenced code blocks" if blocks else "no fenced code blocks",
        details=details,
    )
