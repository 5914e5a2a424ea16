"""`orchestrator serve` as a subprocess, talking to the session's fake LLM over loopback."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.testing.fake_llm import FakeLLMServer

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServeProcess:
    """One `orchestrator serve`; `restart()` stops it (SIGTERM or SIGKILL) and starts it on the same store."""

    env: dict[str, str]
    log_path: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    args: tuple[str, ...] = ("serve",)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> None:
        # Port 0: the service binds any free port and logs it, so no port picked here can be taken meanwhile.
        env = {**self.env, "GRPC_PORT": "0", "GRPC_HOST": "127.0.0.1"}
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", *self.args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        self._wait_serving(timeout_s)

    def _bound_port(self) -> int:
        text = self.log_path.read_bytes()[self._log_offset :].decode(errors="replace")
        for line in text.splitlines():
            if '"grpc_listening"' in line:
                return int(json.loads(line)["port"])
        return 0

    def _wait_serving(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not (port := self._bound_port()):
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start ({self.proc.returncode}):\n{self.log_tail()}")
            time.sleep(0.2)
        self.port = port
        with self.channel() as ch:
            health = health_pb2_grpc.HealthStub(ch)
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.3)
        raise TimeoutError(f"serve not SERVING after {timeout_s}s:\n{self.log_tail()}")

    def channel(self) -> grpc.Channel:
        """A channel to the service, the start-up health check's included (TLS servers override it)."""
        return grpc.insecure_channel(self.address)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise
        return self.proc.returncode

    def restart(self, sig: signal.Signals = signal.SIGTERM) -> int:
        code = self.stop(sig)
        self.start()
        return code

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def serve_env(fake_llm: FakeLLMServer, work: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "VLLM_URL": fake_llm.base_url,
        "VLLM_MODEL": "fake-llm",
        "VLLM_MAX_RETRIES": "2",
        "VLLM_TIMEOUT": "10",
        "STORE_URL": f"sqlite:///{work}/orchestrator.db",
        "LOG_FORMAT": "json",
        "RAY_ADDRESS": "",
        "SHUTDOWN_GRACE": "5",
        # Runs of a killed process are taken over once their leases run out: seconds here, not the default 30.
        "LEASE_TTL": "6",
        **extra,
    }


@contextlib.contextmanager
def serving(
    llm: FakeLLMServer,
    work: Path,
    *,
    councils: Mapping[str, pb.CouncilConfig | None] | None = None,
    start_timeout_s: float = 90.0,
    **extra: str,
) -> Iterator[ServeProcess]:
    """`orchestrator serve` on `llm` with `serve_env(llm, work, **extra)`, logging to work/serve.log, with a council
    of 3 agents for each role in `councils` (with its config, if one is given); SIGTERM at the end."""
    process = ServeProcess(serve_env(llm, work, **extra), work / "serve.log")
    process.start(timeout_s=start_timeout_s)
    try:
        if councils:  # TLS servers' channel() speaks TLS
            with process.channel() as channel:
                stub = pb_grpc.OrchestratorServiceStub(channel)
                for role, config in councils.items():
                    stub.CreateCouncil(pb.CreateCouncilRequest(role=role, num_agents=3, config=config), timeout=120)
        yield process
    finally:
        process.stop(signal.SIGTERM)


@pytest.fixture(scope="module")
def serve(fake_llm_server: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serving(fake_llm_server, tmp_path_factory.mktemp("serve")) as process:
        yield process
