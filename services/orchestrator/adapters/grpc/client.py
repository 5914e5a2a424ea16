"""A small client over the generated stubs, shared by the CLI and scripts/setup_all_councils.py."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.domain.model import Role

__all__ = ["SetupOutcome", "channel", "pb", "setup_councils", "stub"]


@dataclass(frozen=True)
class SetupOutcome:
    role: str
    created: bool
    detail: str


def channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address)


def stub(ch: grpc.Channel) -> pb_grpc.OrchestratorServiceStub:
    return pb_grpc.OrchestratorServiceStub(ch)  # type: ignore[no-untyped-call]


def setup_councils(
    address: str,
    num_agents: int = 0,
    rounds: int = 0,
    roles: Iterable[str] = tuple(Role),
    timeout_s: float = 60.0,
) -> list[SetupOutcome]:
    """Creates a council per role; an existing council counts as success. Other errors raise grpc.RpcError."""
    outcomes = []
    with channel(address) as ch:
        client = stub(ch)
        for role in roles:
            request = pb.CreateCouncilRequest(
                role=role,
                num_agents=num_agents,
                config=pb.CouncilConfig(deliberation_rounds=rounds, enable_peer_review=True, agent_type="RAY_VLLM"),
            )
            try:
                response = client.CreateCouncil(request, timeout=timeout_s)
            except grpc.RpcError as exc:
                if exc.code() is not grpc.StatusCode.ALREADY_EXISTS:
                    raise
                outcomes.append(SetupOutcome(role, False, "already exists"))
                continue
            outcomes.append(SetupOutcome(role, True, f"{response.council_id}: {', '.join(response.agent_ids)}"))
    return outcomes
