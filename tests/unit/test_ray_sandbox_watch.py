"""A sandbox run on Ray waits for its task while watching the cluster: it gives up only when no worker node has
been alive for the grace period (every worker lost, the retry waiting for a node that never comes), never because
the task merely takes long; giving up never touches Ray's own future, which Ray Client settles from its thread.
Ray's side is covered by tests/e2e/test_ray_cluster_failover.py on a real cluster."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from orchestrator.adapters.ray.sandbox import NoWorkerError, detached_result, wait_while_workers


def liveness(answers: list[bool]) -> tuple[Callable[[], Awaitable[bool]], list[bool]]:
    """A cluster that answers from `answers` (the last one again once they run out), recording each answer."""
    asked: list[bool] = []

    async def workers_alive() -> bool:
        asked.append(answers[min(len(asked), len(answers) - 1)])
        return asked[-1]

    return workers_alive, asked


async def finishes_after(delay_s: float, value: str) -> str:
    await asyncio.sleep(delay_s)
    return value


async def test_a_run_that_outlasts_the_grace_while_workers_are_alive_returns_its_result() -> None:
    alive, asked = liveness([True])

    result = await wait_while_workers(finishes_after(0.5, "done"), alive, grace_s=0.1, period_s=0.05)

    assert result == "done" and len(asked) >= 3  # watched all along, never given up


async def test_a_run_with_no_worker_alive_for_the_grace_gives_up_and_is_cancelled() -> None:
    alive, _ = liveness([True, False])
    never = asyncio.get_running_loop().create_future()
    started = time.monotonic()

    with pytest.raises(NoWorkerError) as raised:
        await wait_while_workers(never, alive, grace_s=0.3, period_s=0.05)

    assert 0.3 <= time.monotonic() - started < 2.0
    assert raised.value.grace_s == 0.3 and "no alive Ray worker node" in str(raised.value)
    assert never.cancelled()


async def test_a_worker_that_comes_back_within_the_grace_restarts_the_count() -> None:
    # Two stretches of about 0.5 s without a worker, one alive answer between: more than the 1 s grace in all,
    # never in a row, so the run waits it out.
    alive, asked = liveness([False] * 6 + [True] + [False] * 6 + [True])

    result = await wait_while_workers(finishes_after(2.0, "ran"), alive, grace_s=1.0, period_s=0.1)

    assert result == "ran" and asked[:13].count(False) == 12


async def test_the_task_s_own_error_is_raised_as_it_is() -> None:
    alive, _ = liveness([True])

    async def fails() -> str:
        raise RuntimeError("worker crashed")

    with pytest.raises(RuntimeError, match="worker crashed"):
        await wait_while_workers(fails(), alive, grace_s=1.0, period_s=0.05)


class FakeRef:
    """What an ObjectRef offers here: `future()`, settled later from another thread (as Ray Client does)."""

    def __init__(self) -> None:
        self.ray_future: concurrent.futures.Future[str] = concurrent.futures.Future()

    def future(self) -> concurrent.futures.Future[str]:
        return self.ray_future

    def settle_from_thread(self, result: str | Exception) -> None:
        def settle() -> None:
            if isinstance(result, Exception):
                self.ray_future.set_exception(result)  # raises InvalidStateError if it had been cancelled
            else:
                self.ray_future.set_result(result)

        thread = threading.Thread(target=settle)
        thread.start()
        thread.join()


async def test_a_detached_result_carries_ray_s_result_and_error() -> None:
    ok, failed = FakeRef(), FakeRef()
    first, second = detached_result(ok), detached_result(failed)

    ok.settle_from_thread("value")
    failed.settle_from_thread(RuntimeError("task failed"))

    assert await first == "value"
    with pytest.raises(RuntimeError, match="task failed"):
        await second


async def test_giving_up_on_a_run_leaves_ray_s_future_for_ray_to_settle() -> None:
    ref = FakeRef()
    alive, _ = liveness([False])

    with pytest.raises(NoWorkerError):
        await wait_while_workers(detached_result(ref), alive, grace_s=0.1, period_s=0.02)

    assert not ref.ray_future.cancelled()
    ref.settle_from_thread(RuntimeError("TaskCancelledError"))  # what ray.cancel makes of it, later
    await asyncio.sleep(0.05)  # the copy to the loop runs and finds nobody waiting
    assert isinstance(ref.ray_future.exception(), RuntimeError)
