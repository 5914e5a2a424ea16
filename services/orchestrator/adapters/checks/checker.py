"""The Checker port on a worker thread: the checks run subprocesses (ruff, bash -n) and must not block the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from orchestrator.adapters.checks.proposal_checks import run_checks
from orchestrator.domain.model import CheckSuite


class ThreadedChecker:
    async def check(self, content: str, requirements: Sequence[str]) -> CheckSuite:
        return await asyncio.to_thread(run_checks, content, tuple(requirements))
