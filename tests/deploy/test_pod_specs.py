"""Every pod is hardened and sized: the Pod Security `restricted` essentials, requests and limits, probes."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import Json, load_manifests, pod_templates

MANIFESTS = load_manifests()
PODS = list(pod_templates(MANIFESTS))
# vLLM's image runs as root (its model cache and compilation caches live under /root); the namespace enforces the
# `baseline` profile for it (00-namespace.yaml).
ROOT_IMAGES = ("vllm/vllm-openai:",)
# The Ray workers run the execution checks' sandbox, which needs an unmasked /proc (tests/deploy/test_sandbox.py):
# the one restricted-profile rule they break, and `baseline` (enforced) allows it for their user-namespaced pods.
SANDBOX_EXCEPTIONS = {"ray-worker: procMount is Unmasked", "sandbox-check: procMount is Unmasked"}


def _restricted(template: Json) -> list[str]:
    pod = template["spec"].get("securityContext", {})
    problems = []
    if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile is not RuntimeDefault")
    for c in template["spec"].get("initContainers", []) + template["spec"]["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("seccompProfile", {}).get("type", "RuntimeDefault") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{c['name']}: seccompProfile is {sc['seccompProfile']['type']}")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{c['name']}: procMount is {sc['procMount']}")
        if sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
            problems.append(f"{c['name']}: runAsNonRoot is not set")
        if sc.get("runAsUser", pod.get("runAsUser")) == 0:
            problems.append(f"{c['name']}: runs as uid 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{c['name']}: allowPrivilegeEscalation is not false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{c['name']}: capabilities are not dropped")
        if sc.get("privileged"):
            problems.append(f"{c['name']}: privileged")
    return problems


@pytest.mark.parametrize(("label", "template"), PODS, ids=[label for label, _ in PODS])
def test_pod_meets_the_restricted_pod_security_essentials(label: str, template: Json) -> None:
    if any(c["image"].startswith(ROOT_IMAGES) for c in template["spec"]["containers"]):
        assert all(c["securityContext"]["allowPrivilegeEscalation"] is False for c in template["spec"]["containers"])
        return
    allowed = SANDBOX_EXCEPTIONS if label.endswith("workers agents") else set()
    assert set(_restricted(template)) <= allowed


@pytest.mark.parametrize(("label", "template"), PODS, ids=[label for label, _ in PODS])
def test_every_container_has_cpu_and_memory_requests_and_limits(label: str, template: Json) -> None:
    for c in template["spec"]["containers"]:
        resources = c.get("resources", {})
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{c['name']}: {bound}"


def test_orchestrator_and_setup_job_have_read_only_root_filesystems() -> None:
    for label, template in PODS:
        if "orchestrator" in label or "setup-councils" in label:
            for c in template["spec"]["containers"]:
                assert c["securityContext"]["readOnlyRootFilesystem"] is True, label


def test_the_hardening_check_notices_a_root_container() -> None:
    ((_, template),) = [(label, t) for label, t in PODS if "Deployment/orchestrator" in label]
    rooted = {**template, "spec": {**template["spec"], "securityContext": {}}}
    rooted["spec"]["containers"] = [{**c, "securityContext": {}} for c in template["spec"]["containers"]]
    assert len(_restricted(rooted)) == 4


SERVERS = [(label, t) for label, t in PODS if "Job/" not in label and "RayCluster" not in label]


@pytest.mark.parametrize(("label", "template"), SERVERS, ids=[label for label, _ in SERVERS])
def test_long_running_servers_have_readiness_and_liveness_probes(label: str, template: Json) -> None:
    for c in template["spec"]["containers"]:
        assert "readinessProbe" in c and "livenessProbe" in c, f"{label} {c['name']}"
