"""Every manifest against the Kubernetes API schemas, the RayCluster against KubeRay's CRD, all offline."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from tests.deploy.manifests import (
    K8S_DIR,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    Json,
    Manifest,
    crd_schema,
    crd_schema_from,
    load_manifests,
    manifest_files,
    of_kind,
    pod_templates,
    strict,
)

MANIFESTS = load_manifests()
BUILT_IN = [m for m in MANIFESTS if not m.body["apiVersion"].startswith("ray.io/")]
RAY_CLUSTERS = of_kind(MANIFESTS, "RayCluster")


def _kuberay_errors(body: Json) -> list[str]:
    validator = jsonschema.Draft4Validator(strict(crd_schema("ray.io_rayclusters.yaml")))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("manifest", BUILT_IN, ids=lambda m: m.id)
def test_manifest_is_valid_against_the_kubernetes_schema(manifest: Manifest, version: str) -> None:
    try:
        kubernetes_validate.validate(manifest.body, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{manifest.id} on Kubernetes {version}: {'.'.join(map(str, exc.path))}: {exc.message}")
    except SchemaNotFoundError as exc:
        pytest.fail(f"{manifest.id}: {exc.message}")


def test_the_deployment_has_one_ray_cluster() -> None:
    assert len(RAY_CLUSTERS) == 1


@pytest.mark.parametrize("manifest", RAY_CLUSTERS, ids=lambda m: m.id)
def test_ray_cluster_is_valid_against_the_kuberay_crd(manifest: Manifest) -> None:
    assert manifest.body["apiVersion"] == "ray.io/v1"
    errors = _kuberay_errors(manifest.body)
    assert not errors, f"{manifest.id} against the KubeRay CRD:\n" + "\n".join(errors)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_ray_cluster_pod_templates_are_valid_kubernetes_pod_templates(version: str) -> None:
    # The CRD embeds the pod schema of the Kubernetes release KubeRay was built with; this checks the templates
    # against the releases the deployment supports as well.
    for label, template in pod_templates(RAY_CLUSTERS):
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}
        try:
            kubernetes_validate.validate(wrapped, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{label} on Kubernetes {version}: {'.'.join(map(str, exc.path))}: {exc.message}")


def test_kuberay_check_refuses_unknown_fields_and_wrong_types() -> None:
    body = copy.deepcopy(RAY_CLUSTERS[0].body)
    body["spec"]["workerGroupSpecs"][0]["maxReplica"] = 5
    body["spec"]["workerGroupSpecs"][0]["minReplicas"] = "1"
    errors = _kuberay_errors(body)
    assert any("'maxReplica' was unexpected" in e for e in errors), errors
    assert any("minReplicas: '1' is not of type 'integer'" in e for e in errors), errors


def test_missing_shared_schemas_fail_the_check_and_say_where_they_were_expected(tmp_path: Path) -> None:
    missing = tmp_path / "shared" / "k8s-schemas" / "ray.io_rayclusters.yaml"
    with pytest.raises(pytest.fail.Exception, match=r"KubeRay CRD schema not found at .*k8s-schemas"):
        crd_schema_from(missing, "v1")


def test_kustomization_applies_every_numbered_manifest_in_order() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["namespace"] == NAMESPACE
    listed, files = kustomization["resources"], [p.name for p in manifest_files()]
    assert listed == files, f"kustomization.yaml lists {listed}, deploy/k8s has {files}"


def test_every_object_lives_in_the_fleet_namespace() -> None:
    assert find_namespace() == NAMESPACE
    outside = [m.id for m in MANIFESTS if m.kind != "Namespace" and m.body["metadata"].get("namespace") != NAMESPACE]
    assert outside == []


def find_namespace() -> str:
    (namespace,) = of_kind(MANIFESTS, "Namespace")
    assert namespace.file.startswith("00-"), "the namespace comes first"
    return namespace.name


def test_no_two_objects_share_a_kind_and_name() -> None:
    ids = [(m.kind, m.name) for m in MANIFESTS]
    assert len(ids) == len(set(ids))
