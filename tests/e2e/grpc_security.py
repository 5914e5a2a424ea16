"""Helpers of the security tests: TLS channels, calling any RPC of the service by name, the README's grpcurl."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from tests.certs import Authority, Pem
from tests.e2e.conftest import ROOT, ServeProcess

SERVICE = pb.DESCRIPTOR.services_by_name["OrchestratorService"]
README = ROOT / "README.md"
# A fresh subchannel per channel: a connection made before a certificate rotation must not be reused after it.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


def tls_channel(address: str, ca: bytes, client: Pem | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(ca, client.key if client else None, client.cert if client else None)
    return grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS)


def health_status(channel: grpc.Channel, timeout_s: float = 5.0) -> grpc.StatusCode:
    """OK when the handshake and the health call succeed, else the code the client saw."""
    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def call_rpc(channel: grpc.Channel, name: str, token: str | None, request: bytes = b"") -> tuple[grpc.StatusCode, str]:
    """Calls RPC `name` with raw request bytes (empty = the default message); (code, details)."""
    method = SERVICE.methods_by_name[name]
    path = f"/{SERVICE.full_name}/{name}"
    try:
        if method.server_streaming:
            for _ in channel.unary_stream(path)(request, metadata=bearer(token), timeout=30):
                break
        else:
            channel.unary_unary(path)(request, metadata=bearer(token), timeout=30)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


@dataclass
class TlsServe(ServeProcess):
    """`orchestrator serve` with TLS: clients trust `ca` (replaced when the test rotates the certificate)."""

    ca: Authority = field(default_factory=lambda: Authority("unused"))
    client: Pem | None = None

    def channel(self) -> grpc.Channel:
        return tls_channel(self.address, self.ca.pem, self.client)


def readme_grpcurl_commands() -> list[str]:
    """Every `grpcurl` command line of the README's bash blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("grpcurl "):
                commands.append(re.sub(r"\s+", " ", line.strip()))
    return commands


def run_grpcurl(command: str, port: int, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Runs a README command as written, only pointed at the test's port, with the venv's grpcurl on PATH."""
    assert "localhost:50055" in command, command
    bin_dir = str(Path(sys.executable).parent)
    env = {**env, "PATH": f"{bin_dir}:{env.get('PATH', '')}"}
    return subprocess.run(
        ["bash", "-c", command.replace("localhost:50055", f"localhost:{port}")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
