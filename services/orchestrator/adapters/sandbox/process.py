"""Supervising one child process without blocking the event loop: output read and capped as it arrives, the
wall deadline enforced, the result mapped to an `Execution`. Shared by the bubblewrap and the unsandboxed runner."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from orchestrator.domain.execution import Execution, ExecutionOutcome, SandboxLimits

READ_CHUNK = 65536
EXIT_POLL_S = 0.01
REAP_POLL_S = 0.001
DRAIN_GRACE_S = 1.0
"""After the process has ended, how long to wait for its pipes to close (a child that escaped the kill may
hold them open; we stop reading rather than wait for it)."""


@dataclass(frozen=True)
class Captured:
    data: bytes
    truncated: bool


@dataclass(frozen=True)
class Supervised:
    returncode: int
    stdout: Captured
    stderr: Captured
    timed_out: bool
    overflowed: bool
    wall_ms: float


async def supervise(
    proc: asyncio.subprocess.Process, limits: SandboxLimits, kill: Callable[[], Awaitable[None]]
) -> Supervised:
    """Waits for `proc` until it ends, passes the wall deadline, or overflows its output; then `kill()`s it
    (which must return once every process of the run is gone)."""
    started = time.monotonic()
    assert proc.stdout is not None and proc.stderr is not None
    overflow = asyncio.Event()
    sinks = (_Sink(), _Sink())
    readers = [
        asyncio.create_task(_read_capped(stream, sink, limits.max_output_bytes, overflow))
        for stream, sink in zip((proc.stdout, proc.stderr), sinks, strict=True)
    ]
    ended = asyncio.create_task(exit_code(proc))
    overflowed = asyncio.create_task(overflow.wait())
    try:
        done, _ = await asyncio.wait({ended, overflowed}, timeout=limits.wall_seconds, return_when="FIRST_COMPLETED")
        if ended not in done:
            await kill()
        returncode = await ended
        _, unfinished = await asyncio.wait(readers, timeout=DRAIN_GRACE_S)
        for sink, reader in zip(sinks, readers, strict=True):
            # A pipe still open after the grace is held by a process that escaped the kill: what it wrote
            # after this point is lost, so the output counts as cut.
            sink.truncated |= reader in unfinished
        if unfinished:
            close_pipes(proc)
    finally:
        for task in (*readers, ended, overflowed):
            task.cancel()
    out, err = (Captured(bytes(sink.buffer), sink.truncated) for sink in sinks)
    return Supervised(
        returncode=returncode,
        stdout=out,
        stderr=err,
        timed_out=not done,
        overflowed=overflow.is_set(),
        wall_ms=(time.monotonic() - started) * 1000,
    )


async def exit_code(proc: asyncio.subprocess.Process) -> int:
    """The return code once `proc` has exited.

    Not proc.wait(): it also waits for the output pipes to close, which a process that outlived the run (possible
    only without a sandbox) keeps open. The return code is set by asyncio's child watcher once the process has
    exited: a pidfd says when that is (then it is looked for every REAP_POLL_S), else it is looked for every
    EXIT_POLL_S. The pidfd only wakes the wait early; the return code alone ends it."""
    if proc.returncode is not None:
        return proc.returncode
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
    except OSError:  # already reaped (the code is on its way), or no pidfds: poll
        pidfd = None
    try:
        exited = False
        while proc.returncode is None:  # the pidfd wakes it early; the code is set by the watcher
            if pidfd is not None and not exited:
                exited = await _readable(pidfd, EXIT_POLL_S)
            else:
                await asyncio.sleep(REAP_POLL_S if exited else EXIT_POLL_S)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return proc.returncode


async def _readable(fd: int, wait_s: float) -> bool:
    """Whether `fd` became readable within `wait_s` seconds."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, settle, ready)
    try:
        await asyncio.wait_for(ready, wait_s)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


def settle(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


def close_pipes(proc: asyncio.subprocess.Process) -> None:
    transport = getattr(proc, "_transport", None)
    if isinstance(transport, asyncio.SubprocessTransport):
        transport.close()


class _Sink:
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.truncated = False


async def _read_capped(stream: asyncio.StreamReader, sink: _Sink, cap: int, overflow: asyncio.Event) -> None:
    # Past the cap we go on reading and drop the rest, so the pipe reaches its end once the run is killed.
    while chunk := await stream.read(READ_CHUNK):
        room = cap - len(sink.buffer)
        if len(chunk) > room:
            sink.buffer += chunk[:room]
            sink.truncated = True
            overflow.set()
        else:
            sink.buffer += chunk


def to_execution(result: Supervised, limits: SandboxLimits) -> Execution:
    """Maps an ended run to an Execution. A negative return code is a signal (a direct child); codes above 128
    are signals too, as a shell reports them (bubblewrap passes a signalled child on as 128 + signal)."""
    sig = _signal_of(result.returncode)
    outcome, detail = ExecutionOutcome.EXITED, ""
    if result.timed_out:
        outcome, detail = ExecutionOutcome.TIMED_OUT, f"wall time limit of {limits.wall_seconds:g} s"
    elif result.overflowed:
        outcome, detail = ExecutionOutcome.OUTPUT_LIMIT, f"output limit of {limits.max_output_bytes} bytes"
    elif sig == signal.SIGXCPU:
        outcome, detail = ExecutionOutcome.TIMED_OUT, f"CPU time limit of {limits.cpu_seconds:g} s"
    elif sig is not None:
        outcome, detail = ExecutionOutcome.KILLED, signal.Signals(sig).name
    return Execution(
        outcome=outcome,
        exit_code=None if sig is not None else result.returncode,
        stdout=result.stdout.data.decode("utf-8", "replace"),
        stderr=result.stderr.data.decode("utf-8", "replace"),
        stdout_truncated=result.stdout.truncated,
        stderr_truncated=result.stderr.truncated,
        killed_by_signal=sig,
        wall_ms=result.wall_ms,
        detail=detail,
    )


def _signal_of(returncode: int) -> int | None:
    number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    return number if number in _SIGNALS else None


_SIGNALS = frozenset(int(s) for s in signal.Signals)
