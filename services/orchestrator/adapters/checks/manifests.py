"""Sanity check of the Kubernetes manifests among a proposal's YAML documents (those with apiVersion and kind).

Errors: apiVersion or kind not a non-empty string; no metadata.name (nor generateName); a workload (Pod,
Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) whose pod template has no containers, or a
container without name or image; an apps/v1 workload without spec.selector, or whose selector.matchLabels
are not among the template's labels (the API server rejects both).
Warnings: a container without resources.limits; an image with no tag, or tagged `latest` (a digest is fine).

The check passes when no manifest has an error; score = manifests without errors / manifests - 0.05 per
warning, clamped to [0, 1].

"kubernetes-validate" complements it with the API schemas (`validate_manifests`): every manifest against the schemas
the `kubernetes-validate` package bundles for Kubernetes KUBERNETES_VERSION, in their strict form (an unknown field
is an error, as `kubectl apply` rejects it). It runs in-process, not in the sandbox: it is a pure Python JSON-schema
check of the document `yaml.safe_load` already made, with schemas read from the package's own files, so nothing of
the proposal is executed; its reference registry holds only those bundled schemas and has no retriever, so an
unknown `$ref` fails instead of being fetched (nothing is ever downloaded); run here it also works where no sandbox
exists; and `python -m kubernetes_validate` in the sandbox would need the package's ~100 MB of schemas visible
there, which a virtualenv under /work (the sandbox's own work dir) is not. The first error of each manifest is
reported (its field path and message); YAML timestamps are turned into strings first, as kubectl's YAML-to-JSON step
does. A kind without a bundled schema (a custom resource), or a document the validator itself fails on, is noted,
not failed. It passes when no manifest is invalid; score = valid / (valid + invalid), 1.0 when none had a schema. At
most MAX_SCHEMA_CHECKS manifests are validated (about 40 ms each).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import kubernetes_validate  # type: ignore[import-untyped]
from kubernetes_validate.utils import SchemaNotFoundError  # type: ignore[import-untyped]

from orchestrator.domain.model import CheckResult
from orchestrator.domain.text import flat_ellipsize

CHECK_TYPE = "k8s_schema"
SCHEMA_CHECK_TYPE = "kubernetes-validate"
KUBERNETES_VERSION = "1.33.0"
MAX_SCHEMA_CHECKS = 20
MAX_MESSAGE_CHARS = 300
WARNING_COST = 0.05

_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_SELECTOR_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})


def check_manifests(documents: Sequence[tuple[str, object]]) -> CheckResult | None:
    """None when no document is a manifest."""
    manifests = [(label, doc) for label, doc in documents if _is_manifest(doc)]
    if not manifests:
        return None
    details: dict[str, str] = {}
    valid = warned = 0
    for label, doc in manifests:
        errors, warnings = _check(doc)
        valid += not errors
        warned += len(warnings)
        findings = [f"error: {e}" for e in errors] + [f"warning: {w}" for w in warnings]
        details[f"{label} {_describe(doc)}"] = "; ".join(findings) or "ok"
    score = min(1.0, max(0.0, valid / len(manifests) - WARNING_COST * warned))
    return CheckResult(
        check_type=CHECK_TYPE,
        passed=valid == len(manifests),
        score=round(score, 4),
        message=f"{len(manifests)} manifests: {len(manifests) - valid} with errors, {warned} warnings",
        details=details,
    )


def validate_manifests(documents: Sequence[tuple[str, object]]) -> CheckResult | None:
    """The manifests against the bundled API schemas; None when no document is a manifest."""
    manifests = [(label, doc) for label, doc in documents if _is_manifest(doc)]
    if not manifests:
        return None
    details: dict[str, str] = {}
    counts = {"ok": 0, "invalid": 0, "unknown": 0}
    for n, (label, doc) in enumerate(manifests):
        verdict, text = _schema_verdict(doc) if n < MAX_SCHEMA_CHECKS else ("unknown", "not validated (limit)")
        counts[verdict] += 1
        details[f"{label} {_describe(doc)}"] = text
    checked = counts["ok"] + counts["invalid"]
    return CheckResult(
        check_type=SCHEMA_CHECK_TYPE,
        passed=counts["invalid"] == 0,
        score=round(counts["ok"] / checked, 4) if checked else 1.0,
        message=f"{len(manifests)} manifests against the Kubernetes {KUBERNETES_VERSION} schemas: "
        f"{counts['ok']} valid, {counts['invalid']} invalid, {counts['unknown']} without a schema",
        details={**details, "kubernetes_version": KUBERNETES_VERSION},
    )


def _schema_verdict(doc: object) -> tuple[str, str]:
    """("ok" | "invalid" | "unknown", what to report)."""
    if not isinstance(_get(doc, "apiVersion"), str) or not isinstance(_get(doc, "kind"), str):
        return "invalid", "error: apiVersion and kind must be strings"
    try:
        # As JSON, the form kubectl sends: YAML timestamps become strings, as they do there.
        body = json.loads(json.dumps(doc, default=str))
    except (TypeError, ValueError, RecursionError) as exc:
        return "invalid", _trim(f"error: not representable as JSON: {exc}")
    try:
        kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path) or "(root)"
        return "invalid", _trim(f"error: {where}: {exc.message}")
    except SchemaNotFoundError:
        return "unknown", f"no schema for {_get(doc, 'apiVersion')} {_get(doc, 'kind')} (a custom resource?)"
    except Exception as exc:  # a failure of the validator itself (say, very deep nesting) is no verdict
        return "unknown", _trim(f"could not be validated: {type(exc).__name__}: {exc}")
    return "ok", "ok"


def _trim(text: str) -> str:
    return flat_ellipsize(text, MAX_MESSAGE_CHARS)


def _is_manifest(doc: object) -> bool:
    return isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc


def _describe(doc: object) -> str:
    kind, name = _get(doc, "kind"), _get(doc, "metadata", "name")
    return f"{kind if isinstance(kind, str) else '?'}/{name if isinstance(name, str) else '?'}"


def _get(node: object, *path: str) -> object:
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _check(doc: object) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    kind = _get(doc, "kind")
    for field in ("apiVersion", "kind"):
        value = _get(doc, field)
        if not isinstance(value, str) or not value:
            errors.append(f"{field} is not a non-empty string")
    if not _get(doc, "metadata", "name") and not _get(doc, "metadata", "generateName"):
        errors.append("metadata.name is missing")
    if not isinstance(kind, str) or kind not in _POD_SPEC_PATHS:
        return errors, []
    path = _POD_SPEC_PATHS[kind]
    if kind in _SELECTOR_KINDS and str(_get(doc, "apiVersion")).startswith("apps/"):
        errors += _selector_errors(doc)
    container_errors, warnings = _check_containers(_get(doc, *path, "containers"), ".".join(path))
    return errors + container_errors, warnings


def _selector_errors(doc: object) -> list[str]:
    selector = _get(doc, "spec", "selector")
    if not isinstance(selector, dict):
        return ["spec.selector is missing"]
    wanted = selector.get("matchLabels")
    labels = _get(doc, "spec", "template", "metadata", "labels")
    if isinstance(wanted, dict) and wanted:
        have = labels if isinstance(labels, dict) else {}
        if any(have.get(key) != value for key, value in wanted.items()):
            return ["spec.selector.matchLabels do not match spec.template.metadata.labels"]
    return []


def _check_containers(containers: object, where: str) -> tuple[list[str], list[str]]:
    if not isinstance(containers, list) or not containers:
        return [f"{where}.containers is missing or empty"], []
    errors: list[str] = []
    warnings: list[str] = []
    for n, container in enumerate(containers, 1):
        if not isinstance(container, dict):
            errors.append(f"container {n} is not a mapping")
            continue
        name, image = container.get("name"), container.get("image")
        named = isinstance(name, str) and bool(name)
        label = f"container {name}" if named else f"container {n}"
        if not named:
            errors.append(f"{label} has no name")
        if not isinstance(image, str) or not image:
            errors.append(f"{label} has no image")
        elif (tag_warning := _image_tag_warning(image)) is not None:
            warnings.append(f"{label} {tag_warning}")
        if not _get(container, "resources", "limits"):
            warnings.append(f"{label} has no resource limits")
    return errors, warnings


def _image_tag_warning(image: str) -> str | None:
    if "@" in image:
        return None  # pinned by digest
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image} has no tag (implies latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image} uses the latest tag"
    return None
