#!/usr/bin/env python3
"""Create a council for each role (DEV, QA, ARCHITECT, DEVOPS, DATA) on a running orchestrator.

An existing council counts as success, so running it twice is safe. Same code path as
`orchestrator councils setup`.
"""

from __future__ import annotations

import argparse
import sys

import grpc

from orchestrator.adapters.grpc.client import setup_councils


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="localhost:50055", help="orchestrator gRPC address")
    parser.add_argument("--num-agents", type=int, default=3, help="agents per council (1-10)")
    parser.add_argument("--rounds", type=int, default=1, help="default critique/revise rounds (0-5)")
    args = parser.parse_args(argv)
    try:
        outcomes = setup_councils(args.address, args.num_agents, args.rounds)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    for outcome in outcomes:
        print(f"{outcome.role:<10} {'created' if outcome.created else 'exists '}  {outcome.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
