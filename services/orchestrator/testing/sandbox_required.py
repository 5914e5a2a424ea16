"""For tests that need the real sandbox: in CI (CI set to anything but empty/0/false) a missing sandbox fails the
test run, so CI cannot stay green with the core feature off; elsewhere the test is skipped, saying why. The
sandbox's own tests (evidence, forgery, warm runs) take `working_sandbox()`, which fails wherever none works."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import NoReturn

import pytest

from orchestrator.adapters.sandbox import BwrapSandbox
from orchestrator.application.ports import Sandbox
from orchestrator.domain.execution import Execution, SandboxAvailability, SandboxLimits


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def sandbox_missing(reason: str) -> NoReturn:
    """Skips the test, or fails it in CI, because no sandbox works here (`reason`: the probe's answer)."""
    if in_ci():
        pytest.fail(f"CI requires the sandbox, and it does not work here: {reason}", pytrace=False)
    pytest.skip(f"no sandbox on this host: {reason}")


async def working_sandbox() -> BwrapSandbox:
    """A bubblewrap sandbox whose start-up probe ran a unit end to end; fails the test where none works."""
    sandbox = BwrapSandbox()
    availability = await sandbox.probe()
    if not availability.available:
        pytest.fail(f"bubblewrap must work here: {availability.reason}")
    return sandbox


class CountingSandbox:
    """A sandbox counting the runs it was given; it cannot start runs ahead of their job (as on Ray)."""

    def __init__(self, inner: Sandbox) -> None:
        self._inner = inner
        self.runs = 0

    async def run(self, files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits) -> Execution:
        self.runs += 1
        return await self._inner.run(files, command, limits)

    async def probe(self) -> SandboxAvailability:
        return await self._inner.probe()

    def availability(self) -> SandboxAvailability:
        return self._inner.availability()
