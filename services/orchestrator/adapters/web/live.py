"""Server-sent events: what makes the pages live. A deliberation's stream follows the update hub through the
application's `watch` (what feeds WatchDeliberation); the list's stream follows every deliberation running here.

An event says only that something changed (and the new status/stage/round); the page then fetches its live part.
Updates are coalesced to at most one event per `MIN_INTERVAL_S` per stream, so a busy run costs a watcher a few
requests a second at most, and the run itself never waits for a watcher (the hub's queues are bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from orchestrator.adapters.web.pages import holder
from orchestrator.application.service import Orchestrator
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import OrchestratorError

MIN_INTERVAL_S = 0.5
HEARTBEAT_S = 15.0
RUNNING_CHECK_S = 1.0


@dataclass
class Streams:
    """The open event streams, ended at shutdown."""

    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


STREAMS = web.AppKey("streams", Streams)


@dataclass
class Latest:
    """The newest state to send, and whether it is unsent."""

    data: dict[str, object] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False

    def put(self, data: dict[str, object], *, done: bool = False) -> None:
        self.data, self.done = data, self.done or done
        self.changed.set()


def _state(d: Deliberation) -> dict[str, object]:
    return {"task_id": d.task_id, "status": d.status.value, "stage": d.stage, "round": d.round}


async def _open(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    return response


async def _send_until_done(response: web.StreamResponse, latest: Latest, event: str) -> None:
    """Sends `latest` whenever it changes (at most every MIN_INTERVAL_S), a comment as heartbeat, and a final
    `done` event when the producer says it is finished."""
    while True:
        try:
            await asyncio.wait_for(latest.changed.wait(), HEARTBEAT_S)
        except TimeoutError:
            await response.write(b": heartbeat\n\n")
            continue
        latest.changed.clear()
        name = "done" if latest.done else event
        await response.write(f"event: {name}\ndata: {json.dumps(latest.data)}\n\n".encode())
        if latest.done:
            return
        await asyncio.sleep(MIN_INTERVAL_S)


async def _stream(
    request: web.Request, event: str, produce: Callable[[Latest], Coroutine[Any, Any, None]]
) -> web.StreamResponse:
    streams = request.app[STREAMS].tasks
    task = asyncio.current_task()
    assert task is not None
    streams.add(task)
    latest = Latest()
    producer = asyncio.create_task(produce(latest))
    try:
        response = await _open(request)
        with contextlib.suppress(ConnectionResetError):
            await _send_until_done(response, latest, event)
        return response
    finally:
        producer.cancel()
        streams.discard(task)


async def deliberation_events(request: web.Request) -> web.StreamResponse:
    task_id = request.match_info["task_id"]
    app = holder(request).app
    await app.get_result(task_id)  # 404 before the stream starts, not inside it

    async def produce(latest: Latest) -> None:
        async for update in app.watch(task_id):
            latest.put(_state(update.snapshot), done=update.final)

    return await _stream(request, "update", produce)


async def _follow_running(app: Orchestrator, latest: Latest) -> None:
    """Every run in this process: an update of any, or a run starting or ending, is a change of the list."""
    followers: dict[str, asyncio.Task[None]] = {}

    async def follow(task_id: str) -> None:
        with contextlib.suppress(OrchestratorError):  # it ended and is gone from here: the loop sees that
            async for update in app.watch(task_id):
                latest.put(_state(update.snapshot))

    try:
        while True:
            running = {d.task_id for d in app.supervisor.running()}
            for task_id in running - followers.keys():
                followers[task_id] = asyncio.create_task(follow(task_id))
            for task_id in followers.keys() - running:
                followers.pop(task_id).cancel()
                latest.put({"task_id": task_id, "status": "finished"})
            await asyncio.sleep(RUNNING_CHECK_S)
    finally:
        for follower in followers.values():
            follower.cancel()


async def list_events(request: web.Request) -> web.StreamResponse:
    app = holder(request).app
    return await _stream(request, "changed", lambda latest: _follow_running(app, latest))


async def close_streams(app: web.Application) -> None:
    """At shutdown: end the open streams, so the server does not wait for browsers that never hang up."""
    for task in list(app[STREAMS].tasks):
        task.cancel()
