"""Running untrusted code: the limits a run gets, what came of it, and whether a sandbox exists at all."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from orchestrator.domain.errors import InvalidArgumentError

MIB = 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    """What one run may use. Defaults fit a Python solution plus its tests; every bound is enforced by the kernel
    (rlimits, tmpfs sizes) or by the supervisor (wall time, output), never by the code under test."""

    cpu_seconds: float = 10.0
    """CPU time of each process (RLIMIT_CPU); past it the process gets SIGXCPU."""
    wall_seconds: float = 20.0
    """Wall-clock deadline of the whole run; past it every process of the run is killed."""
    memory_bytes: int = 512 * MIB
    """Address space of each process (RLIMIT_AS): Python raises MemoryError, native code fails to map."""
    max_processes: int = 64
    """Processes and threads the run may have at once (RLIMIT_NPROC within its own user namespace)."""
    max_file_bytes: int = 16 * MIB
    """Largest file the run may write (RLIMIT_FSIZE)."""
    max_output_bytes: int = 64 * 1024
    """Bytes kept of stdout and of stderr each; a run that writes more is killed and marked truncated."""
    work_dir_bytes: int = 64 * MIB
    """Size of the run's writable tmpfs directories (/work, /tmp, /dev/shm) each."""
    total_memory_bytes: int | None = None
    """Memory of all the run's processes together (a cgroup of its own, or per-run accounting); None = the
    sandbox's configured bound (SANDBOX_RUN_MEMORY_MB)."""

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "wall_seconds", "memory_bytes", "max_processes", "max_file_bytes"):
            if getattr(self, name) <= 0:
                raise InvalidArgumentError(f"limits.{name}", "must be positive")
        if self.total_memory_bytes is not None and self.total_memory_bytes <= 0:
            raise InvalidArgumentError("limits.total_memory_bytes", "must be positive")
        if self.max_output_bytes < 0 or self.work_dir_bytes <= 0:
            raise InvalidArgumentError("limits", "output and work dir sizes must not be negative")


class ExecutionOutcome(StrEnum):
    """How a run ended."""

    EXITED = "exited"
    """The command ended on its own; `exit_code` says how."""
    KILLED = "killed"
    """A signal ended it (`killed_by_signal`), e.g. a crash or the hard CPU limit."""
    TIMED_OUT = "timed_out"
    """It passed the wall deadline or its CPU time and was killed."""
    OUTPUT_LIMIT = "output_limit"
    """It wrote more than `max_output_bytes` and was killed."""
    SKIPPED = "skipped"
    """Nothing ran: no sandbox could be created (`detail` says why)."""


@dataclass(frozen=True)
class Execution:
    """What one sandboxed run did. Output is decoded as UTF-8 (invalid bytes replaced) and cut at the limit."""

    outcome: ExecutionOutcome
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    killed_by_signal: int | None = None
    wall_ms: float = 0.0
    detail: str = ""
    """Why it was skipped, or which limit ended it."""
    peak_memory_bytes: int | None = None
    """The most memory the run's processes held together, where the sandbox measures it (its cgroup, or the
    accounting's samples); None when unknown."""

    @property
    def passed(self) -> bool:
        """It ran to its end and exited 0."""
        return self.outcome is ExecutionOutcome.EXITED and self.exit_code == 0

    @property
    def timed_out(self) -> bool:
        return self.outcome is ExecutionOutcome.TIMED_OUT

    @property
    def skipped(self) -> bool:
        return self.outcome is ExecutionOutcome.SKIPPED

    @property
    def truncated(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated

    @classmethod
    def skip(cls, reason: str) -> Execution:
        return cls(ExecutionOutcome.SKIPPED, detail=reason)


@dataclass(frozen=True)
class SandboxAvailability:
    """Whether code can be run safely here, and why not when it cannot. `unsafe` marks the operator's explicit
    choice to run code without isolation (UNSAFE_ALLOW_UNSANDBOXED_EXECUTION)."""

    available: bool
    backend: str
    reason: str = ""
    unsafe: bool = False

    @property
    def summary(self) -> str:
        if self.unsafe:
            return f"UNSAFE: code runs without a sandbox ({self.reason})"
        if self.available:
            return f"available ({self.backend})"
        return (
            f"NOT EXECUTED: no working sandbox ({self.backend}: {self.reason}); proposals' code is not run, "
            "execution checks are skipped"
        )
