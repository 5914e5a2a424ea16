"""The Checker port: the in-process checks on a worker thread (they run subprocesses, ruff and `bash -n`, and must
not block the loop), the external linters (shellcheck, hadolint) in the sandbox, then one CheckSuite. The checks
are deterministic in the proposal's text and the requirements, so a text checked before is not checked again
(proposals of the same text in one stage, a revision that changed nothing) while its suite is kept."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from orchestrator.adapters.checks.kept import Kept
from orchestrator.adapters.checks.linters import SandboxedLinters
from orchestrator.adapters.checks.proposal_checks import assemble, inspect_proposal
from orchestrator.application.ports import Sandbox
from orchestrator.domain.model import CheckSuite

MAX_SUITES_KEPT = 256


class ThreadedChecker:
    """Checks proposals. Without a `sandbox` (or where it cannot run anything) the external linters are reported
    as skipped, not passed; the in-process checks run all the same. The last `kept` suites are kept by (text,
    requirements), except where a linter was skipped or failed to run (that may go otherwise next time)."""

    def __init__(self, sandbox: Sandbox | None = None, kept: int = MAX_SUITES_KEPT) -> None:
        self._linters = SandboxedLinters(sandbox)
        self._kept: Kept[tuple[str, tuple[str, ...]], CheckSuite] = Kept(kept)

    def clear(self) -> None:
        """Forgets the kept suites."""
        self._kept.clear()

    async def check(self, content: str, requirements: Sequence[str]) -> CheckSuite:
        key = (content, tuple(requirements))
        if (suite := self._kept.get(key)) is not None:
            return suite
        inspection = await asyncio.to_thread(inspect_proposal, content, key[1])
        reports = await self._linters.lint(inspection.lint_inputs)
        suite = assemble(inspection, reports)
        if all(not r.skipped and not r.failed for r in reports):
            self._kept.put(key, suite)
        return suite
