"""The web view in the deployment: WEB_PORT is the container's, the Service's and the NetworkPolicy's `web` port,
and it sits behind the same TLS and tokens as gRPC."""

from __future__ import annotations

from orchestrator.config import load_settings
from tests.deploy.manifests import container, container_port, find, load_manifests, of_kind, service_port

MANIFESTS = load_manifests()


def _settings() -> dict[str, str]:
    return dict(find(MANIFESTS, "ConfigMap", "orchestrator-settings")["data"])


def _pod_template() -> dict[str, object]:
    return dict(find(MANIFESTS, "Deployment", "orchestrator")["spec"]["template"])


def test_web_port_is_the_same_in_settings_container_and_service() -> None:
    port = int(_settings()["WEB_PORT"])
    assert port > 0, "WEB_PORT=0 turns the web view off"
    assert load_settings(**{k.lower(): v for k, v in _settings().items() if k == "WEB_PORT"}).web_port == port
    assert container_port(container(_pod_template(), "orchestrator"), "web") == port
    web = service_port(find(MANIFESTS, "Service", "orchestrator"), "web")
    assert web["port"] == port and web["targetPort"] in ("web", port)


def test_the_web_view_is_behind_the_grpc_tls_and_tokens() -> None:
    settings = _settings()
    assert settings["GRPC_TLS_CERT"] and settings["GRPC_TLS_KEY"] and settings["AUTH_TOKENS_FILE"]
    assert service_port(find(MANIFESTS, "Service", "orchestrator"), "web").get("appProtocol") == "https"


def test_the_network_policy_admits_the_service_ports_and_only_those() -> None:
    policies = [p.body for p in of_kind(MANIFESTS, "NetworkPolicy")]
    mine = [
        p for p in policies if p["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "orchestrator"}
    ]
    assert len(mine) == 1
    policy = mine[0]["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert ports == {"grpc", "web", "metrics", "health"}
    names = {p["name"] for p in container(_pod_template(), "orchestrator")["ports"]}
    assert ports <= names, f"the policy names ports the container does not have: {ports - names}"
