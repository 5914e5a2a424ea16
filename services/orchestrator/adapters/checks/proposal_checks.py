"""Deterministic checks of one proposal's markdown text: `run_checks(content, requirements) -> CheckSuite`.

Only the first MAX_CONTENT_CHARS characters are considered. The fenced code blocks are extracted
(code_blocks.py) and then:
- policy: rules over the whole text, credentials and dangerous practices (policy.py);
- lint: Python blocks, ast.parse then ruff's E9/F rules, errors vs warnings as in python_lint.py;
- dryrun: YAML, JSON, shell (`bash -n`) and Dockerfile blocks, parse only, nothing runs (dryrun.py);
- additional, in this order:
  - "requirements": coverage of the task's requirements (below);
  - "k8s_schema": only when a YAML document is a Kubernetes manifest (manifests.py);
  - "code_blocks": informational, always passes and takes no part in the score: 1.0 when the text has a
    fenced block, 0.5 when it is prose only; details count the blocks per language and list the skipped.

Requirement coverage. Words are lowercased runs of letters and digits; stop words and words under 3
characters are dropped; the rest are stemmed naively (-ies to -y, then one of -ing, -ed, -es, -s, then a
final -e and a doubled last letter). A requirement is covered when at least half of its distinct keywords
appear among the proposal's stemmed words (one with no keyword counts as covered). score = covered / total,
passed when every requirement is covered; no requirements: passed, score 1.0.

Score, in [0, 1], rounded to 4 decimals:
    score = clamp(0.35 P + 0.30 L + 0.15 D + 0.20 R - 0.10 (1 - K), 0, 1)
    P = max(0, 1 - 0.5 * policy violations)
    L = 1 with no Python block, else max(0, 1 - 0.25 * lint errors - min(0.2, 0.05 * lint warnings))
    D = 1 with no block validated, else blocks that parse / blocks validated
    R = requirements score
    K = k8s_schema score, 1 without manifests
Nothing to lint or validate earns full L and D: a test plan or a design may rightly be prose, and what tells
proposals apart then is requirement coverage (and the peers' scores). all_passed = policy, lint and dryrun
passed and every additional check passed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from orchestrator.adapters.checks.code_blocks import PYTHON, CodeBlock, extract_code_blocks
from orchestrator.adapters.checks.dryrun import validate_blocks
from orchestrator.adapters.checks.manifests import check_manifests
from orchestrator.adapters.checks.policy import check_policy
from orchestrator.adapters.checks.python_lint import lint_python
from orchestrator.domain.model import CheckResult, CheckSuite, LintResult

__all__ = ["CodeBlock", "extract_code_blocks", "requirement_coverage", "run_checks"]

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


def run_checks(content: str, requirements: Sequence[str] = ()) -> CheckSuite:
    truncated = len(content) > MAX_CONTENT_CHARS
    text = content[:MAX_CONTENT_CHARS]
    blocks = extract_code_blocks(text)
    python = lint_python([b.code for b in blocks if b.language == PYTHON])
    validation = validate_blocks(blocks)
    policy = check_policy(text, [doc for _, doc in validation.yaml_documents])
    manifests = check_manifests(validation.yaml_documents)
    summary = _blocks_summary(blocks, python.linter, python.skipped + validation.skipped, truncated)
    coverage = requirement_coverage(text, requirements)
    additional = (coverage, *((manifests,) if manifests is not None else ()), summary)
    score = (
        0.35 * max(0.0, 1 - 0.5 * len(policy.violations))
        + 0.30 * _lint_points(python.result, any(b.language == PYTHON for b in blocks))
        + 0.15 * validation.parsed_fraction
        + 0.20 * coverage.score
        - 0.10 * (1 - (manifests.score if manifests is not None else 1.0))
    )
    return CheckSuite(
        policy=policy,
        lint=python.result,
        dryrun=validation.dryrun,
        additional=additional,
        all_passed=policy.passed
        and python.result.passed
        and validation.dryrun.passed
        and all(c.passed for c in additional),
        score=round(min(1.0, max(0.0, score)), 4),
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
    flat = " ".join(requirement.split())
    key = flat if len(flat) <= REQUIREMENT_KEY_CHARS else flat[: REQUIREMENT_KEY_CHARS - 1] + "…"
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


def _lint_points(lint: LintResult, has_python: bool) -> float:
    if not has_python:
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
