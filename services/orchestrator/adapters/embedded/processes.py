"""What every local server launcher needs, once: a free port, starting a process with its output in a log file,
waiting until it is ready (or has died), and stopping it by PID with a timeout.

Used by `nats_server` (the embedded stack and the tests), `testing/falkordb` (the Bolt server of the tests) and,
for the readiness wait, `llm_server` (llama.cpp runs in-process, so it has no process of its own to start).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.domain.errors import DependencyUnavailableError


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free now (another process may still take it before it is bound)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_accepts(port: int, host: str = "127.0.0.1", timeout_s: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
        return True
    return False


def wait_until(
    ready: Callable[[], bool], timeout_s: float, *, died: Callable[[], bool] = bool, poll_s: float = 0.05
) -> bool:
    """Polls `ready` until it holds (True) or `timeout_s` passes (False); stops early, False, once `died()`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if died():
            return False
        if ready():
            return True
        time.sleep(poll_s)
    return False


def stop_process(proc: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`; always reaped, never left a zombie."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)


class ServerProcess:
    """One server binary: started with stdout and stderr appended to `log_path` (a temporary file when not
    given, removed by `close()`), ready when `ready()` holds, stopped by PID. Errors name `name` and end with the
    log's tail, so a server that refuses to start says why."""

    def __init__(self, name: str, log_path: Path | None = None) -> None:
        self.name = name
        self._own_log = log_path is None
        if log_path is None:
            fd, path = tempfile.mkstemp(prefix=f"orchestrator-{name}-", suffix=".log")
            os.close(fd)  # the file stays; the process opens it by path
            log_path = Path(path)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, args: list[str], ready: Callable[[], bool], timeout_s: float, not_ready: str) -> None:
        """Starts `args`; raises DependencyUnavailableError if it exits, or is not ready within `timeout_s`
        ("<name>: <not_ready> after <timeout_s>s: <log tail>")."""
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        proc = self._proc
        if wait_until(ready, timeout_s, died=lambda: proc.poll() is not None):
            return
        if proc.poll() is not None:
            self._proc = None
            raise DependencyUnavailableError(self.name, f"exited with {proc.returncode}: {self.log_tail()}")
        self.stop()
        raise DependencyUnavailableError(self.name, f"{not_ready} after {timeout_s}s: {self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, timeout_s)

    def close(self) -> None:
        """Stops it and removes a temporary log."""
        self.stop()
        if self._own_log:
            self.log_path.unlink(missing_ok=True)

    def log_tail(self, chars: int = 800) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:].strip()
        return ""
