"""The orchestrator client against a real gRPC server on loopback: bearer tokens, TLS and mutual TLS with certificates
made here, and every refusal turned into one clear error (in the client, and as one line from the CLI)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from fleet.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.adapters.grpc.client import Connection, OrchestratorClient, OrchestratorError, setup_councils
from orchestrator.domain.model import DeliberationStatus

ROOT = Path(__file__).resolve().parents[2]
TOKENS = {"writer-token": "write", "reader-token": "read"}


class Service(pb_grpc.OrchestratorServiceServicer):
    """A service that checks tokens like issue 15 asks; it records the metadata each call brought."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    def _authorize(self, context: grpc.ServicerContext, scope: str) -> None:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        self.seen.append(metadata)
        token = metadata.get("authorization", "").removeprefix("Bearer ")
        granted = TOKENS.get(token)
        if granted is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown bearer token")
        if scope == "write" and granted != "write":
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "this token may only read")

    def CreateCouncil(self, request: pb.CreateCouncilRequest, context: Any) -> pb.CreateCouncilResponse:
        self._authorize(context, "write")
        if request.role == "QA":
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "council for QA exists")
        ids = [f"{request.role.lower()}-{i}" for i in range(request.num_agents)]
        return pb.CreateCouncilResponse(council_id=f"council-{request.role}", agents_created=len(ids), agent_ids=ids)

    def ListCouncils(self, request: pb.ListCouncilsRequest, context: Any) -> pb.ListCouncilsResponse:
        self._authorize(context, "read")
        agent = pb.AgentInfo(agent_id="dev-0", role="DEV", temperature=0.7)
        council = pb.CouncilInfo(
            council_id="council-DEV", role="DEV", num_agents=1, agents=[agent], model="m", token_budget=2500
        )
        return pb.ListCouncilsResponse(councils=[council])

    def SubmitDeliberation(self, request: pb.DeliberateRequest, context: Any) -> pb.SubmitDeliberationResponse:
        self._authorize(context, "write")
        assert request.HasField("rounds") and request.rounds == 0  # an explicit 0 is sent, not dropped
        return pb.SubmitDeliberationResponse(task_id="t-1", status=pb.DELIBERATION_STATUS_PENDING, existing=True)

    def GetPlan(self, request: pb.GetPlanRequest, context: Any) -> pb.GetPlanResponse:
        self._authorize(context, "read")
        context.abort(grpc.StatusCode.NOT_FOUND, f"plan {request.plan_id} not found")
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: bytes
    server_key: bytes
    client_cert: Path
    client_key: Path
    other_ca: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None, *, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key, other_key, server_key, client_key = _key(), _key(), _key(), _key()
    ca = _cert("test-ca", ca_key, None, ca=True)
    files = {
        "ca.pem": _pem(ca),
        "other-ca.pem": _pem(_cert("other-ca", other_key, None, ca=True)),
        "client.pem": _pem(_cert("client", client_key, ("test-ca", ca_key), ca=False)),
        "client.key": _pem(client_key),
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    server = _cert("localhost", server_key, ("test-ca", ca_key), ca=False)
    return Pki(d / "ca.pem", _pem(server), _pem(server_key), d / "client.pem", d / "client.key", d / "other-ca.pem")


@dataclass
class Served:
    address: str
    service: Service


def _serve(credentials: grpc.ServerCredentials | None) -> Iterator[Served]:
    service = Service()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_OrchestratorServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    address = "127.0.0.1:0"
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    server.start()
    try:
        yield Served(f"localhost:{port}", service)
    finally:
        server.stop(grace=None)


@pytest.fixture
def plaintext() -> Iterator[Served]:
    yield from _serve(None)


@pytest.fixture
def tls(pki: Pki) -> Iterator[Served]:
    yield from _serve(grpc.ssl_server_credentials([(pki.server_key, pki.server_cert)]))


@pytest.fixture
def mtls(pki: Pki) -> Iterator[Served]:
    credentials = grpc.ssl_server_credentials(
        [(pki.server_key, pki.server_cert)], root_certificates=pki.ca.read_bytes(), require_client_auth=True
    )
    yield from _serve(credentials)


def test_the_token_goes_out_as_bearer_metadata_and_answers_come_back_typed(plaintext: Served) -> None:
    with OrchestratorClient(Connection(plaintext.address, token="writer-token")) as client:
        councils = client.list_councils()
    assert plaintext.service.seen[-1]["authorization"] == "Bearer writer-token"
    assert [(c.council_id, c.agents, c.token_budget) for c in councils] == [("council-DEV", (("dev-0", 0.7),), 2500)]


def test_submit_sends_an_explicit_zero_rounds_and_reads_the_status_as_the_domain_spells_it(plaintext: Served) -> None:
    from orchestrator.adapters.grpc.client import DeliberationSpec

    with OrchestratorClient(Connection(plaintext.address, token="writer-token")) as client:
        submitted = client.submit(DeliberationSpec("write a parser", rounds=0))
    assert (submitted.task_id, submitted.status, submitted.existing) == ("t-1", DeliberationStatus.PENDING, True)


def test_a_missing_or_unknown_token_is_one_clear_error(plaintext: Served) -> None:
    for token in ("", "nobody"):
        with (
            OrchestratorClient(Connection(plaintext.address, token=token)) as client,
            pytest.raises(OrchestratorError) as caught,
        ):
            client.list_councils()
        assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
        assert str(caught.value) == (
            f"the orchestrator at {plaintext.address} refused the call: missing or unknown bearer token "
            "(give a valid ORCHESTRATOR_TOKEN)"
        )


def test_a_read_token_on_a_write_call_is_refused_as_permission_denied(plaintext: Served) -> None:
    with pytest.raises(OrchestratorError, match="this token may only read") as caught:
        setup_councils(Connection(plaintext.address, token="reader-token"), num_agents=1)
    assert caught.value.code is grpc.StatusCode.PERMISSION_DENIED


def test_setup_counts_an_existing_council_as_success(plaintext: Served) -> None:
    outcomes = setup_councils(Connection(plaintext.address, token="writer-token"), 2, roles=("DEV", "QA"))
    assert [(o.role, o.created, o.detail) for o in outcomes] == [
        ("DEV", True, "council-DEV: dev-0, dev-1"),
        ("QA", False, "already exists"),
    ]


def test_a_plan_the_service_has_not_seen_is_none(plaintext: Served) -> None:
    with OrchestratorClient(Connection(plaintext.address, token="reader-token")) as client:
        assert client.find_plan("plan-x") is None
        with pytest.raises(OrchestratorError, match="NOT_FOUND: plan plan-x not found"):
            client.plan("plan-x")


def test_tls_with_the_right_ca_works_and_with_another_ca_or_plaintext_it_fails(tls: Served, pki: Pki) -> None:
    with OrchestratorClient(Connection(tls.address, token="reader-token", tls_ca=pki.ca)) as client:
        assert client.list_councils()[0].role == "DEV"
    with OrchestratorClient(Connection(tls.address, token="reader-token", tls_ca=pki.other_ca)) as client:
        with pytest.raises(OrchestratorError, match=f"^TLS with the orchestrator at {tls.address} failed") as caught:
            client.list_councils()
        assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    with OrchestratorClient(Connection(tls.address, token="reader-token")) as client:
        with pytest.raises(OrchestratorError) as caught:
            client.list_councils()
        assert caught.value.code is grpc.StatusCode.UNAVAILABLE
        assert tls.address in str(caught.value)
    assert len(tls.service.seen) == 1  # only the call over the right TLS reached the service


def test_mutual_tls_needs_the_client_certificate(mtls: Served, pki: Pki) -> None:
    mutual = Connection(mtls.address, "reader-token", pki.ca, pki.client_cert, pki.client_key)
    with OrchestratorClient(mutual) as client:
        assert client.list_councils()[0].council_id == "council-DEV"
    with OrchestratorClient(Connection(mtls.address, "reader-token", pki.ca)) as client:
        with pytest.raises(OrchestratorError) as caught:
            client.list_councils()
        assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    with pytest.raises(OrchestratorError, match="needs its key"):
        OrchestratorClient(Connection(mtls.address, "reader-token", pki.ca, tls_cert=pki.client_cert))
    with pytest.raises(OrchestratorError, match="cannot read the TLS CA"):
        OrchestratorClient(Connection(mtls.address, tls_ca=pki.ca.with_name("missing.pem")))


def test_nothing_listening_is_cannot_reach() -> None:
    with OrchestratorClient(Connection("127.0.0.1:1")) as client, pytest.raises(OrchestratorError) as caught:
        client.status()
    assert str(caught.value).startswith("cannot reach the orchestrator at 127.0.0.1:1: ")


def test_connection_settings_come_from_the_environment(tmp_path: Path) -> None:
    env = {"ORCHESTRATOR_TOKEN": "canary-7f3a", "ORCHESTRATOR_TLS_CA": str(tmp_path / "ca.pem")}
    connection = Connection.from_env(env=env)
    assert (connection.address, connection.token, connection.tls_ca, connection.tls) == (
        "localhost:50055",
        "canary-7f3a",
        tmp_path / "ca.pem",
        True,
    )
    assert "canary-7f3a" not in repr(connection)  # the token stays out of reprs (and so out of logs)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "orchestrator", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


def test_the_cli_says_one_line_when_refused_and_passes_the_token_and_ca(tls: Served, pki: Pki) -> None:
    import os

    refused = _cli("--tls-ca", str(pki.ca), "--token", "nobody", "councils", "list", "--address", tls.address)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "refused the call" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    env = {**os.environ, "ORCHESTRATOR_TOKEN": "reader-token", "ORCHESTRATOR_TLS_CA": str(pki.ca)}
    listed = _cli("councils", "list", "--address", tls.address, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "council-DEV" in listed.stdout and "dev-0 (0.70)" in listed.stdout and "2,500" in listed.stdout
    plaintext = _cli("--token", "reader-token", "councils", "list", "--address", tls.address)
    assert plaintext.returncode == 1 and plaintext.stderr.count("\n") == 1, plaintext.stderr
    assert "Traceback" not in plaintext.stderr


def test_the_setup_script_reads_the_token_and_reports_a_refusal_in_one_line(plaintext: Served) -> None:
    script = [
        sys.executable,
        "scripts/setup_all_councils.py",
        "--address",
        plaintext.address,
        "--token",
        "reader-token",
    ]
    result = subprocess.run(script, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.startswith("error: the orchestrator at") and result.stderr.count("\n") == 1, result.stderr


def test_the_setup_script_is_the_cli_command_with_its_own_flags_and_defaults(tls: Served, pki: Pki) -> None:
    script = [sys.executable, "scripts/setup_all_councils.py", "--address", tls.address]
    flags = ["--token", "writer-token", "--tls-ca", str(pki.ca)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    result = subprocess.run([*script, *flags], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("created") == 4 and "already exists" in result.stdout  # QA's council exists
    assert "dev-0, dev-1, dev-2" in result.stdout and "dev-3" not in result.stdout  # 3 agents unless told
    fewer = subprocess.run(
        [*script, *flags, "--num-agents", "1"], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )
    assert fewer.returncode == 0 and "dev-0" in fewer.stdout and "dev-1" not in fewer.stdout, fewer.stderr
