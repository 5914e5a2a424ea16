"""The token rules of the gRPC API: a total scope table, the tokens file and its reloads, the settings' pairs."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import grpc
import pytest
from structlog.testing import capture_logs

from fleet.orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.adapters.grpc.auth import (
    RPC_SCOPES,
    WEB,
    Refusal,
    RefusalLog,
    Scope,
    TokenFile,
    decide,
    parse_tokens,
    required_scope,
    web_client_address,
)
from orchestrator.adapters.grpc.tls import EXPIRY_WARNING_DAYS, CertificateFiles, TlsConfig
from orchestrator.config import load_settings
from orchestrator.domain.errors import ConfigError
from tests.certs import Authority

SERVICE = pb.DESCRIPTOR.services_by_name["OrchestratorService"]
READ_PREFIXES = ("Get", "List", "Watch")


def test_every_rpc_of_the_service_has_an_explicit_scope() -> None:
    methods = {m.name for m in SERVICE.methods}
    assert methods - set(RPC_SCOPES) == set(), "add the new RPC to RPC_SCOPES in adapters/grpc/auth.py"
    assert set(RPC_SCOPES) - methods == set(), "RPC_SCOPES names RPCs the service does not have"


def test_only_looking_rpcs_are_read_and_everything_else_is_write() -> None:
    for method in SERVICE.methods:
        expected = Scope.READ if method.name.startswith(READ_PREFIXES) else Scope.WRITE
        assert RPC_SCOPES[method.name] is expected, method.name
        assert required_scope(f"/{SERVICE.full_name}/{method.name}", protect_reflection=False) is expected


def test_unknown_rpcs_need_write_and_health_is_always_open() -> None:
    assert required_scope(f"/{SERVICE.full_name}/DropEverything", protect_reflection=False) is Scope.WRITE
    assert required_scope("/other.Service/Get", protect_reflection=False) is Scope.WRITE
    for protect in (False, True):
        assert required_scope("/grpc.health.v1.Health/Check", protect_reflection=protect) is None
        assert required_scope("/grpc.health.v1.Health/Watch", protect_reflection=protect) is None
    reflect = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    assert required_scope(reflect, protect_reflection=False) is None
    assert required_scope(reflect, protect_reflection=True) is Scope.READ


def test_tokens_file_parses_comments_and_refuses_bad_lines_without_echoing_tokens() -> None:
    tokens = parse_tokens("# ops\n\nalpha-token read  # dashboards\nbeta-token write\n", "f")
    assert sorted(s.value for s in tokens.values()) == ["read", "write"]
    with pytest.raises(ConfigError, match="line 2") as bad:
        parse_tokens("alpha read\nsecret-xyz admin\n", "f")
    assert "secret-xyz" not in str(bad.value)
    with pytest.raises(ConfigError, match="no tokens"):
        parse_tokens("# nothing\n", "f")


def _rewrite(path: Path, text: str, bump_ns: int) -> None:
    path.write_text(text)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump_ns))


def test_tokens_file_is_reread_on_change_and_a_broken_one_keeps_the_last_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("old-token write\n")
    tokens = TokenFile(path, check_interval_s=1.0)
    assert tokens.scope_of("old-token", now=10.0) is Scope.WRITE
    _rewrite(path, "new-token read\n", 1_000_000)
    assert tokens.scope_of("old-token", now=10.5) is Scope.WRITE, "checked at most once per interval"
    assert tokens.scope_of("old-token", now=11.5) is None
    assert tokens.scope_of("new-token", now=11.5) is Scope.READ
    _rewrite(path, "new-token superuser\n", 2_000_000)
    assert tokens.scope_of("new-token", now=13.0) is Scope.READ
    path.unlink()
    assert tokens.scope_of("new-token", now=15.0) is Scope.READ


def test_a_deleted_tokens_file_keeps_the_last_tokens_and_says_so_until_it_is_back(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("reader read\nwriter write\n")
    tokens = TokenFile(path, check_interval_s=1.0)
    assert tokens.problems(now=1.0) == []
    path.unlink()
    with capture_logs() as logs:
        assert tokens.scope_of("writer", now=3.0) is Scope.WRITE  # still serving
        assert tokens.scope_of("writer", now=5.0) is Scope.WRITE
        problems = tokens.problems(now=7.0)
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1 and errors[0]["event"] == "auth_tokens_file_problem"  # once, not per call
    assert "the file is gone" in errors[0]["error"]
    assert problems == [f"AUTH_TOKENS_FILE {path}: the file is gone; still serving with the 2 tokens last read"]
    assert "reader" not in str(logs) + problems[0] and "writer" not in str(logs) + problems[0]
    path.write_text("newer write\n")
    assert tokens.scope_of("newer", now=9.0) is Scope.WRITE
    assert tokens.scope_of("writer", now=9.0) is None
    assert tokens.problems(now=9.0) == []


def test_an_invalid_tokens_file_is_a_problem_until_it_is_fixed(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("writer write\n")
    tokens = TokenFile(path, check_interval_s=0.0)
    _rewrite(path, "writer superuser\n", 1_000_000)
    assert tokens.scope_of("writer", now=1.0) is Scope.WRITE
    assert tokens.problems(now=1.0) == [
        f"AUTH_TOKENS_FILE {path} line 1: expected 'TOKEN read' or 'TOKEN write'; "
        "still serving with the 1 tokens last read"
    ]
    _rewrite(path, "writer read\n", 2_000_000)
    assert tokens.scope_of("writer", now=2.0) is Scope.READ and tokens.problems(now=2.0) == []


def _refusal(reason: str = "missing_token") -> Refusal:
    return Refusal(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token", reason)


def test_refusals_are_all_counted_but_logged_once_per_client_address_per_interval() -> None:
    refusals = RefusalLog(interval_s=60.0)
    with capture_logs() as logs:
        for i in range(500):
            refusals.refused(_refusal(), "/svc/M", f"ipv4:10.0.0.7:{40000 + i}", now=i * 0.01)
        refusals.refused(_refusal(), "/svc/M", "ipv6:[2001:db8::1]:5000", now=6.0)
        refusals.refused(_refusal("invalid_token"), "/svc/M", "ipv4:10.0.0.7:1", now=61.0)
    assert refusals.snapshot() == {("UNAUTHENTICATED", "missing_token"): 501, ("UNAUTHENTICATED", "invalid_token"): 1}
    lines = [(e["client"], e["suppressed"], e["reason"]) for e in logs if e["event"] == "rpc_refused"]
    assert lines == [
        ("ipv4:10.0.0.7", 0, "missing_token"),
        ("ipv6:[2001:db8::1]", 0, "missing_token"),
        ("ipv4:10.0.0.7", 499, "invalid_token"),  # the next line says how many were not logged
    ]


def test_a_client_that_changes_its_address_each_call_is_capped_in_all() -> None:
    refusals = RefusalLog(interval_s=60.0, max_lines=10, max_clients=100)
    with capture_logs() as logs:
        for i in range(1_000):
            refusals.refused(_refusal(), "/svc/M", f"ipv6:[2001:db8::{i:x}]:5000", now=i * 0.01)
        refusals.refused(_refusal(), "/svc/M", "ipv4:10.0.0.9:1", now=70.0)
    lines = [e for e in logs if e["event"] == "rpc_refused"]
    assert len(lines) == 11
    assert lines[-1]["suppressed_by_cap"] == 990
    assert sum(refusals.snapshot().values()) == 1_001
    assert len(refusals._clients) <= 100


def test_missing_or_wrong_scope_tokens_are_refused_with_distinct_codes(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("reader read\nwriter write\n")
    tokens = TokenFile(path)
    delete = f"/{SERVICE.full_name}/DeleteCouncil"
    status = f"/{SERVICE.full_name}/GetStatus"

    def code(method: str, token: str | None) -> grpc.StatusCode | None:
        refusal = decide(tokens, method, token, 0.0, protect_reflection=False)
        return None if refusal is None else refusal.code

    assert code(delete, None) is grpc.StatusCode.UNAUTHENTICATED
    assert code(delete, "unknown") is grpc.StatusCode.UNAUTHENTICATED
    assert code(delete, "reader") is grpc.StatusCode.PERMISSION_DENIED
    assert code(delete, "writer") is None
    assert code(status, "reader") is None and code(status, "writer") is None


def test_security_settings_come_in_pairs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GRPC_TLS_CERT and GRPC_TLS_KEY"):
        load_settings(grpc_tls_key=str(tmp_path / "k.pem"), neo4j_password="do-not-echo")
    with pytest.raises(ConfigError, match="GRPC_TLS_CLIENT_CA needs"):
        load_settings(grpc_tls_client_ca=str(tmp_path / "ca.pem"))
    with pytest.raises(ConfigError, match="AUTH_PROTECT_REFLECTION needs"):
        load_settings(auth_protect_reflection=True)
    with pytest.raises(ConfigError, match="GRPC_HEALTH_PORT must differ"):
        load_settings(grpc_port=50055, grpc_health_port=50055)


def _secret_volume(root: Path, version: str, files: dict[str, bytes]) -> None:
    """Writes `files` the way kubelet updates a mounted Secret: a new timestamped directory, the `..data` symlink
    swapped to it atomically, and each file a symlink through `..data`."""
    (root / version).mkdir()
    for name, data in files.items():
        (root / version / name).write_bytes(data)
    (root / "..data_tmp").symlink_to(version)
    os.replace(root / "..data_tmp", root / "..data")
    for name in files:
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")


def test_certificates_follow_a_kubernetes_secret_update_and_skip_a_mismatched_pair(tmp_path: Path) -> None:
    ca = Authority("ca")
    first, second = ca.issue("one", server=True), ca.issue("two", server=True)
    _secret_volume(tmp_path, "..v1", {"tls.crt": first.cert, "tls.key": first.key})
    files = CertificateFiles(TlsConfig(tmp_path / "tls.crt", tmp_path / "tls.key"))
    assert files.fetch() is None, "unchanged"
    _secret_volume(tmp_path, "..v2", {"tls.crt": second.cert, "tls.key": first.key})
    assert files.fetch() is None and files.material.cert == first.cert, "a certificate without its key is not used"
    _secret_volume(tmp_path, "..v3", {"tls.crt": second.cert, "tls.key": second.key})
    assert files.fetch() is not None and files.material.cert == second.cert
    assert files.fetch() is None


def test_unusable_certificate_files_are_config_errors(tmp_path: Path) -> None:
    pem = Authority("ca").issue("one", server=True)
    pem.write(tmp_path / "tls.crt", tmp_path / "tls.key")
    (tmp_path / "junk").write_text("not pem")
    with pytest.raises(ConfigError, match=r"GRPC_TLS_CERT .*missing"):
        CertificateFiles(TlsConfig(tmp_path / "missing", tmp_path / "tls.key"))
    with pytest.raises(ConfigError, match=r"GRPC_TLS_KEY .*not a PEM file"):
        CertificateFiles(TlsConfig(tmp_path / "tls.crt", tmp_path / "junk"))
    with pytest.raises(ConfigError, match="GRPC_TLS_CLIENT_CA"):
        CertificateFiles(TlsConfig(tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "junk"))


def _issued(tmp_path: Path, **validity: datetime.timedelta) -> TlsConfig:
    now = datetime.datetime.now(datetime.UTC)
    when = {name: now + delta for name, delta in validity.items()}
    Authority("ca").issue("server", server=True, **when).write(tmp_path / "tls.crt", tmp_path / "tls.key")
    return TlsConfig(tmp_path / "tls.crt", tmp_path / "tls.key")


def test_an_expired_server_certificate_stops_start_up_saying_when_it_expired(tmp_path: Path) -> None:
    config = _issued(tmp_path, valid_from=-datetime.timedelta(days=30), valid_until=-datetime.timedelta(hours=1))
    with pytest.raises(ConfigError, match=r"GRPC_TLS_CERT .*tls.crt: the certificate expired at 20\d\d-.* renew it"):
        CertificateFiles(config)


def test_a_not_yet_valid_server_certificate_stops_start_up(tmp_path: Path) -> None:
    config = _issued(tmp_path, valid_from=datetime.timedelta(days=2), valid_until=datetime.timedelta(days=90))
    with pytest.raises(ConfigError, match=r"GRPC_TLS_CERT .*: the certificate is not valid yet \(valid from 20"):
        CertificateFiles(config)


def test_a_certificate_expiring_within_the_window_is_warned_and_listed(tmp_path: Path) -> None:
    assert EXPIRY_WARNING_DAYS == 14
    soon = _issued(tmp_path, valid_until=datetime.timedelta(days=3))
    with capture_logs() as logs:
        files = CertificateFiles(soon)
    warned = [e for e in logs if e["event"] == "tls_certificate_expires_soon"]
    assert len(warned) == 1 and warned[0]["log_level"] == "warning" and "(in 3.0 days)" in warned[0]["problem"]
    assert len(files.problems()) == 1 and "renew it" in files.problems()[0]
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=4)
    assert "expired at" in files.problems(later)[0]  # still serving past the date: said so, not hidden
    fine = tmp_path / "fine"
    fine.mkdir()
    with capture_logs() as logs:
        files = CertificateFiles(_issued(fine, valid_until=datetime.timedelta(days=15)))
    assert not [e for e in logs if e["event"] == "tls_certificate_expires_soon"] and files.problems() == []


def test_a_rotation_to_an_expired_certificate_keeps_the_one_in_use(tmp_path: Path) -> None:
    files = CertificateFiles(_issued(tmp_path, valid_until=datetime.timedelta(days=90)))
    before = files.material
    expired = Authority("ca").issue(
        "server",
        server=True,
        valid_from=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=9),
        valid_until=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1),
    )
    expired.write(tmp_path / "tls.crt", tmp_path / "tls.key")
    st = os.stat(tmp_path / "tls.crt")
    os.utime(tmp_path / "tls.crt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with capture_logs() as logs:
        assert files.fetch() is None
    assert files.material is before
    assert any(e["event"] == "tls_reload_failed" and "expired" in e["error"] for e in logs)


def test_web_refusals_share_the_clients_log_interval_and_are_counted_apart() -> None:
    refusals = RefusalLog(interval_s=60.0)
    with capture_logs() as logs:
        refusals.refused(_refusal(), "/svc/M", "ipv4:10.0.0.7:40000", now=0.0)
        for i in range(300):  # the same client on the web port: no line of its own within the interval
            refusals.refused(_refusal(), "/", web_client_address("10.0.0.7"), now=1.0 + i * 0.01, transport=WEB)
        refusals.refused(_refusal("invalid_token"), "/councils", web_client_address("::1"), now=5.0, transport=WEB)
        refusals.refused(_refusal(), "/", web_client_address("10.0.0.7"), now=61.0, transport=WEB)
    assert refusals.snapshot() == {("UNAUTHENTICATED", "missing_token"): 1}
    assert refusals.web_snapshot() == {
        ("UNAUTHENTICATED", "missing_token"): 301,
        ("UNAUTHENTICATED", "invalid_token"): 1,
    }
    lines = [(e["event"], e["client"], e["suppressed"], e.get("path")) for e in logs if e["event"].endswith("_refused")]
    assert lines == [
        ("rpc_refused", "ipv4:10.0.0.7", 0, None),
        ("web_refused", "ipv6:[::1]", 0, "/councils"),
        ("web_refused", "ipv4:10.0.0.7", 300, "/"),
    ]
    assert web_client_address(None) == "unknown" and web_client_address("[2001:db8::1]") == "ipv6:[2001:db8::1]"
