"""The sandbox port's domain types, the fake that tests use instead of running code, and the outcome mapping."""

from __future__ import annotations

import signal

import pytest

from orchestrator.adapters.sandbox.process import Captured, Supervised, to_execution
from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.execution import Execution, ExecutionOutcome, SandboxLimits
from orchestrator.testing.sandbox import FakeSandbox

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
