"""The Checker port: the in-process checks on a worker thread (they run subprocesses, ruff and `bash -n`, and must
not block the loop), the external linters (shellcheck, hadolint) in the sandbox, then one CheckSuite."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from orchestrator.adapters.checks.linters import SandboxedLinters
from orchestrator.adapters.checks.proposal_checks import assemble, inspect_proposal
from orchestrator.application.ports import Sandbox
from orchestrator.domain.model import CheckSuite


class ThreadedChecker:
    """Checks proposals. Without a `sandbox` (or where it cannot run anything) the external linters are reported
    as skipped, not passed; the in-process checks run all the same."""

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self._linters = SandboxedLinters(sandbox)

    async def check(self, content: str, requirements: Sequence[str]) -> CheckSuite:
        inspection = await asyncio.to_thread(inspect_proposal, content, tuple(requirements))
        reports = await self._linters.lint(inspection.lint_inputs)
        return assemble(inspection, reports)
