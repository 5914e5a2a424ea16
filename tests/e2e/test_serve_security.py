"""`orchestrator serve` with TLS, mTLS and bearer tokens, on certificates made in the test.

One TLS + tokens server for the module (the certificate and the tokens file change under it), one mTLS server.
The canary secrets are set on the TLS server and searched for in everything it emitted: answers, errors, logs,
/metrics and the spans it exported over OTLP.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.adapters.grpc.auth import RPC_SCOPES, Scope
from orchestrator.testing.fake_llm import FakeLLMServer
from orchestrator.testing.otlp_receiver import OtlpReceiver, running_receiver
from tests.certs import Authority, serial_of
from tests.e2e.conftest import ROOT, free_port, serve_env
from tests.e2e.grpc_security import (
    SERVICE,
    TlsServe,
    call_rpc,
    health_status,
    readme_grpcurl_commands,
    run_grpcurl,
    tls_channel,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

READ_TOKEN = "reader-token-4d1c9a"
WRITE_TOKEN = "canary-write-token-91f2e7b0c3"
VLLM_KEY = "canary-vllm-key-5b7e02d4"
NEO4J_PASSWORD = "canary-neo4j-password-c81f3a"
CANARIES = (WRITE_TOKEN, READ_TOKEN, VLLM_KEY, NEO4J_PASSWORD, "canary-wrong-token-77aa")
REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
TOKENS = f"# test tokens\n{READ_TOKEN} read\n{WRITE_TOKEN} write  # the setup Job\n"


def _replace(path: Path, data: bytes) -> None:
    """Writes like a Secret update: a new file moved into place."""
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _wait_for(condition: object, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    """Where the TLS server exports its spans (they are searched for the canaries too)."""
    with running_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def tls_serve(
    fake_llm_server: FakeLLMServer, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsServe]:
    work = tmp_path_factory.mktemp("tls")
    ca = Authority("fleet test CA")
    ca.issue("orchestrator", server=True).write(work / "tls.crt", work / "tls.key")
    (work / "tokens").write_text(TOKENS)
    env = serve_env(
        fake_llm_server,
        work,
        GRPC_TLS_CERT=str(work / "tls.crt"),
        GRPC_TLS_KEY=str(work / "tls.key"),
        AUTH_TOKENS_FILE=str(work / "tokens"),
        METRICS_PORT=str(free_port()),
        VLLM_API_KEY=VLLM_KEY,
        NEO4J_PASSWORD=NEO4J_PASSWORD,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    process = TlsServe(env, work / "serve.log", ca=ca)
    process.start()
    yield process
    process.stop(signal.SIGTERM)


def test_start_up_logs_the_security_mode(tls_serve: TlsServe) -> None:
    lines = [json.loads(line) for line in tls_serve.log_path.read_text().splitlines() if '"grpc_security"' in line]
    assert lines and lines[0]["transport"] == "tls" and lines[0]["auth"] == "tokens"


def test_tls_handshake_needs_the_servers_ca(tls_serve: TlsServe) -> None:
    with tls_channel(tls_serve.address, tls_serve.ca.pem) as channel:
        assert health_status(channel) == grpc.StatusCode.OK, "health answers without a token"
    with tls_channel(tls_serve.address, Authority("someone else").pem) as channel:
        assert health_status(channel) == grpc.StatusCode.UNAVAILABLE


def test_a_plaintext_client_is_refused(tls_serve: TlsServe) -> None:
    with grpc.insecure_channel(tls_serve.address) as channel:
        assert health_status(channel) == grpc.StatusCode.UNAVAILABLE


def test_every_rpc_needs_the_scope_of_the_table(tls_serve: TlsServe) -> None:
    with tls_serve.channel() as channel:
        for method in SERVICE.methods:
            name = method.name
            assert call_rpc(channel, name, None)[0] == grpc.StatusCode.UNAUTHENTICATED, name
            assert call_rpc(channel, name, "not-a-token")[0] == grpc.StatusCode.UNAUTHENTICATED, name
            as_reader = call_rpc(channel, name, READ_TOKEN)[0]
            if RPC_SCOPES[name] is Scope.WRITE:
                assert as_reader == grpc.StatusCode.PERMISSION_DENIED, name
            else:
                assert as_reader not in REFUSED, name
            # Empty requests: each write RPC refuses them on their merits (nothing is created or cancelled).
            assert call_rpc(channel, name, WRITE_TOKEN)[0] not in REFUSED, name


def test_a_refused_write_changes_nothing(tls_serve: TlsServe) -> None:
    create = pb.CreateCouncilRequest(role="QA", num_agents=1).SerializeToString()
    listing = pb.ListCouncilsRequest(role_filter="QA").SerializeToString()
    with tls_serve.channel() as channel:
        assert call_rpc(channel, "CreateCouncil", READ_TOKEN, create)[0] == grpc.StatusCode.PERMISSION_DENIED
        raw = channel.unary_unary(f"/{SERVICE.full_name}/ListCouncils")(
            listing, metadata=(("authorization", f"Bearer {READ_TOKEN}"),), timeout=30
        )
    assert list(pb.ListCouncilsResponse.FromString(raw).councils) == []


def test_reflection_is_open_without_a_token(tls_serve: TlsServe) -> None:
    with tls_serve.channel() as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for answer in answers for s in answer.list_services_response.service}
    assert SERVICE.full_name in names


def test_readme_tls_grpcurl_examples_run_as_written(tls_serve: TlsServe, tmp_path: Path) -> None:
    commands = [c for c in readme_grpcurl_commands() if "-cacert" in c]
    assert commands, "the README has no TLS grpcurl example"
    (tmp_path / "ca.crt").write_bytes(tls_serve.ca.pem)
    for command in commands:
        done = run_grpcurl(command, tls_serve.port, tmp_path, {**os.environ, "ORCHESTRATOR_TOKEN": READ_TOKEN})
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        assert SERVICE.full_name in done.stdout or '"status"' in done.stdout, done.stdout
    refused = run_grpcurl(commands[-1], tls_serve.port, tmp_path, {**os.environ, "ORCHESTRATOR_TOKEN": "wrong"})
    assert refused.returncode != 0 and "Unauthenticated" in refused.stderr


def test_a_changed_tokens_file_takes_effect_without_restart(tls_serve: TlsServe) -> None:
    tokens = Path(tls_serve.env["AUTH_TOKENS_FILE"])
    with tls_serve.channel() as channel:
        _replace(tokens, f"{WRITE_TOKEN} write\nrotated-reader-token read\n".encode())
        assert _wait_for(lambda: call_rpc(channel, "GetStatus", "rotated-reader-token")[0] not in REFUSED)
        assert call_rpc(channel, "GetStatus", READ_TOKEN)[0] == grpc.StatusCode.UNAUTHENTICATED
        _replace(tokens, f"{WRITE_TOKEN} read\n".encode())  # demoted
        assert _wait_for(
            lambda: call_rpc(channel, "DeleteCouncil", WRITE_TOKEN)[0] == grpc.StatusCode.PERMISSION_DENIED
        )
        _replace(tokens, TOKENS.encode())
        assert _wait_for(lambda: call_rpc(channel, "GetStatus", READ_TOKEN)[0] not in REFUSED)


def test_a_rotated_certificate_is_served_to_new_clients_without_restart(tls_serve: TlsServe) -> None:
    old_ca, new_ca = tls_serve.ca, Authority("fleet test CA, next year")
    work = Path(tls_serve.env["GRPC_TLS_CERT"]).parent
    issued = new_ca.issue("orchestrator", server=True)
    _replace(work / "tls.key", issued.key)
    _replace(work / "tls.crt", issued.cert)

    def new_clients_get_the_new_certificate() -> bool:
        with tls_channel(tls_serve.address, new_ca.pem) as channel:
            return health_status(channel) == grpc.StatusCode.OK

    assert _wait_for(new_clients_get_the_new_certificate)
    tls_serve.ca = new_ca
    served = ssl.get_server_certificate(("127.0.0.1", tls_serve.port)).encode()
    assert serial_of(served) == issued.serial
    with tls_channel(tls_serve.address, old_ca.pem) as channel:
        assert health_status(channel) == grpc.StatusCode.UNAVAILABLE, "clients trusting only the old CA fail now"
    assert tls_serve.proc is not None and tls_serve.proc.poll() is None, "no restart"


def test_canary_secrets_never_leave_the_service(
    tls_serve: TlsServe, fake_llm_server: FakeLLMServer, receiver: OtlpReceiver
) -> None:
    emitted: list[str] = []
    create = pb.CreateCouncilRequest(role="DEV", num_agents=2).SerializeToString()
    deliberate = pb.DeliberateRequest(task_description="Write a slugify function", role="DEV", rounds=0)
    with tls_serve.channel() as channel:
        emitted += [call_rpc(channel, "CreateCouncil", WRITE_TOKEN, create)[1]]
        raw = channel.unary_unary(f"/{SERVICE.full_name}/Deliberate")(
            deliberate.SerializeToString(), metadata=(("authorization", f"Bearer {WRITE_TOKEN}"),), timeout=120
        )
        emitted.append(str(pb.DeliberateResponse.FromString(raw)))
        status = channel.unary_unary(f"/{SERVICE.full_name}/GetStatus")(
            pb.GetStatusRequest(include_stats=True).SerializeToString(),
            metadata=(("authorization", f"Bearer {READ_TOKEN}"),),
            timeout=30,
        )
        emitted.append(str(pb.GetStatusResponse.FromString(status)))
        for method in SERVICE.methods:  # every refusal and every validation error
            for token in (None, "canary-wrong-token-77aa", READ_TOKEN, WRITE_TOKEN):
                emitted.append(call_rpc(channel, method.name, token, b"\xff\xff")[1])
                emitted.append(call_rpc(channel, method.name, token)[1])
    metrics_port = tls_serve.env["METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        emitted.append(response.read().decode())
    emitted.append(tls_serve.log_path.read_text(errors="replace"))
    # Every span exported, whole: names, attributes, resources, events (the agents' chat spans have arrived).
    spans = receiver.wait_for(lambda got: any(s.name.startswith("chat ") for s in got), timeout_s=30)
    emitted.extend(repr(span) for span in spans)
    everything = "\n".join(emitted)
    assert "deliberation" in everything.lower() and "invalid bearer token" in everything
    assert "UNAUTHENTICATED" in everything and "gen_ai.usage.input_tokens" in everything  # the spans are in
    leaked = [canary for canary in CANARIES if canary in everything]
    assert leaked == [], f"secrets in what the service emitted: {leaked}"


# --- mTLS ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_serve(fake_llm_server: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServe]:
    work = tmp_path_factory.mktemp("mtls")
    server_ca, client_ca = Authority("server CA"), Authority("client CA")
    server_ca.issue("orchestrator", server=True).write(work / "tls.crt", work / "tls.key")
    (work / "client-ca.crt").write_bytes(client_ca.pem)
    env = serve_env(
        fake_llm_server,
        work,
        GRPC_TLS_CERT=str(work / "tls.crt"),
        GRPC_TLS_KEY=str(work / "tls.key"),
        GRPC_TLS_CLIENT_CA=str(work / "client-ca.crt"),
    )
    process = TlsServe(env, work / "serve.log", ca=server_ca, client=client_ca.issue("setup-job", server=False))
    process.client_ca = client_ca  # type: ignore[attr-defined]
    process.start()
    yield process
    process.stop(signal.SIGTERM)


def test_mtls_needs_a_client_certificate_signed_by_the_client_ca(mtls_serve: TlsServe) -> None:
    server_ca = mtls_serve.ca.pem
    with tls_channel(mtls_serve.address, server_ca, mtls_serve.client) as channel:
        assert health_status(channel) == grpc.StatusCode.OK
        assert call_rpc(channel, "GetStatus", None)[0] == grpc.StatusCode.OK, (
            "no tokens file: the certificate is enough"
        )
    with tls_channel(mtls_serve.address, server_ca) as channel:
        assert health_status(channel) == grpc.StatusCode.UNAVAILABLE, "no client certificate"
    stranger = Authority("not the client CA").issue("intruder", server=False)
    with tls_channel(mtls_serve.address, server_ca, stranger) as channel:
        assert health_status(channel) == grpc.StatusCode.UNAVAILABLE, "a client certificate of another CA"
    lines = [json.loads(line) for line in mtls_serve.log_path.read_text().splitlines() if '"grpc_security"' in line]
    assert lines[0]["transport"] == "mtls" and lines[0]["auth"] == "off"


# --- start-up refuses unusable files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"GRPC_TLS_CERT": "missing.crt", "GRPC_TLS_KEY": "tls.key"}, "GRPC_TLS_CERT"),
        ({"GRPC_TLS_CERT": "tls.crt", "GRPC_TLS_KEY": "other.key"}, "not a matching certificate and key"),
        ({"GRPC_TLS_KEY": "tls.key"}, "GRPC_TLS_CERT and GRPC_TLS_KEY"),
        ({"AUTH_TOKENS_FILE": "missing-tokens"}, "AUTH_TOKENS_FILE"),
        ({"AUTH_TOKENS_FILE": "bad-tokens"}, "line 1"),
    ],
)
def test_unusable_security_files_stop_start_up_with_one_clear_line(
    files: dict[str, str], message: str, fake_llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    ca = Authority("ca")
    ca.issue("orchestrator", server=True).write(tmp_path / "tls.crt", tmp_path / "tls.key")
    ca.issue("another", server=True).write(tmp_path / "other.crt", tmp_path / "other.key")
    (tmp_path / "bad-tokens").write_text(f"{WRITE_TOKEN} admin\n")
    env = serve_env(fake_llm_server, tmp_path, NEO4J_PASSWORD=NEO4J_PASSWORD, VLLM_API_KEY=VLLM_KEY)
    env |= {name: str(tmp_path / value) for name, value in files.items()}
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "serve"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr
    assert not [c for c in CANARIES if c in done.stdout + done.stderr]
