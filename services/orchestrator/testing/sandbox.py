"""A Sandbox for tests that never executes anything: it answers scripted Executions and records each call."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator.domain.execution import Execution, ExecutionOutcome, SandboxAvailability, SandboxLimits


@dataclass(frozen=True)
class SandboxCall:
    files: dict[str, str | bytes]
    command: tuple[str, ...]
    limits: SandboxLimits


PASSED = Execution(ExecutionOutcome.EXITED, exit_code=0)


@dataclass
class FakeSandbox:
    """Scripted answers: `respond(call)` when given, else the next of `executions`, else `default`. When
    `available` is False every run is skipped, as the real adapters do without a sandbox."""

    executions: list[Execution] = field(default_factory=list)
    respond: Callable[[SandboxCall], Execution] | None = None
    default: Execution = PASSED
    available: bool = True
    unavailable_reason: str = "fake sandbox switched off"
    calls: list[SandboxCall] = field(default_factory=list)

    async def run(self, files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits) -> Execution:
        call = SandboxCall(dict(files), tuple(command), limits)
        self.calls.append(call)
        if not self.available:
            return Execution.skip(self.unavailable_reason)
        if self.respond is not None:
            return self.respond(call)
        return self.executions.pop(0) if self.executions else self.default

    async def probe(self) -> SandboxAvailability:
        return self.availability()

    def availability(self) -> SandboxAvailability:
        if self.available:
            return SandboxAvailability(True, "fake")
        return SandboxAvailability(False, "fake", self.unavailable_reason)
