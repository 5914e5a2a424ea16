"""The client side of the gRPC boundary, shared by the CLI, `monitor`, `demo` and scripts/setup_all_councils.py.

Typed methods over the generated stub: requests are built here from plain values, small answers come back as frozen
dataclasses, and the rich read models (a deliberation's ranked results, the service status, a plan, watch updates)
as their typed protobuf messages, which is what the service reports (rebuilding domain objects from them would
mean inventing what the wire leaves out). Every `grpc.RpcError` becomes one `OrchestratorError` whose text is a
single line a user can act on.

Security (issue 15, client side): a bearer token goes out as `authorization: Bearer <token>` metadata on every call;
a CA file makes the channel TLS, and a client certificate and key make it mutual TLS.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias, TypeVar

import grpc

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.grpc.mapping import PB_TO_STATUS, status_name, stop_code_name
from orchestrator.domain.model import DeliberationStatus, Role

__all__ = [
    "Connection",
    "CouncilCreated",
    "CouncilDeleted",
    "CouncilView",
    "DeliberationOutcome",
    "DeliberationSpec",
    "OrchestratorClient",
    "OrchestratorError",
    "SetupOutcome",
    "StatusChange",
    "setup_councils",
    "status_name",
    "stop_code_name",
]

DEFAULT_ADDRESS = "localhost:50055"

Outcome: TypeAlias = pb.DeliberateResponse
Result: TypeAlias = pb.GetDeliberationResultResponse
DeliberationOutcome: TypeAlias = pb.DeliberateResponse | pb.GetDeliberationResultResponse
"""What `deliberate` and `result` return: the ranked results with their evidence, checks and usage."""
RankedResult: TypeAlias = pb.DeliberationResult
Evidence: TypeAlias = pb.ProposalEvidence
Checks: TypeAlias = pb.CheckSuite
ServiceStatus: TypeAlias = pb.GetStatusResponse
DeliberationList: TypeAlias = pb.ListDeliberationsResponse
DeliberationListItem: TypeAlias = pb.DeliberationSummary
Plan: TypeAlias = pb.GetPlanResponse
PlanSubtask: TypeAlias = pb.PlanSubtaskInfo
Update: TypeAlias = pb.DeliberationUpdate


class OrchestratorError(Exception):
    """A call the service refused or could not take, as one line; `code` is None when no call was made."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Connection:
    """Where the service is and how to reach it. Empty token and no CA: plaintext without credentials."""

    address: str = DEFAULT_ADDRESS
    token: str = field(default="", repr=False)
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @classmethod
    def from_env(cls, address: str = "", env: Mapping[str, str] = os.environ) -> Connection:
        """From ORCHESTRATOR_ADDRESS, _TOKEN, _TLS_CA, _TLS_CERT and _TLS_KEY."""

        def path(name: str) -> Path | None:
            return Path(env[name]) if env.get(name) else None

        return cls(
            address=address or env.get("ORCHESTRATOR_ADDRESS") or DEFAULT_ADDRESS,
            token=env.get("ORCHESTRATOR_TOKEN", ""),
            tls_ca=path("ORCHESTRATOR_TLS_CA"),
            tls_cert=path("ORCHESTRATOR_TLS_CERT"),
            tls_key=path("ORCHESTRATOR_TLS_KEY"),
        )

    @property
    def tls(self) -> bool:
        return bool(self.tls_ca or self.tls_cert)

    def channel(self) -> grpc.Channel:
        if not self.tls:
            return grpc.insecure_channel(self.address)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise OrchestratorError("a TLS client certificate needs its key, and a key its certificate (mutual TLS)")
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(self.tls_ca, "CA"),  # None: the system's trusted roots
            private_key=_read(self.tls_key, "client key"),
            certificate_chain=_read(self.tls_cert, "client certificate"),
        )
        return grpc.secure_channel(self.address, credentials)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise OrchestratorError(f"cannot read the TLS {what} {path}: {exc.strerror or exc}") from None


_TLS_WORDS = ("ssl", "tls", "handshake", "certificate")


def error_of(exc: grpc.RpcError, address: str) -> OrchestratorError:
    """The one translation of a failed call into what a user reads."""
    code: grpc.StatusCode = exc.code()
    details = " ".join(str(exc.details() or code.name).split())
    if code is grpc.StatusCode.UNAVAILABLE and any(w in details.lower() for w in _TLS_WORDS):
        message = f"TLS with the orchestrator at {address} failed (check the CA, certificate and key): {details}"
    elif code is grpc.StatusCode.UNAVAILABLE:
        message = f"cannot reach the orchestrator at {address}: {details}"
    elif code is grpc.StatusCode.UNAUTHENTICATED:
        message = f"the orchestrator at {address} refused the call: {details} (give a valid ORCHESTRATOR_TOKEN)"
    elif code is grpc.StatusCode.PERMISSION_DENIED:
        message = f"the orchestrator at {address} refused the call: {details} (the token lacks the scope)"
    else:
        message = f"{code.name}: {details}"
    return OrchestratorError(message, code)


@dataclass(frozen=True)
class DeliberationSpec:
    task: str
    role: str = "DEV"
    rounds: int | None = None  # None: the council's default; 0: best-of-N with verification
    agents: int = 0
    requirements: tuple[str, ...] = ()
    rubric: str = ""
    acceptance_tests: str = ""
    task_id: str = ""
    token_budget: int | None = None  # None: the council's or the service's default; 0: unlimited
    timeout_s: int = 0  # 0: the service's DELIBERATION_TIMEOUT
    samples: int | None = None  # proposals per agent; None: the council's default

    def request(self) -> pb.DeliberateRequest:
        constraints = pb.TaskConstraints(
            rubric=self.rubric,
            requirements=list(self.requirements),
            acceptance_tests=self.acceptance_tests,
            timeout_seconds=self.timeout_s,
        )
        if self.token_budget is not None:
            constraints.token_budget = self.token_budget
        request = pb.DeliberateRequest(
            task_id=self.task_id,
            task_description=self.task,
            role=self.role,
            num_agents=self.agents,
            constraints=constraints,
        )
        if self.rounds is not None:
            request.rounds = self.rounds
        if self.samples is not None:
            request.samples_per_agent = self.samples
        return request


@dataclass(frozen=True)
class SetupOutcome:
    role: str
    created: bool
    detail: str


@dataclass(frozen=True)
class CouncilCreated:
    council_id: str
    agent_ids: tuple[str, ...]


@dataclass(frozen=True)
class CouncilView:
    council_id: str
    role: str
    num_agents: int
    rounds: int
    model: str
    agents: tuple[tuple[str, float], ...]
    """(agent id, temperature) of each agent, when asked for."""
    token_budget: int | None = None
    """The council's default token budget: None when it has none (the service's default applies), 0 unlimited."""
    seeds: tuple[int, ...] = ()
    """Each agent's sampling seed, in the order of `agents`."""


@dataclass(frozen=True)
class CouncilDeleted:
    message: str
    agents_removed: int


@dataclass(frozen=True)
class StatusChange:
    """What SubmitDeliberation and CancelDeliberation answer."""

    task_id: str
    status: DeliberationStatus | None  # None: a status this client does not know
    existing: bool = False
    cancelled: bool = False
    message: str = ""


T = TypeVar("T")


class OrchestratorClient:
    """One channel to the service; use as a context manager. Methods raise OrchestratorError, never RpcError."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._channel = connection.channel()
        self._stub = pb_grpc.OrchestratorServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = connection.metadata()

    def __enter__(self) -> OrchestratorClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, kind: type[T], method: str, request: object, timeout: float | None) -> T:
        try:
            answer = getattr(self._stub, method)(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise error_of(exc, self.connection.address) from None
        if not isinstance(answer, kind):
            raise OrchestratorError(f"{method} answered with {type(answer).__name__}, not {kind.__name__}")
        return answer

    def create_council(
        self, role: str, num_agents: int = 0, rounds: int = 0, timeout_s: float = 60.0
    ) -> CouncilCreated:
        config = pb.CouncilConfig(deliberation_rounds=rounds, enable_peer_review=True, agent_type="RAY_VLLM")
        request = pb.CreateCouncilRequest(role=role, num_agents=num_agents, config=config)
        response = self._call(pb.CreateCouncilResponse, "CreateCouncil", request, timeout_s)
        return CouncilCreated(response.council_id, tuple(response.agent_ids))

    def setup_councils(
        self, num_agents: int = 0, rounds: int = 0, roles: Iterable[str] = tuple(Role)
    ) -> list[SetupOutcome]:
        """A council per role; one that already exists counts as success."""
        outcomes = []
        for role in roles:
            try:
                created = self.create_council(role, num_agents, rounds)
            except OrchestratorError as exc:
                if exc.code is not grpc.StatusCode.ALREADY_EXISTS:
                    raise
                outcomes.append(SetupOutcome(role, False, "already exists"))
                continue
            outcomes.append(SetupOutcome(role, True, f"{created.council_id}: {', '.join(created.agent_ids)}"))
        return outcomes

    def list_councils(self, role: str = "", include_agents: bool = True) -> list[CouncilView]:
        request = pb.ListCouncilsRequest(role_filter=role, include_agents=include_agents)
        response = self._call(pb.ListCouncilsResponse, "ListCouncils", request, 30.0)
        return [
            CouncilView(
                c.council_id,
                c.role,
                c.num_agents,
                c.deliberation_rounds,
                c.model,
                tuple((a.agent_id, a.temperature) for a in c.agents),
                c.token_budget if c.HasField("token_budget") else None,
                tuple(int(a.seed) for a in c.agents),
            )
            for c in response.councils
        ]

    def delete_council(self, role: str) -> CouncilDeleted:
        response = self._call(pb.DeleteCouncilResponse, "DeleteCouncil", pb.DeleteCouncilRequest(role=role), 60.0)
        return CouncilDeleted(response.message, response.agents_removed)

    def deliberate(self, spec: DeliberationSpec, timeout_s: float) -> Outcome:
        return self._call(pb.DeliberateResponse, "Deliberate", spec.request(), timeout_s)

    def submit(self, spec: DeliberationSpec) -> StatusChange:
        response = self._call(pb.SubmitDeliberationResponse, "SubmitDeliberation", spec.request(), 30.0)
        return StatusChange(response.task_id, PB_TO_STATUS.get(response.status), existing=response.existing)

    def cancel(self, task_id: str) -> StatusChange:
        request = pb.CancelDeliberationRequest(task_id=task_id)
        response = self._call(pb.CancelDeliberationResponse, "CancelDeliberation", request, 30.0)
        status = PB_TO_STATUS.get(response.status)
        return StatusChange(response.task_id, status, cancelled=response.cancelled, message=response.message)

    def result(self, task_id: str) -> Result:
        request = pb.GetDeliberationResultRequest(task_id=task_id)
        return self._call(pb.GetDeliberationResultResponse, "GetDeliberationResult", request, 30.0)

    def status(self) -> ServiceStatus:
        return self._call(pb.GetStatusResponse, "GetStatus", pb.GetStatusRequest(include_stats=True), 5.0)

    def list_deliberations(self, page_size: int) -> DeliberationList:
        request = pb.ListDeliberationsRequest(page_size=page_size)
        return self._call(pb.ListDeliberationsResponse, "ListDeliberations", request, 5.0)

    def plan(self, plan_id: str, timeout_s: float = 30.0) -> Plan:
        return self._call(pb.GetPlanResponse, "GetPlan", pb.GetPlanRequest(plan_id=plan_id), timeout_s)

    def find_plan(self, plan_id: str, timeout_s: float = 10.0) -> Plan | None:
        """None while the service has not seen the plan yet."""
        try:
            return self.plan(plan_id, timeout_s)
        except OrchestratorError as exc:
            if exc.code is grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def watch(self, task_id: str) -> Iterator[Update]:
        request = pb.WatchDeliberationRequest(task_id=task_id)
        try:
            yield from self._stub.WatchDeliberation(request, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise error_of(exc, self.connection.address) from None


def setup_councils(
    connection: Connection, num_agents: int = 0, rounds: int = 0, roles: Iterable[str] = tuple(Role)
) -> list[SetupOutcome]:
    """The same code path for `orchestrator councils setup`, `demo` and scripts/setup_all_councils.py."""
    with OrchestratorClient(connection) as client:
        return client.setup_councils(num_agents, rounds, roles)
