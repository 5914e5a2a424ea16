"""shellcheck and hadolint in the real bubblewrap sandbox (as nobody, cleared environment, files in /work), and
kubernetes-validate against its bundled schemas, all through the checker the service builds."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orchestrator.adapters.checks.checker import ThreadedChecker
from orchestrator.adapters.sandbox import BwrapSandbox
from orchestrator.testing.sandbox_required import sandbox_missing
from tests.validator_cases import DEPLOYMENT, additional, fenced

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

UNQUOTED = "#!/bin/bash\nset -euo pipefail\ntarget=$1\nrm -rf $target/build\n"
QUOTED = '#!/bin/bash\nset -euo pipefail\ntarget="$1"\nrm -rf "${target:?}/build"\n'
UNPINNED = "FROM debian\nRUN apt-get update && apt-get install -y curl\n"
PINNED = 'FROM python:3.12.8-slim-bookworm\nWORKDIR /app\nCOPY app.py .\nUSER 65534\nCMD ["python", "app.py"]\n'


@pytest.fixture(scope="module")
async def checker() -> AsyncIterator[ThreadedChecker]:
    sandbox = BwrapSandbox()
    availability = await sandbox.probe()
    if not availability.available:
        sandbox_missing(availability.reason)
    yield ThreadedChecker(sandbox)


async def test_shellcheck_in_the_sandbox_flags_an_unquoted_expansion(checker: ThreadedChecker) -> None:
    suite = await checker.check(fenced("bash", UNQUOTED), [])
    check = additional(suite, "shellcheck")
    assert check.message == "1 blocks: 0 errors, 1 warnings", check
    assert "shell block 1 line 4: SC2086 Double quote to prevent globbing and word splitting. (warning)" in (
        suite.lint.errors
    )
    assert suite.dryrun.passed  # bash -n has nothing against it


async def test_a_quoted_script_passes_shellcheck(checker: ThreadedChecker) -> None:
    suite = await checker.check(fenced("bash", QUOTED), [])
    check = additional(suite, "shellcheck")
    assert check.passed, check
    assert check.details == {"shell block 1": "ok"}
    assert suite.lint.warning_count == 0


async def test_hadolint_in_the_sandbox_flags_an_untagged_image_and_unpinned_packages(
    checker: ThreadedChecker,
) -> None:
    suite = await checker.check(fenced("dockerfile", UNPINNED), [])
    details = additional(suite, "hadolint").details["dockerfile block 1"]
    assert "line 1: DL3006" in details
    assert "line 2: DL3008" in details
    assert any(e.startswith("dockerfile block 1 line 1: DL3006") for e in suite.lint.errors)


async def test_a_careful_dockerfile_passes_hadolint(checker: ThreadedChecker) -> None:
    check = additional(await checker.check(fenced("dockerfile", PINNED), []), "hadolint")
    assert check.passed, check
    assert check.details == {"dockerfile block 1": "ok"}


async def test_kubernetes_validate_rejects_an_invalid_deployment_and_passes_a_valid_one(
    checker: ThreadedChecker,
) -> None:
    invalid = DEPLOYMENT.replace("containerPort: 8080", "containerPort: http-port")
    bad = await checker.check(fenced("yaml", invalid), [])
    good = await checker.check(fenced("yaml", DEPLOYMENT), [])
    rejected = additional(bad, "kubernetes-validate")
    assert not rejected.passed
    assert "containerPort" in rejected.details["yaml block 1 doc 1 Deployment/web"]
    assert additional(good, "kubernetes-validate").passed
    assert good.all_passed and not bad.all_passed
    assert good.score > bad.score


async def test_all_three_validators_together_on_one_proposal(checker: ThreadedChecker) -> None:
    content = fenced("bash", QUOTED) + fenced("dockerfile", PINNED) + fenced("yaml", DEPLOYMENT)
    suite = await checker.check(content, [])
    assert [c.check_type for c in suite.additional] == [
        "requirements",
        "k8s_schema",
        "kubernetes-validate",
        "shellcheck",
        "hadolint",
        "code_blocks",
    ]
    assert suite.all_passed, suite
    assert suite.score == 1.0
