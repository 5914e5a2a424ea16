"""For tests that need the real sandbox: in CI (CI set to anything but empty/0/false) a missing sandbox fails the
test run, so CI cannot stay green with the core feature off; elsewhere the test is skipped, saying why."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def sandbox_missing(reason: str) -> NoReturn:
    """Skips the test, or fails it in CI, because no sandbox works here (`reason`: the probe's answer)."""
    if in_ci():
        pytest.fail(f"CI requires the sandbox, and it does not work here: {reason}", pytrace=False)
    pytest.skip(f"no sandbox on this host: {reason}")
