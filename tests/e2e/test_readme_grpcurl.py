"""The README's plaintext grpcurl examples, run as written against `orchestrator serve` (TLS: test_serve_security)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.conftest import ServeProcess
from tests.e2e.grpc_security import SERVICE, readme_grpcurl_commands, run_grpcurl

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]


def test_readme_plaintext_grpcurl_examples_run_as_written(serve: ServeProcess, tmp_path: Path) -> None:
    commands = [c for c in readme_grpcurl_commands() if "-plaintext" in c]
    assert len(commands) >= 3, commands
    outputs = []
    for command in commands:
        done = run_grpcurl(command, serve.port, tmp_path, dict(os.environ))
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    assert SERVICE.full_name in outputs[0]
    deliberated = json.loads(outputs[-1])
    winner = deliberated.get("winnerId") or deliberated.get("winner_id")
    assert winner and deliberated["results"], outputs[-1][:2000]
