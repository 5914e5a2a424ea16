"""The real validators of a proposal's blocks, mapped into the CheckSuite: shellcheck and hadolint through a fake
sandbox (scripted tool answers), kubernetes-validate in-process against the bundled schemas."""

from __future__ import annotations

import json
import socket

import pytest

from orchestrator.adapters.checks.checker import ThreadedChecker
from orchestrator.adapters.checks.linters import HADOLINT, LINT_LIMITS, SHELLCHECK, tool_path
from orchestrator.adapters.checks.manifests import KUBERNETES_VERSION
from orchestrator.adapters.checks.proposal_checks import run_checks
from orchestrator.domain.execution import Execution, ExecutionOutcome
from orchestrator.testing.sandbox import FakeSandbox, SandboxCall
from tests.validator_cases import DEPLOYMENT, additional, fenced

SCRIPT = "#!/bin/bash\nrm -rf $1/build\nls *.txt\n"
DOCKERFILE = "FROM debian\nRUN apt-get update && apt-get install -y curl\n"

SHELLCHECK_ANSWER = {
    "comments": [
        {
            "file": "block-1.sh",
            "line": 2,
            "level": "info",
            "code": 2086,
            "message": "Double quote to prevent globbing.",
        },
        {"file": "block-1.sh", "line": 3, "level": "error", "code": 2045, "message": "Iterating over ls output."},
        {"file": "block-1.sh", "line": 3, "level": "style", "code": 2012, "message": "Use find instead of ls."},
        {"file": "block-2.sh", "line": 1, "level": "warning", "code": 2034, "message": "foo appears unused."},
    ]
}
HADOLINT_ANSWER = [
    {"file": "block-1.Dockerfile", "line": 1, "level": "warning", "code": "DL3006", "message": "Always tag the image"},
    {"file": "block-1.Dockerfile", "line": 2, "level": "error", "code": "DL3000", "message": "Use absolute WORKDIR"},
    {"file": "block-1.Dockerfile", "line": 2, "level": "style", "code": "DL3059", "message": "Multiple RUN"},
]


def exited(code: int, stdout: object = "") -> Execution:
    text = stdout if isinstance(stdout, str) else json.dumps(stdout)
    return Execution(ExecutionOutcome.EXITED, exit_code=code, stdout=text)


def tools_answering(shellcheck: Execution, hadolint: Execution) -> FakeSandbox:
    """A sandbox in which both tools' paths are visible (`--version` works) and each answers as given."""

    def respond(call: SandboxCall) -> Execution:
        if call.command[1:] == ("--version",):
            return exited(0, "version: 1")
        return shellcheck if call.command[0].endswith(SHELLCHECK) else hadolint

    return FakeSandbox(respond=respond)


def tool_runs(sandbox: FakeSandbox) -> list[SandboxCall]:
    return [c for c in sandbox.calls if "--version" not in c.command]


@pytest.fixture(autouse=True)
def _tools_installed() -> None:
    if not tool_path(SHELLCHECK) or not tool_path(HADOLINT):
        pytest.fail("shellcheck or hadolint not installed: they are runtime dependencies (`make install`)")


# shellcheck and hadolint, mapped


async def test_shellcheck_findings_become_lint_errors_and_warnings_with_their_codes_and_lines() -> None:
    sandbox = tools_answering(exited(1, SHELLCHECK_ANSWER), exited(0, []))
    suite = await ThreadedChecker(sandbox).check(fenced("bash", SCRIPT) + fenced("sh", "foo=1\n"), [])
    assert suite.lint.errors == (
        "shell block 1 line 2: SC2086 Double quote to prevent globbing. (warning)",
        "shell block 1 line 3: SC2045 Iterating over ls output.",
        "shell block 2 line 1: SC2034 foo appears unused. (warning)",
    )
    assert (suite.lint.passed, suite.lint.error_count, suite.lint.warning_count) == (False, 1, 2)
    check = additional(suite, "shellcheck")
    assert not check.passed
    assert check.score == pytest.approx(1 - 0.25 - 0.10)
    assert check.details["shell block 2"] == "line 1: SC2034 foo appears unused. (warning)"
    assert not suite.all_passed


async def test_one_sandbox_run_lints_all_shell_blocks_by_absolute_path_on_files_in_the_work_dir() -> None:
    sandbox = tools_answering(exited(0, {"comments": []}), exited(0, []))
    await ThreadedChecker(sandbox).check(fenced("bash", SCRIPT) + fenced("sh", "echo hi\n"), [])
    (run,) = tool_runs(sandbox)
    assert run.command[0] == tool_path(SHELLCHECK)
    assert run.command[0].startswith("/")
    assert "--norc" in run.command
    assert run.command[-2:] == ("block-1.sh", "block-2.sh")
    assert run.files == {"block-1.sh": SCRIPT, "block-2.sh": "echo hi\n"}
    assert run.limits == LINT_LIMITS


async def test_hadolint_findings_map_to_lint_and_its_own_check() -> None:
    sandbox = tools_answering(exited(0, {"comments": []}), exited(0, HADOLINT_ANSWER))
    suite = await ThreadedChecker(sandbox).check(fenced("dockerfile", DOCKERFILE), [])
    assert suite.lint.errors == (
        "dockerfile block 1 line 1: DL3006 Always tag the image (warning)",
        "dockerfile block 1 line 2: DL3000 Use absolute WORKDIR",
    )
    check = additional(suite, "hadolint")
    assert (check.passed, check.message) == (False, "1 blocks: 1 errors, 1 warnings")
    (run,) = tool_runs(sandbox)
    assert run.command[0] == tool_path(HADOLINT)
    assert run.files == {"block-1.Dockerfile": DOCKERFILE}


async def test_clean_blocks_pass_both_linters_and_keep_the_full_score() -> None:
    sandbox = tools_answering(exited(0, {"comments": []}), exited(0, []))
    content = fenced("bash", 'echo "$1"\n') + fenced("dockerfile", "FROM python:3.12-slim\nUSER nobody\n")
    suite = await ThreadedChecker(sandbox).check(content, [])
    assert additional(suite, "shellcheck").passed
    assert additional(suite, "hadolint").details == {"dockerfile block 1": "ok"}
    assert suite.all_passed
    assert suite.score == 1.0


async def test_linter_findings_lower_the_score_through_lint() -> None:
    clean = tools_answering(exited(0, {"comments": []}), exited(0, []))
    flagged = tools_answering(exited(1, SHELLCHECK_ANSWER), exited(0, []))
    content = fenced("bash", SCRIPT)
    clean_suite = await ThreadedChecker(clean).check(content, [])
    flagged_suite = await ThreadedChecker(flagged).check(content, [])
    # 0.30 * (1 - 0.25 * 1 error - 0.05 * 1 warning): the block-2 finding names no block of this proposal.
    assert clean_suite.score - flagged_suite.score == pytest.approx(0.30 * 0.30)


# Skipped, not passed


async def test_without_a_sandbox_the_linters_are_skipped_not_passed_and_the_parse_checks_still_run() -> None:
    content = fenced("bash", "if true; then\n  echo hi\n") + fenced("bash", SCRIPT) + fenced("dockerfile", DOCKERFILE)
    suite = await ThreadedChecker().check(content, [])
    shellcheck, hadolint = additional(suite, "shellcheck"), additional(suite, "hadolint")
    assert not shellcheck.passed and not hadolint.passed
    assert shellcheck.message == "skipped: no sandbox to run it in"
    assert shellcheck.details == {"skipped": "shell block 2"}
    assert not suite.dryrun.passed  # bash -n still caught block 1
    assert "shell block 1: bash -n exit 2" in suite.dryrun.output
    assert not suite.all_passed
    assert suite.score == run_checks(content).score  # a linter that could not run costs nothing


async def test_an_unavailable_sandbox_skips_the_linters_and_is_asked_again_next_time() -> None:
    sandbox = FakeSandbox(available=False, unavailable_reason="no user namespaces")
    checker = ThreadedChecker(sandbox)
    suite = await checker.check(fenced("bash", SCRIPT), [])
    assert additional(suite, "shellcheck").message == "skipped: the sandbox cannot run it: no user namespaces"
    sandbox.available = True
    sandbox.respond = lambda call: exited(0, "v") if "--version" in call.command else exited(0, {"comments": []})
    assert additional(await checker.check(fenced("bash", SCRIPT), []), "shellcheck").passed


@pytest.mark.parametrize(
    "execution",
    [
        Execution(ExecutionOutcome.TIMED_OUT, detail="wall time limit of 20 s"),
        Execution(ExecutionOutcome.OUTPUT_LIMIT, exit_code=None, stdout="{", detail="output limit"),
        exited(0, "not json"),
        exited(2, ""),
    ],
    ids=["timeout", "output-limit", "garbage", "tool-failure"],
)
async def test_a_linter_run_that_does_not_finish_is_not_passed_and_adds_no_finding(execution: Execution) -> None:
    suite = await ThreadedChecker(tools_answering(execution, exited(0, []))).check(fenced("bash", SCRIPT), [])
    check = additional(suite, "shellcheck")
    assert not check.passed
    assert check.message.startswith("did not complete: ")
    assert suite.lint.error_count == suite.lint.warning_count == 0


# What reaches the linters


async def test_blocks_that_fail_the_dry_run_are_not_linted_again() -> None:
    sandbox = tools_answering(exited(0, {"comments": []}), exited(0, []))
    content = fenced("bash", "if true; then\n") + fenced("dockerfile", "RUN echo hi\n") + fenced("zsh", "echo $1\n")
    suite = await ThreadedChecker(sandbox).check(content, [])
    assert sandbox.calls == []
    assert all(c.check_type not in ("shellcheck", "hadolint") for c in suite.additional)


async def test_console_blocks_are_linted_as_their_commands() -> None:
    sandbox = tools_answering(exited(0, {"comments": []}), exited(0, []))
    await ThreadedChecker(sandbox).check(fenced("console", "$ kubectl get pods -n <namespace>\nNAME READY\n"), [])
    (run,) = tool_runs(sandbox)
    assert run.files == {"block-1.sh": "kubectl get pods -n namespace\n"}


async def test_a_tool_the_sandbox_cannot_see_is_copied_into_the_work_dir_and_found_so_once() -> None:
    def respond(call: SandboxCall) -> Execution:
        if "--version" in call.command:  # the venv is hidden in the sandbox: the path does not exist there
            return Execution(ExecutionOutcome.EXITED, exit_code=127, stderr="No such file or directory")
        return exited(0, {"comments": []})

    sandbox = FakeSandbox(respond=respond)
    checker = ThreadedChecker(sandbox)
    for _ in range(2):
        assert additional(await checker.check(fenced("bash", 'echo "$1"\n'), []), "shellcheck").passed
    assert sum("--version" in c.command for c in sandbox.calls) == 1
    run = tool_runs(sandbox)[-1]
    assert run.command[:2] == ("sh", "-c")
    assert run.command[3] == "./.tools/shellcheck"
    binary = run.files[".tools/shellcheck"]
    assert isinstance(binary, bytes) and binary.startswith(b"\x7fELF")
    assert run.limits.work_dir_bytes == LINT_LIMITS.work_dir_bytes + len(binary)


# kubernetes-validate


def test_a_valid_deployment_passes_kubernetes_validate() -> None:
    check = additional(run_checks(fenced("yaml", DEPLOYMENT)), "kubernetes-validate")
    assert (check.passed, check.score) == (True, 1.0)
    assert check.details == {"yaml block 1 doc 1 Deployment/web": "ok", "kubernetes_version": KUBERNETES_VERSION}


def test_a_deployment_the_api_server_would_reject_fails_kubernetes_validate_with_the_field() -> None:
    bad = DEPLOYMENT.replace("containerPort: 8080", "containerPort: '8080'").replace("replicas: 2", "replica: 2")
    suite = run_checks(fenced("yaml", bad))
    check = additional(suite, "kubernetes-validate")
    assert (check.passed, check.score) == (False, 0.0)
    detail = check.details["yaml block 1 doc 1 Deployment/web"]
    assert detail.startswith("error: ")
    assert "replica" in detail or "containerPort" in detail
    assert additional(suite, "k8s_schema").passed  # the hand-written sanity check cannot see either
    assert suite.score == pytest.approx(0.9)
    assert not suite.all_passed


def test_a_custom_resource_is_noted_not_failed() -> None:
    crd = "apiVersion: ray.io/v1\nkind: RayCluster\nmetadata: {name: rc}\nspec: {}\n"
    check = additional(run_checks(fenced("yaml", crd)), "kubernetes-validate")
    assert (check.passed, check.score) == (True, 1.0)
    assert "no schema for ray.io/v1 RayCluster" in check.details["yaml block 1 doc 1 RayCluster/rc"]


def test_yaml_timestamps_are_strings_as_kubectl_sends_them() -> None:
    dated = DEPLOYMENT.replace("metadata: {name: web}", "metadata: {name: web, annotations: {since: 2024-01-31}}")
    assert additional(run_checks(fenced("yaml", dated)), "kubernetes-validate").passed


def test_kubernetes_validate_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("kubernetes-validate tried the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    bad = DEPLOYMENT.replace("image: registry.local/web:1.4.2", "image: 42")
    check = additional(run_checks(fenced("yaml", DEPLOYMENT) + fenced("yaml", bad)), "kubernetes-validate")
    assert check.message.endswith("1 valid, 1 invalid, 0 without a schema")
