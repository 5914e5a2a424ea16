"""The sandbox supervisor's follow-up of one unit's process: a report written just before the process exits is
kept, however late the supervisor looks (outside the sandbox: only the parent's bookkeeping is under test)."""

from __future__ import annotations

import os
import time

import pytest

from orchestrator.adapters.checks.sandbox_supervisor import Child, PreparedUnit

pytestmark = pytest.mark.unit


def child_writing(data: bytes, *, linger: bool = False) -> Child:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the forked child
        os.close(read)
        os.write(write, data)
        if linger and os.fork() == 0:  # a process left behind holding the pipe open, saying nothing more
            time.sleep(2)
        os._exit(0)
    os.close(write)
    return Child(PreparedUnit("u-1", "agent:a", [], ""), pid, read, time.monotonic() + 10)


def test_a_report_written_just_before_the_process_exits_is_not_lost() -> None:
    child = child_writing(b'{"ok": true}\n')
    time.sleep(0.3)  # exited with its report unread: what a busy host does between the pipe wait and the exit check
    assert child.over()
    assert child.report == '{"ok": true}' and child.status == 0


def test_a_process_left_behind_holding_the_pipe_does_not_stall_the_supervisor() -> None:
    child = child_writing(b"", linger=True)
    time.sleep(0.3)
    started = time.monotonic()
    assert child.over()
    assert child.report is None and time.monotonic() - started < 0.5
