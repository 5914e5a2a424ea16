"""Sandbox adapters: bubblewrap by default; an explicitly unsafe runner only when an operator asks for it."""

from __future__ import annotations

import structlog

from orchestrator.adapters.sandbox.bwrap import BwrapConfig, BwrapSandbox
from orchestrator.adapters.sandbox.unsandboxed import UnsandboxedRunner
from orchestrator.application.ports import Sandbox

__all__ = ["BwrapConfig", "BwrapSandbox", "UnsandboxedRunner", "open_sandbox"]

log = structlog.get_logger(__name__)


async def open_sandbox(*, allow_unsandboxed: bool = False, config: BwrapConfig | None = None) -> Sandbox:
    """Probes bubblewrap and returns it. Where it cannot work, it is returned all the same (its runs report
    *skipped*), unless `allow_unsandboxed` (UNSAFE_ALLOW_UNSANDBOXED_EXECUTION) asks for the unsafe runner."""
    sandbox = BwrapSandbox(config or BwrapConfig())
    availability = await sandbox.probe()
    if availability.available:
        log.info("sandbox available", backend=availability.backend, detail=availability.reason)
        return sandbox
    if not allow_unsandboxed:
        log.warning("sandbox unavailable: execution checks will be skipped", reason=availability.reason)
        return sandbox
    log.warning(
        "UNSAFE: no sandbox, and UNSAFE_ALLOW_UNSANDBOXED_EXECUTION is set: untrusted code will run unisolated "
        "with the service's file access and network",
        reason=availability.reason,
    )
    return UnsandboxedRunner(availability.reason)
