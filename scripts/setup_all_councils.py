#!/usr/bin/env python3
"""Create a council for each role (DEV, QA, ARCHITECT, DEVOPS, DATA) on a running orchestrator.

An existing council counts as success, so running it twice is safe. A thin call of `orchestrator councils setup`
(the same function, the same flags: --address, --token, --tls-ca, --tls-cert, --tls-key, --num-agents, --rounds),
with 3 agents and 1 round unless told otherwise. ORCHESTRATOR_ADDRESS, ORCHESTRATOR_TOKEN and ORCHESTRATOR_TLS_CA (or
the flags) reach a service that asks for a token or serves TLS; ORCHESTRATOR_TLS_CERT and ORCHESTRATOR_TLS_KEY add a
client certificate (mutual TLS).
"""

from __future__ import annotations

import sys

from orchestrator.entrypoints.cli import app

DEFAULTS = ["--num-agents", "3", "--rounds", "1"]
"""Given before the caller's flags, so a flag the caller gives wins (the last value of an option counts)."""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        app(["councils", "setup", *DEFAULTS, *args], prog_name="setup_all_councils.py")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
