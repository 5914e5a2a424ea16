"""The sandbox port's domain types, the fake that tests use instead of running code, and the outcome mapping."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator import bootstrap
from orchestrator.adapters.sandbox.bwrap import BwrapConfig
from orchestrator.adapters.sandbox.cgroup import resident_bytes
from orchestrator.adapters.sandbox.layout import Layout, _outermost, _resolve, etc_files, layout_for
from orchestrator.adapters.sandbox.process import Captured, Supervised, to_execution
from orchestrator.config import load_settings
from orchestrator.domain.errors import ConfigError, InvalidArgumentError
from orchestrator.domain.execution import Execution, ExecutionOutcome, SandboxAvailability, SandboxLimits
from orchestrator.entrypoints.monitor import dependencies_line
from orchestrator.entrypoints.report import sandbox_lines
from orchestrator.testing.sandbox import FakeSandbox
from orchestrator.testing.sandbox_required import sandbox_missing

LIMITS = SandboxLimits()


def ended(returncode: int, *, timed_out: bool = False, overflowed: bool = False) -> Supervised:
    return Supervised(returncode, Captured(b"out", False), Captured(b"\xffbad", overflowed), timed_out, overflowed, 5.0)


async def test_the_fake_answers_its_script_in_order_and_records_every_call() -> None:
    failing = Execution(ExecutionOutcome.EXITED, exit_code=1, stderr="AssertionError")
    sandbox = FakeSandbox(executions=[failing])

    first = await sandbox.run({"main.py": "print(1)"}, ["python3", "main.py"], LIMITS)
    second = await sandbox.run({}, ["true"], LIMITS)

    assert first == failing and second.passed
    assert [call.command for call in sandbox.calls] == [("python3", "main.py"), ("true",)]
    assert sandbox.calls[0].files == {"main.py": "print(1)"}


async def test_the_fake_can_answer_from_the_call_it_gets() -> None:
    sandbox = FakeSandbox(respond=lambda call: Execution(ExecutionOutcome.EXITED, 0, stdout=call.command[-1]))

    execution = await sandbox.run({}, ["echo", "hi"], LIMITS)

    assert execution.stdout == "hi"


async def test_a_fake_without_sandbox_skips_every_run_and_says_why() -> None:
    sandbox = FakeSandbox(available=False, unavailable_reason="no user namespaces")

    execution = await sandbox.run({}, ["true"], LIMITS)

    assert execution.skipped and execution.detail == "no user namespaces"
    assert not (await sandbox.probe()).available
    assert "execution checks are skipped" in sandbox.availability().summary


def test_limits_must_be_positive() -> None:
    with pytest.raises(InvalidArgumentError, match="wall_seconds"):
        SandboxLimits(wall_seconds=0)


def test_an_exit_code_is_kept_and_invalid_utf8_replaced() -> None:
    execution = to_execution(ended(2), LIMITS)

    assert execution.outcome is ExecutionOutcome.EXITED and execution.exit_code == 2
    assert execution.stdout == "out" and execution.stderr == "\ufffdbad"


def test_a_signal_passed_on_by_bwrap_is_a_kill_and_sigxcpu_a_timeout() -> None:
    killed = to_execution(ended(128 + signal.SIGSEGV), LIMITS)
    cpu = to_execution(ended(128 + signal.SIGXCPU), LIMITS)
    direct = to_execution(ended(-signal.SIGKILL), LIMITS)

    assert killed.outcome is ExecutionOutcome.KILLED and killed.killed_by_signal == signal.SIGSEGV
    assert cpu.timed_out and "CPU" in cpu.detail
    assert direct.killed_by_signal == signal.SIGKILL and direct.exit_code is None


def test_the_wall_deadline_and_the_output_cap_win_over_the_kill_signal() -> None:
    late = to_execution(ended(137, timed_out=True), LIMITS)
    loud = to_execution(ended(137, overflowed=True), LIMITS)

    assert late.timed_out and "wall" in late.detail
    assert loud.outcome is ExecutionOutcome.OUTPUT_LIMIT and loud.truncated


# --- the allow-list, the bound, and a host without a sandbox -----------------------------------------------


def test_a_run_memory_bound_must_be_positive_and_the_sandbox_bound_sensible() -> None:
    with pytest.raises(InvalidArgumentError, match="total_memory_bytes"):
        SandboxLimits(total_memory_bytes=0)
    with pytest.raises(InvalidArgumentError, match="run_memory_bytes"):
        BwrapConfig(run_memory_bytes=1024)
    assert SandboxLimits().total_memory_bytes is None  # the sandbox's configured bound
    assert BwrapConfig().run_memory_bytes == 1024 * 1024 * 1024


def test_the_generated_etc_names_only_the_sandbox_user() -> None:
    files = etc_files()

    assert files["/etc/passwd"] == "sandbox:x:1000:1000:sandbox:/work:/usr/sbin/nologin\n"
    assert files["/etc/group"] == "sandbox:x:1000:\n"
    assert "root" not in "".join(files.values())


def test_symlinks_on_the_way_to_a_file_are_recreated_and_nested_entries_dropped(tmp_path: Path) -> None:
    real = tmp_path / "usr" / "lib"
    real.mkdir(parents=True)
    (real / "libx.so.1.2").write_text("")
    (real / "libx.so.1").symlink_to("libx.so.1.2")
    (tmp_path / "lib").symlink_to("usr/lib")
    links: dict[str, str] = {}

    resolved = _resolve(str(tmp_path / "lib" / "libx.so.1"), links)

    assert resolved == str(real / "libx.so.1.2")
    assert links == {str(tmp_path / "lib"): "usr/lib", str(real / "libx.so.1"): "libx.so.1.2"}
    assert _outermost({"/a/b", "/a/b/c.so", "/a/bc", "/d"}) == ["/d", "/a/b", "/a/bc"]
    layout = Layout("/p/bin/python", ("/p/lib/python3.11",), (("/p/bin/python", "/usr/local/bin/python3"),), {})
    assert layout.directories() == ["/p", "/usr", "/p/lib", "/usr/local", "/usr/local/bin"]


def test_the_layout_of_this_interpreter_holds_it_and_its_stdlib_and_nothing_of_the_checkout() -> None:
    layout = layout_for(sys.executable)
    checkout = str(Path(__file__).resolve().parents[2])

    assert layout.python == os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    assert os.path.dirname(os.__file__) in layout.binds
    assert not [p for p in layout.binds if p.startswith(checkout) or p.startswith(("/etc/passwd", "/home", "/var"))]
    assert {"prlimit", "setpriv", "sh", "chmod", "chown"} <= set(layout.tools)


def test_the_accounting_fallback_sums_a_process_tree() -> None:
    assert resident_bytes(os.getpid()) > 1024 * 1024
    assert resident_bytes(2**22 + 12345) == 0  # no such process: nothing, no error


def test_without_a_sandbox_the_summary_says_not_executed_in_plain_words() -> None:
    summary = SandboxAvailability(False, "bubblewrap", "bwrap: No permissions").summary

    assert summary.startswith("NOT EXECUTED: no working sandbox (bubblewrap: bwrap: No permissions)")
    assert "execution checks are skipped" in summary
    assert SandboxAvailability(True, "bubblewrap").summary == "available (bubblewrap)"


def test_the_monitor_shows_not_executed_in_bold_red() -> None:
    line = dependencies_line(SimpleNamespace(llm_status="SERVING", sandbox_status="NOT EXECUTED: no sandbox"))

    assert dict(line)["NOT EXECUTED: no sandbox"] == "bold red"


def test_the_demo_report_says_when_code_was_not_executed() -> None:
    assert (
        sandbox_lines("NOT EXECUTED: no sandbox")[0] == "**Proposals' code was NOT EXECUTED**: NOT EXECUTED: no sandbox"
    )
    assert "ran in the sandbox" in sandbox_lines("available (bubblewrap on Ray workers)")[0]
    assert sandbox_lines("") == []


class _RaySandbox:
    """bootstrap's RaySandbox, answering the probe as told."""

    available = False

    def __init__(self, **_: object) -> None:
        self._availability = SandboxAvailability(type(self).available, "bubblewrap on Ray workers", "no userns")

    async def probe(self) -> SandboxAvailability:
        return self._availability

    def availability(self) -> SandboxAvailability:
        return self._availability


async def test_start_up_refuses_a_host_without_a_sandbox_unless_degraded_mode_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bootstrap, "RaySandbox", _RaySandbox)

    with pytest.raises(ConfigError, match="SANDBOX_DEGRADED_OK=true") as refused:
        await bootstrap.open_verifier_sandbox(load_settings())
    degraded = await bootstrap.open_verifier_sandbox(load_settings(sandbox_degraded_ok=True))

    assert "no userns" in str(refused.value)
    assert degraded.availability().summary.startswith("NOT EXECUTED")


async def test_start_up_takes_a_working_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootstrap, "RaySandbox", type("Working", (_RaySandbox,), {"available": True}))

    assert (await bootstrap.open_verifier_sandbox(load_settings())).availability().available


def test_the_sandbox_settings_and_what_they_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_DEGRADED_OK", "true")
    monkeypatch.setenv("SANDBOX_RUN_MEMORY_MB", "2048")
    monkeypatch.setenv("SANDBOX_PYTHON", "/usr/bin/python3")
    settings = load_settings()

    config = bootstrap.sandbox_config(settings)

    assert settings.sandbox_degraded_ok
    assert config.run_memory_bytes == 2048 * 1024 * 1024 and config.python == "/usr/bin/python3"


def test_in_ci_a_missing_sandbox_fails_the_test_instead_of_skipping_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI requires the sandbox"):
        sandbox_missing("no user namespaces")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="no sandbox on this host"):
        sandbox_missing("no user namespaces")
