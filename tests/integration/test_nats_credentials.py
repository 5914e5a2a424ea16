"""A NATS URL with a password never reaches a log line or an error message (issue 13)."""

from __future__ import annotations

import socket

import pytest
from structlog.testing import capture_logs

from orchestrator.adapters.embedded.nats_server import NatsServer
from orchestrator.adapters.nats.jetstream import JetStreamBus, NatsConfig
from orchestrator.domain.errors import DependencyUnavailableError

pytestmark = pytest.mark.integration


def with_password(url: str) -> str:
    return url.replace("nats://", "nats://alice:s3cr3t@", 1)


async def test_the_connected_line_shows_the_url_without_its_password(nats_server: NatsServer) -> None:
    bus = JetStreamBus(NatsConfig(with_password(nats_server.url)))
    with capture_logs() as logs:
        await bus.connect()
    await bus.close()
    connected = next(entry for entry in logs if entry["event"] == "nats_connected")
    assert "s3cr3t" not in str(logs)
    assert connected["url"] == nats_server.url.replace("nats://", "nats://***@", 1)


async def test_a_failed_connection_names_the_server_but_not_the_password() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bus = JetStreamBus(NatsConfig(f"nats://alice:s3cr3t@127.0.0.1:{port}", connect_timeout_s=0.5))
    with pytest.raises(DependencyUnavailableError) as info:
        await bus.connect()
    assert "s3cr3t" not in str(info.value)
    assert f"127.0.0.1:{port}" in str(info.value)
