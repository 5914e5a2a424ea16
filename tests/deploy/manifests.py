"""The deployment's files, read for the offline checks: manifests, the Dockerfile and the project's pins."""

from __future__ import annotations

import copy
import functools
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
# The KubeRay CRDs are shared data beside the project (a sibling folder in every checkout, CI's included).
SHARED_SCHEMAS = REPO_ROOT.parent / "shared" / "k8s-schemas"
NAMESPACE = "swe-ai-fleet"

# The Kubernetes versions the manifests are validated against: the oldest the deployment supports (native gRPC
# probes need 1.27, the preStop `sleep` action 1.30; docs/deploy.md) and the newest in the schema bundle of the
# pinned kubernetes-validate (pyproject.toml, `dev`).
OLDEST_KUBERNETES = "1.30.0"
NEWEST_KUBERNETES = "1.37.0"
KUBERNETES_VERSIONS = (OLDEST_KUBERNETES, NEWEST_KUBERNETES)

RAY_IMAGE = re.compile(r"^rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<major>3)(?P<minor>\d+)$")
PYTHON_IMAGE = re.compile(r"^python:(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)-slim-(?P<debian>[a-z]+)$")

Json = dict[str, Any]


@dataclass(frozen=True)
class Manifest:
    """One object of a manifest file."""

    file: str
    body: Json

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def id(self) -> str:
        return f"{self.file}:{self.kind}/{self.name}"


def manifest_files() -> list[Path]:
    """The numbered manifests, in apply order (kustomization.yaml is not one)."""
    return sorted(p for p in K8S_DIR.glob("*.yaml") if p.name[:2].isdigit())


def load_manifests() -> list[Manifest]:
    return [
        Manifest(path.name, body) for path in manifest_files() for body in yaml.safe_load_all(path.read_text()) if body
    ]


def find(manifests: list[Manifest], kind: str, name: str) -> Json:
    found = [m.body for m in manifests if m.kind == kind and m.name == name]
    assert len(found) == 1, f"expected one {kind} named {name!r} in deploy/k8s, found {len(found)}"
    return found[0]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m.kind == kind]


def pod_templates(manifests: list[Manifest]) -> Iterator[tuple[str, Json]]:
    """(label, pod template) of every workload, the RayCluster's head and worker groups included."""
    for m in manifests:
        if m.kind in ("Deployment", "StatefulSet", "Job"):
            yield m.id, m.body["spec"]["template"]
        elif m.kind == "RayCluster":
            yield f"{m.id} head", m.body["spec"]["headGroupSpec"]["template"]
            for group in m.body["spec"].get("workerGroupSpecs", []):
                yield f"{m.id} workers {group['groupName']}", group["template"]


def container(pod_template: Json, name: str) -> Json:
    found = [c for c in pod_template["spec"]["containers"] if c["name"] == name]
    assert len(found) == 1, f"expected one container named {name!r}"
    return dict(found[0])


def container_port(c: Json, name: str) -> int:
    ports = [p["containerPort"] for p in c.get("ports", []) if p.get("name") == name]
    assert len(ports) == 1, f"container {c['name']!r} has no port named {name!r}"
    return int(ports[0])


def service_port(service: Json, name: str) -> Json:
    ports = [p for p in service["spec"]["ports"] if p.get("name") == name]
    assert len(ports) == 1, f"Service {service['metadata']['name']!r} has no port named {name!r}"
    return dict(ports[0])


def pyproject() -> Json:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def project_pin(package: str) -> str:
    """The exact version a `package==X` runtime dependency of the project pins."""
    pins = [d for d in pyproject()["project"]["dependencies"] if re.match(rf"^{re.escape(package)}\s*==", d)]
    assert len(pins) == 1, f"pyproject.toml pins {package} {len(pins)} times, expected once (`{package}==X`)"
    return str(pins[0]).split("==", 1)[1].strip()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}".strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        instruction, _, args = pending.partition(" ")
        lines.append((instruction.upper(), args.strip()))
        pending = ""
    return lines


def dockerfile_bases() -> list[str]:
    """The image of every `FROM image [AS stage]` line."""
    return [args.split()[0] for instruction, args in dockerfile_instructions() if instruction == "FROM"]


def crd_schema(file_name: str, version: str = "v1") -> Json:
    """The openAPIV3Schema of a CRD from ../shared/k8s-schemas/; a missing folder fails the test, saying why."""
    return copy.deepcopy(_crd_schema(SHARED_SCHEMAS / file_name, version))


@functools.cache
def _crd_schema(path: Path, version: str) -> Json:
    return crd_schema_from(path, version)  # 17,000 lines of YAML: read once per session


def crd_schema_from(path: Path, version: str) -> Json:
    if not path.is_file():
        pytest.fail(
            f"KubeRay CRD schema not found at {path}: the RayCluster checks read it from ../shared/k8s-schemas/ "
            "beside the repository (shared data, not copied into the project); check out the shared folder next "
            "to this repository",
            pytrace=False,
        )
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            return dict(served["schema"]["openAPIV3Schema"])
    raise AssertionError(f"{path.name} serves no version {version!r}")


def strict(schema: Json) -> Json:
    """The schema with unknown fields refused, as the API server does with strict field validation (kubectl's
    default): every object with declared properties gets additionalProperties: false, unless it preserves unknown
    fields."""
    result = copy.deepcopy(schema)
    _forbid_unknown(result)
    return result


def _forbid_unknown(node: Json) -> None:
    properties = node.get("properties")
    if properties is not None:
        if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for child in properties.values():
            _forbid_unknown(child)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            _forbid_unknown(node[key])
    for key in ("allOf", "anyOf", "oneOf"):
        for child in node.get(key, []):
            _forbid_unknown(child)
