"""The committed protobuf code must be what `make protos` generates from the committed .proto."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("orchestrator_pb2.py", "orchestrator_pb2.pyi", "orchestrator_pb2_grpc.py")


def test_generated_code_matches_the_proto(tmp_path: Path) -> None:
    protoc = pytest.importorskip("grpc_tools.protoc")
    args = [
        "protoc",
        f"-I{ROOT / 'protos'}",
        f"--python_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        f"--pyi_out={tmp_path}",
        str(ROOT / "protos/fleet/orchestrator/v1/orchestrator.proto"),
    ]
    assert protoc.main(args) == 0
    for name in GENERATED:
        fresh = (tmp_path / "fleet/orchestrator/v1" / name).read_text()
        committed = (ROOT / "services/fleet/orchestrator/v1" / name).read_text()
        assert fresh == committed, f"{name} is stale: run `make protos` and commit the result"


def test_kept_messages_keep_their_field_numbers() -> None:
    from fleet.orchestrator.v1 import orchestrator_pb2 as pb

    kept = {
        "DeliberateRequest": {
            "task_id": 1,
            "task_description": 2,
            "role": 3,
            "constraints": 4,
            "rounds": 5,
            "num_agents": 6,
        },
        "CreateCouncilRequest": {"role": 1, "num_agents": 2, "config": 3},
        "CouncilConfig": {
            "deliberation_rounds": 1,
            "enable_peer_review": 2,
            "model_profile": 3,
            "custom_params": 4,
            "agent_type": 5,
        },
        "DeliberationResult": {"proposal": 1, "checks": 2, "score": 3, "rank": 4},
        "GetDeliberationResultResponse": {
            "task_id": 1,
            "status": 2,
            "results": 3,
            "winner_id": 4,
            "duration_ms": 5,
            "error_message": 6,
            "metadata": 7,
        },
    }
    for message, fields in kept.items():
        descriptor = pb.DESCRIPTOR.message_types_by_name[message]
        assert {f.name: f.number for f in descriptor.fields if f.name in fields} == fields
    assert pb.DeliberationStatus.Value("DELIBERATION_STATUS_CANCELLED") == 6
