"""The grpc.aio server: the orchestrator service, grpc.health.v1 and reflection, bound by create_server."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.grpc.servicer import OrchestratorServicer
from orchestrator.application.service import Orchestrator
from orchestrator.domain.errors import DependencyUnavailableError

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["OrchestratorService"].full_name
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class Health:
    """Serving status for the overall server ("") and the orchestrator service."""

    def __init__(self) -> None:
        self.servicer = HealthServicer()

    async def set(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            await self.servicer.set(name, status)


@dataclass
class GrpcServer:
    server: grpc.aio.Server
    port: int
    health: Health
    servicer: OrchestratorServicer


def create_server(app: Orchestrator | None = None, host: str = "127.0.0.1", port: int = 0) -> GrpcServer:
    """Builds the server and binds its port (0 = any free port) at once; `servicer.attach(app)` may come later,
    before `server.start()`."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
    )
    servicer = OrchestratorServicer(app)
    pb_grpc.add_OrchestratorServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    health_state = Health()
    health_pb2_grpc.add_HealthServicer_to_server(health_state.servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:
        raise DependencyUnavailableError("grpc", f"cannot bind {host}:{port}: is the port in use?") from exc
    return GrpcServer(server, bound, health_state, servicer)
