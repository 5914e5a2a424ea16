"""The demo's Markdown report: each check's findings stand under that check."""

from __future__ import annotations

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.report import _checks


def test_lint_findings_follow_the_lint_line() -> None:
    result = pb.DeliberationResult(
        checks=pb.CheckSuite(
            policy=pb.PolicyResult(passed=True),
            lint=pb.LintResult(passed=False, error_count=1, errors=["python block 1 line 22: F821 Undefined name"]),
            dryrun=pb.DryRunResult(passed=True, message="no YAML, JSON, shell or Dockerfile blocks to validate"),
        )
    )
    lines = _checks(result)
    assert lines[1] == "- lint: FAILED (1 errors, 0 warnings)"
    assert lines[2] == "  - python block 1 line 22: F821 Undefined name"
    assert lines[3] == "- dry-run (YAML/JSON/shell): passed: no YAML, JSON, shell or Dockerfile blocks to validate"
