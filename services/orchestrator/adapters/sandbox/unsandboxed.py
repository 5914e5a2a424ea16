"""UNSAFE: runs code as a plain child process, for hosts where no sandbox can be created and an operator set
UNSAFE_ALLOW_UNSANDBOXED_EXECUTION=true. The code can read every file the service can, reach the network, and
leave daemons behind; only the CPU, memory and file-size limits, the wall deadline (its process group is
killed), the output cap, a cleared environment and a temporary working directory remain. There is no process
limit: outside a user namespace RLIMIT_NPROC would count the service's own threads too.
Never use it where proposals come from anyone but yourself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from orchestrator.adapters.sandbox.process import exit_code, supervise, to_execution
from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.execution import Execution, SandboxAvailability, SandboxLimits

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


class UnsandboxedRunner:
    """Sandbox port without isolation; `availability()` says so in its `unsafe` flag."""

    def __init__(self, why_no_sandbox: str) -> None:
        self._availability = SandboxAvailability(True, "unsandboxed", why_no_sandbox, unsafe=True)

    def availability(self) -> SandboxAvailability:
        return self._availability

    async def probe(self) -> SandboxAvailability:
        return self._availability

    async def run(self, files: Mapping[str, str | bytes], command: Sequence[str], limits: SandboxLimits) -> Execution:
        if not command:
            raise InvalidArgumentError("command", "must not be empty")
        work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="orchestrator-unsandboxed-"))
        try:
            await asyncio.to_thread(_write_files, work, files)
            proc = await asyncio.create_subprocess_exec(
                *command,
                cwd=work,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={"PATH": DEFAULT_PATH, "HOME": str(work), "LANG": "C.UTF-8"},
                start_new_session=True,
                preexec_fn=lambda: _set_limits(limits),
            )
            try:
                result = await supervise(proc, limits, lambda: _kill_group(proc))
            finally:
                if proc.returncode is None:
                    os.killpg(proc.pid, signal.SIGKILL)
            return to_execution(result, limits)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)


def _write_files(work: Path, files: Mapping[str, str | bytes]) -> None:
    for name, content in files.items():
        path = PurePosixPath(name)
        if not name or path.is_absolute() or ".." in path.parts:
            raise InvalidArgumentError("files", f"{name!r} is not a relative path inside the work dir")
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)


def _set_limits(limits: SandboxLimits) -> None:
    cpu = max(1, int(limits.cpu_seconds + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await exit_code(proc)
