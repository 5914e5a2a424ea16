"""The gRPC API's TLS and tokens in the deployment: files mounted from Secrets where the settings say, the Job's
token a `write` token of the tokens file, only health on the plaintext port, the TLS Secret documented."""

from __future__ import annotations

from pathlib import PurePosixPath

from orchestrator.adapters.grpc.auth import Scope, lookup, parse_tokens
from tests.deploy.manifests import (
    REPO_ROOT,
    Json,
    container,
    container_port,
    find,
    load_manifests,
    service_port,
)

MANIFESTS = load_manifests()
OPERATOR_SECRETS = {"orchestrator-tls"}
"""Secrets the manifests use but do not ship (a private key has no placeholder): docs/deploy.md says how to make
them."""
DOCS = (REPO_ROOT / "docs" / "deploy.md").read_text()


def _settings() -> dict[str, str]:
    return dict(find(MANIFESTS, "ConfigMap", "orchestrator-settings")["data"])


def _pod(kind: str, name: str) -> Json:
    return dict(find(MANIFESTS, kind, name)["spec"]["template"]["spec"])


def _secret_file(pod: Json, c: Json, path: str) -> tuple[str, str]:
    """(Secret name, key) of the file at `path` in container `c`, mounted from a Secret volume of `pod`."""
    target = PurePosixPath(path)
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in c.get("volumeMounts", []):
        directory = PurePosixPath(mount["mountPath"])
        if target.parent == directory and "subPath" not in mount:
            secret = volumes[mount["name"]].get("secret")
            assert secret, f"{path} is mounted from {volumes[mount['name']]}, not a Secret"
            items = {i["path"]: i["key"] for i in secret.get("items", [])}
            return secret["secretName"], items.get(target.name, target.name)
    raise AssertionError(f"nothing mounted at {target.parent} for {path}")


def test_the_orchestrator_reads_its_certificate_and_tokens_from_mounted_secrets() -> None:
    pod = _pod("Deployment", "orchestrator")
    c = container({"spec": pod}, "orchestrator")
    settings = _settings()
    assert _secret_file(pod, c, settings["GRPC_TLS_CERT"]) == ("orchestrator-tls", "tls.crt")
    assert _secret_file(pod, c, settings["GRPC_TLS_KEY"]) == ("orchestrator-tls", "tls.key")
    name, key = _secret_file(pod, c, settings["AUTH_TOKENS_FILE"])
    tokens = parse_tokens(find(MANIFESTS, "Secret", name)["stringData"][key], f"{name}/{key}")
    assert Scope.READ in tokens.values() and Scope.WRITE in tokens.values()


def test_the_setup_job_uses_a_write_token_and_only_the_ca_of_the_tls_secret() -> None:
    pod = _pod("Job", "setup-councils")
    c = container({"spec": pod}, "setup-councils")
    env = {e["name"]: e for e in c["env"]}
    ref = env["ORCHESTRATOR_TOKEN"]["valueFrom"]["secretKeyRef"]
    secret = find(MANIFESTS, "Secret", ref["name"])["stringData"]
    orchestrator = _pod("Deployment", "orchestrator")
    tokens_secret, tokens_key = _secret_file(
        orchestrator, container({"spec": orchestrator}, "orchestrator"), _settings()["AUTH_TOKENS_FILE"]
    )
    assert ref["name"] == tokens_secret, "the Job's token and the tokens file are one Secret"
    tokens = parse_tokens(secret[tokens_key], tokens_key)
    assert lookup(tokens, secret[ref["key"]].strip()) is Scope.WRITE, "the Job creates councils: a write token"
    ca = env["ORCHESTRATOR_TLS_CA"]["value"]
    assert _secret_file(pod, c, ca) == ("orchestrator-tls", "ca.crt")
    keys = {i["key"] for v in pod["volumes"] if "secret" in v for i in v["secret"].get("items", [])}
    assert keys == {"ca.crt"}, "the Job never mounts the server's private key"


def test_probes_use_the_plaintext_health_port_which_the_service_does_not_expose() -> None:
    settings = _settings()
    c = container({"spec": _pod("Deployment", "orchestrator")}, "orchestrator")
    health = int(settings["GRPC_HEALTH_PORT"])
    assert health != int(settings["GRPC_PORT"]) and container_port(c, "health") == health
    service = find(MANIFESTS, "Service", "orchestrator")
    exposed = {p["name"] for p in service["spec"]["ports"]}
    assert "health" not in exposed and service_port(service, "grpc")["port"] == int(settings["GRPC_PORT"])


def test_secrets_the_manifests_do_not_ship_are_documented() -> None:
    shipped = {m.name for m in MANIFESTS if m.kind == "Secret"}
    used = {
        v["secret"]["secretName"]
        for m in MANIFESTS
        if m.kind in ("Deployment", "Job")
        for v in m.body["spec"]["template"]["spec"].get("volumes", [])
        if "secret" in v
    }
    assert used - shipped == OPERATOR_SECRETS
    for name in OPERATOR_SECRETS:
        assert f"create secret generic {name}" in DOCS, f"docs/deploy.md does not say how to create {name}"
    assert "create secret generic orchestrator-auth" in DOCS
