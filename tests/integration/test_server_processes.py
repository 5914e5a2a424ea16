"""The shared launcher of local servers (nats-server, FalkorDB): real processes, their log, readiness, stopping."""

from __future__ import annotations

import os
import sys

import pytest

from orchestrator.adapters.embedded.processes import ServerProcess, free_port, port_accepts
from orchestrator.domain.errors import DependencyUnavailableError


def test_a_server_is_ready_when_its_port_answers_and_stops_by_pid() -> None:
    port = free_port()
    server = ServerProcess("http")
    args = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    server.start(args, lambda: port_accepts(port), 20.0, "not accepting connections")
    pid = server.pid
    assert pid is not None and port_accepts(port)
    server.close()
    assert server.pid is None and not port_accepts(port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie
    assert not server.log_path.exists()  # a temporary log goes with it


def test_a_server_that_exits_says_so_with_its_output() -> None:
    server = ServerProcess("broken")
    args = [sys.executable, "-c", "import sys; print('bad flag --xyz', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(DependencyUnavailableError, match=r"exited with 3: bad flag --xyz"):
        server.start(args, lambda: False, 20.0, "never ready")
    server.close()


def test_a_server_that_never_gets_ready_is_stopped_and_named(tmp_path: object) -> None:
    server = ServerProcess("sleepy")
    args = [sys.executable, "-c", "import time; print('still loading', flush=True); time.sleep(60)"]
    with pytest.raises(DependencyUnavailableError, match=r"sleepy.*no handshake after 1.0s: still loading"):
        server.start(args, lambda: False, 1.0, "no handshake")
    assert server.pid is None
    server.close()
