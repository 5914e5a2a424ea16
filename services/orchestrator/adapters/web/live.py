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
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from orchestrator.adapters.web.pages import holder
from orchestrator.application.service import Orchestrator
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import OrchestratorError
from orchestrator.domain.model import DeliberationStatus

log = structlog.get_logger(__name__)

MIN_INTERVAL_S = 0.5
HEARTBEAT_S = 15.0
RUNNING_CHECK_S = 1.0
MAX_FOLLOWED = 500


@dataclass
class Streams:
    """The open event streams, ended at shutdown."""

    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


STREAMS = web.AppKey("streams", Streams)


@dataclass(eq=False)
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
    producer = asyncio.create_task(_guarded(produce, latest))
    try:
        response = await _open(request)
        with contextlib.suppress(ConnectionResetError):
            await _send_until_done(response, latest, event)
        return response
    finally:
        producer.cancel()
        streams.discard(task)


async def _guarded(produce: Callable[[Latest], Coroutine[Any, Any, None]], latest: Latest) -> None:
    """A producer that fails ends its stream (the page falls back to polling) and says why in the log."""
    try:
        await produce(latest)
    except Exception as exc:
        log.warning("web_stream_failed", error=f"{type(exc).__name__}: {exc}")
        latest.put({"error": type(exc).__name__}, done=True)


async def deliberation_events(request: web.Request) -> web.StreamResponse:
    task_id = request.match_info["task_id"]
    app = holder(request).app
    await app.get_result(task_id)  # 404 before the stream starts, not inside it

    async def produce(latest: Latest) -> None:
        async for update in app.watch(task_id):
            latest.put(_state(update.snapshot), done=update.final)

    return await _stream(request, "update", produce)


@dataclass
class ListFeed:
    """One follower of the running deliberations for all the list's streams, so their number costs nothing:
    every RUNNING_CHECK_S it asks the application which deliberations are pending or running (the store: runs
    of other replicas count too), follows each through `watch`, and tells every subscriber of any change."""

    subscribers: set[Latest] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def subscribe(self, app: Orchestrator, latest: Latest) -> Iterator[None]:
        self.subscribers.add(latest)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(app))
        try:
            yield
        finally:
            self.subscribers.discard(latest)
            if not self.subscribers and self.task is not None:
                self.task.cancel()
                self.task = None

    def _tell(self, data: dict[str, object]) -> None:
        for latest in self.subscribers:
            latest.put(data)

    async def _follow(self, app: Orchestrator, task_id: str) -> None:
        with contextlib.suppress(OrchestratorError):  # gone meanwhile: the next look says so
            async for update in app.watch(task_id):
                self._tell(_state(update.snapshot))

    async def _look(self, app: Orchestrator) -> tuple[set[str], str]:
        """The pending and running deliberations, and the newest one (a run shorter than a look is seen so)."""
        found: set[str] = set()
        for status in (DeliberationStatus.PENDING, DeliberationStatus.IN_PROGRESS):
            page, _ = await app.list_deliberations(status=status, role="", page_size=MAX_FOLLOWED, page_token="")
            found.update(d.task_id for d in page)
        newest, _ = await app.list_deliberations(status=None, role="", page_size=1, page_token="")
        return found, newest[0].task_id if newest else ""

    async def _run(self, app: Orchestrator) -> None:
        followers: dict[str, asyncio.Task[None]] = {}
        newest = None
        try:
            while True:
                try:
                    running, latest_id = await self._look(app)
                except Exception as exc:  # the store is down: the streams stay open, the next look may work
                    log.warning("web_list_feed_failed", error=f"{type(exc).__name__}: {exc}")
                    running, latest_id = set(followers), newest or ""
                if newest is not None and latest_id != newest and latest_id not in running:
                    self._tell({"task_id": latest_id, "status": "finished"})  # started and ended between looks
                newest = latest_id
                for task_id in running - followers.keys():
                    followers[task_id] = asyncio.create_task(self._follow(app, task_id))
                    self._tell({"task_id": task_id, "status": "started"})
                for task_id in followers.keys() - running:
                    followers.pop(task_id).cancel()
                    self._tell({"task_id": task_id, "status": "finished"})
                await asyncio.sleep(RUNNING_CHECK_S)
        finally:
            for follower in followers.values():
                follower.cancel()


LIST_FEED = web.AppKey("list_feed", ListFeed)


async def list_events(request: web.Request) -> web.StreamResponse:
    app = holder(request).app
    feed = request.app[LIST_FEED]

    async def produce(latest: Latest) -> None:
        with feed.subscribe(app, latest):
            await asyncio.Event().wait()  # until the stream ends and cancels this

    return await _stream(request, "changed", produce)


async def close_streams(app: web.Application) -> None:
    """At shutdown: end the open streams, so the server does not wait for browsers that never hang up."""
    for task in list(app[STREAMS].tasks):
        task.cancel()
    if (feed := app[LIST_FEED].task) is not None:
        feed.cancel()
