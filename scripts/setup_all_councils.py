#!/usr/bin/env python3
"""Create a council for each role (DEV, QA, ARCHITECT, DEVOPS, DATA) on a running orchestrator.

An existing council counts as success, so running it twice is safe. Same code path as
`orchestrator councils setup`. ORCHESTRATOR_TOKEN and ORCHESTRATOR_TLS_CA (or the flags) reach a service that asks for
a token or serves TLS; ORCHESTRATOR_TLS_CERT and ORCHESTRATOR_TLS_KEY add a client certificate (mutual TLS).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from orchestrator.adapters.grpc.client import Connection, OrchestratorError, setup_councils


def _path(value: str) -> Path | None:
    return Path(value) if value else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env = os.environ.get
    parser.add_argument("--address", default=env("ORCHESTRATOR_ADDRESS", "localhost:50055"), help="gRPC address")
    parser.add_argument("--token", default=env("ORCHESTRATOR_TOKEN", ""), help="bearer token (ORCHESTRATOR_TOKEN)")
    parser.add_argument("--tls-ca", default=env("ORCHESTRATOR_TLS_CA", ""), help="PEM CA file: use TLS")
    parser.add_argument("--tls-cert", default=env("ORCHESTRATOR_TLS_CERT", ""), help="PEM client certificate (mTLS)")
    parser.add_argument("--tls-key", default=env("ORCHESTRATOR_TLS_KEY", ""), help="PEM client key (mTLS)")
    parser.add_argument("--num-agents", type=int, default=3, help="agents per council (1-10)")
    parser.add_argument("--rounds", type=int, default=1, help="default critique/revise rounds (0-5)")
    args = parser.parse_args(argv)
    connection = Connection(args.address, args.token, _path(args.tls_ca), _path(args.tls_cert), _path(args.tls_key))
    try:
        outcomes = setup_councils(connection, args.num_agents, args.rounds)
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for outcome in outcomes:
        print(f"{outcome.role:<10} {'created' if outcome.created else 'exists '}  {outcome.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
