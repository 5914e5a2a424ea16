"""A shutdown that hangs ends the process: what it waits on is logged, the caller's last words said, exit 3."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.e2e.conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import asyncio

    from orchestrator.config.logging_setup import configure_logging
    from orchestrator.runner import exit_if_shutdown_hangs


    async def never_closes(closed: asyncio.Event) -> None:
        await closed.wait()  # a close that never comes


    async def main() -> None:
        stop = asyncio.Event()
        watchdog = asyncio.create_task(exit_if_shutdown_hangs(stop, {limit}, lambda: print("last words", flush=True)))
        stop.set()
        await asyncio.create_task(never_closes(asyncio.Event()), name="stuck-close")
        watchdog.cancel()


    configure_logging("json", "INFO")
    asyncio.run(main())
    """
)


def run(limit: float, hang: bool = True) -> subprocess.CompletedProcess[str]:
    script = SCRIPT.format(limit=limit)
    if not hang:
        script = script.replace("await closed.wait()", "await asyncio.sleep(0)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "services")}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_a_shutdown_that_hangs_logs_what_it_waits_on_and_exits() -> None:
    done = run(0.5)
    assert done.returncode == 3, done.stderr
    assert "last words" in done.stdout
    logged = done.stdout + done.stderr
    assert "shutdown_stuck" in logged and "stuck-close" in logged and "never_closes" in logged


def test_a_shutdown_that_finishes_in_time_is_left_alone() -> None:
    done = run(5.0, hang=False)
    assert done.returncode == 0, done.stderr
    assert "last words" not in done.stdout and "shutdown_stuck" not in done.stdout + done.stderr
