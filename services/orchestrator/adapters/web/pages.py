"""The pages: each reads through the application (`Orchestrator`, as the gRPC servicer does) and renders a template.

`?partial=1` answers the live part of a page only: what the page's script swaps in when an update arrives.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from orchestrator.adapters.web import views
from orchestrator.adapters.web.plan_graph import plan_graph
from orchestrator.adapters.web.rendering import render
from orchestrator.adapters.web.security import SECURITY
from orchestrator.application.service import Orchestrator
from orchestrator.domain.deliberation import Deliberation
from orchestrator.domain.errors import InvalidArgumentError
from orchestrator.domain.model import DeliberationStatus, Role

PAGE_SIZE = 25
PLAN_POLL_MS = 3000
"""How often the page of a running plan reloads its live part (plans have no stream of their own)."""


@dataclass
class PageCache:
    """The latest rendered pages by version, least recently used out first."""

    size: int = 128
    pages: OrderedDict[tuple[object, ...], str] = field(default_factory=OrderedDict)

    def get(self, key: tuple[object, ...]) -> str | None:
        body = self.pages.get(key)
        if body is not None:
            self.pages.move_to_end(key)
        return body

    def put(self, key: tuple[object, ...], body: str) -> None:
        self.pages[key] = body
        while len(self.pages) > self.size:
            self.pages.popitem(last=False)


@dataclass(frozen=True)
class Holder:
    """What the pages read through (the application), render with, and keep."""

    env: jinja2.Environment
    app: Orchestrator
    pages: PageCache = field(default_factory=PageCache)


HOLDER = web.AppKey("holder", Holder)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def holder(request: web.Request) -> Holder:
    return request.app[HOLDER]


def page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    partial = request.query.get("partial") == "1"
    name = template.replace(".html", "_live.html") if partial else template
    signed = request.app[SECURITY].tokens is not None
    body = render(holder(request).env, name, sign_out=signed, **context)
    return web.Response(text=body, content_type="text/html", status=status)


def _status_filter(value: str) -> DeliberationStatus | None:
    if not value:
        return None
    try:
        return DeliberationStatus(value.upper())
    except ValueError:
        raise InvalidArgumentError("status", f"one of {', '.join(s.value for s in DeliberationStatus)}") from None


async def index(request: web.Request) -> web.Response:
    """Running and recent deliberations, newest first, paged, filtered by status and role."""
    status_text, role = request.query.get("status", ""), request.query.get("role", "").upper()
    token = request.query.get("page", "")
    rows, next_token = await holder(request).app.list_deliberations(
        status=_status_filter(status_text), role=role, page_size=PAGE_SIZE, page_token=token
    )
    filters = {k: v for k, v in (("status", status_text.upper()), ("role", role)) if v}
    return page(
        request,
        "index.html",
        rows=[views.list_row(d, now_ms()) for d in rows],
        statuses=[s.value for s in DeliberationStatus],
        roles=[r.value for r in Role],
        filters=filters,
        next_page=f"/?{urlencode({**filters, 'page': next_token})}" if next_token else "",
        first_page=f"/?{urlencode(filters)}" if token else "",
        events=f"/events?{urlencode(filters)}",
    )


def _version(d: Deliberation, partial: bool) -> tuple[object, ...]:
    """What a deliberation page depends on: the same version renders the same page."""
    p = d.progress
    return (
        d.task_id,
        d.status,
        d.stage,
        d.round,
        p.stages_done,
        len(p.calls),
        len(p.critiques),
        len(d.results),
        partial,
    )


async def deliberation(request: web.Request) -> web.Response:
    """Rendered once per version of the record: every browser following a run asks for the same page."""
    task_id = request.match_info["task_id"]
    d = await holder(request).app.get_result(task_id)
    partial = request.query.get("partial") == "1"
    key = (*_version(d, partial), request.app[SECURITY].tokens is not None)
    cache = holder(request).pages
    if (body := cache.get(key)) is None:
        originals = _originals(await holder(request).app.history(task_id))
        body = _deliberation_page(request, d, originals).text or ""
        cache.put(key, body)
    return web.Response(text=body, content_type="text/html")


def _originals(checkpoints: list[Deliberation]) -> dict[str, str]:
    """Each author's first proposal, before any revision, from the oldest checkpoint that has it."""
    found: dict[str, str] = {}
    for checkpoint in checkpoints:
        for author, proposal in checkpoint.progress.proposals.items():
            if author not in found and not proposal.revisions:
                found[author] = proposal.content
    return found


def _deliberation_page(request: web.Request, d: Deliberation, originals: dict[str, str]) -> web.Response:
    task_id = d.task_id
    usage = views.stage_usage(d)
    winner = next((r for r in d.results if r.proposal.author_id == d.winner_id), None)
    plan_id = d.source.removeprefix("plan:").split("/", 1)[0] if d.source.startswith("plan:") else ""
    return page(
        request,
        "deliberation.html",
        d=d,
        elapsed_s=views.elapsed_s(d, now_ms()),
        winner=winner,
        plan_id=plan_id,
        proposals=views.proposal_views(d, originals),
        matrix=views.evidence_matrix(d),
        timeline=views.timeline(d),
        usage=usage,
        chart=views.usage_chart(usage),
        events="" if d.status.finished else f"/deliberations/{quote(task_id, safe='')}/events",
    )


async def plan(request: web.Request) -> web.Response:
    dispatch, runs = await holder(request).app.get_plan(request.match_info["plan_id"])
    graph = plan_graph(dispatch, runs)
    poll_ms = 0 if dispatch.finished else PLAN_POLL_MS
    return page(request, "plan.html", dispatch=dispatch, graph=graph, runs=runs, poll_ms=poll_ms)


async def councils(request: web.Request) -> web.Response:
    report = await holder(request).app.status()
    return page(request, "councils.html", report=report, runtime=report.runtime)
