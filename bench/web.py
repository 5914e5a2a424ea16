"""The web view's costs: how long a big deliberation page takes in a real browser, and whether 50 browsers
following a running deliberation slow it down.

1. Render: headless Chromium (Debian's, through Selenium) loads /deliberations/<id> of a finished record with
   10 proposals x 60 tests (600 matrix cells, every proposal revised twice with its diff) and, as the baseline in
   the same run, one with 3 proposals x 12 tests. Measured per load: Navigation Timing from the start of the
   navigation to the end of the load event (HTML, CSS, script, layout), and the server's answer time alone. The
   page cache is off here, so every load includes rendering the page on the server.
2. Followers: the application composed with the fake agent gateway (fixed latency per call, the real checks) and
   the web view on the same event loop, as `orchestrator serve` runs them. Trials alternate: a deliberation with
   nobody watching, then one with 50 followers, each of which does what the page's script does (the SSE stream,
   and a fetch of the page's live part after every event); the followers run in a separate process. Compared:
   the deliberations' wall times (their records' duration), medians over the trials.

    python bench/web.py [--loads 15] [--trials 5] [--latency 0.5] [--out bench/results/web.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from orchestrator.adapters.web.security import WebSecurity
from orchestrator.adapters.web.server import WebServer, create_web_server
from orchestrator.application.commands import CouncilDefaults, CreateCouncil, Deliberate
from orchestrator.application.service import Orchestrator
from orchestrator.compose import Options, compose
from orchestrator.config.logging_setup import configure_logging
from orchestrator.testing import browser
from orchestrator.testing.fakes import FakeGateway, InMemoryDeliberationStore, fake_ports
from orchestrator.testing.web_records import ranked_deliberation

TASK = "Write a Python function that merges overlapping intervals"
BIG, SMALL = (10, 60), (3, 12)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1),
        "min": round(ordered[0], 1),
        "max": round(ordered[-1], 1),
    }


async def application(latency_s: float) -> tuple[Orchestrator, InMemoryDeliberationStore]:
    records = InMemoryDeliberationStore()
    app = compose(
        fake_ports(FakeGateway(latency_s=latency_s), records=records), Options(CouncilDefaults("fake", 0.7, 256))
    )
    await app.orchestrator.create_council(CreateCouncil(role="DEV", num_agents=5))
    return app.orchestrator, records


async def server_ms(url: str, loads: int) -> list[float]:
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(loads):
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
            times.append((time.perf_counter() - started) * 1000)
    return times


def browser_ms(url: str, loads: int) -> list[float]:
    with browser.chromium() as driver:
        driver.get(url)  # warm: the browser's own start-up is not the page's
        times = []
        for _ in range(loads):
            driver.get(url)
            times.append(browser.load_time_ms(driver))
        cells = int(driver.execute_script("return document.querySelectorAll('#matrix td.cell').length"))
        proposals = int(driver.execute_script("return document.querySelectorAll('article.proposal').length"))
    return [*times, float(cells), float(proposals)]


async def render_bench(loads: int) -> dict[str, Any]:
    app, records = await application(0.0)
    out: dict[str, Any] = {}
    # No page cache: every load renders on the server (the worst case, not the cached page).
    server = create_web_server("127.0.0.1", 0, WebSecurity(), page_cache=0)
    await server.start(app)
    try:
        for agents, tests in (SMALL, BIG):
            task_id = f"render-{agents}x{tests}"
            await records.create(ranked_deliberation(task_id, agents=agents, tests=tests))
            url = f"{server.url()}deliberations/{task_id}"
            measured = await asyncio.to_thread(browser_ms, url, loads)
            times, cells, proposals = measured[:-2], int(measured[-2]), int(measured[-1])
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                size = len(await response.read())
            out[f"{agents}x{tests}"] = {
                "proposals": proposals,
                "matrix_cells": cells,
                "html_bytes": size,
                "browser_load_ms": summary(times),
                "server_answer_ms": summary(await server_ms(url, loads)),
                "loads": loads,
            }
    finally:
        await server.stop()
    big = out[f"{BIG[0]}x{BIG[1]}"]
    out["under_1s"] = big["browser_load_ms"]["max"] < 1000
    return out


# --- followers --------------------------------------------------------------------------------------------------


async def follow(session: aiohttp.ClientSession, base: str, task_id: str, counts: dict[str, int]) -> None:
    """What the page's script does: the event stream, and the live part fetched after each event."""
    async with session.get(f"{base}deliberations/{task_id}/events") as stream:
        async for raw in stream.content:
            line = raw.decode().strip()
            if not line.startswith("event: "):
                continue
            counts["events"] += 1
            async with session.get(f"{base}deliberations/{task_id}?partial=1") as page:
                await page.read()
            counts["fetches"] += 1
            if line == "event: done":
                return


async def followers_client(base: str, n: int) -> None:
    """A separate process: reads a task id per line on stdin, follows it with `n` followers, prints counts."""
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            counts = {"events": 0, "fetches": 0}
            await asyncio.gather(*(follow(session, base, line, counts) for _ in range(n)))
            print(json.dumps(counts), flush=True)


async def one_deliberation(
    app: Orchestrator, client: asyncio.subprocess.Process | None
) -> tuple[float, dict[str, int]]:
    command = Deliberate(TASK, "DEV", rounds=2, task_id=f"follow-{uuid.uuid4().hex[:10]}")
    await app.submit(command)  # the record exists: the followers can attach from the start
    counts = {"events": 0, "fetches": 0}
    if client is not None:
        assert client.stdin is not None
        client.stdin.write(f"{command.task_id}\n".encode())
        await client.stdin.drain()
    record = await app.deliberate(command)  # the same request: waits for the run submitted above
    if client is not None:
        assert client.stdout is not None
        counts = json.loads(await asyncio.wait_for(client.stdout.readline(), 60))
    return record.duration_ms / 1000, counts


async def followers_bench(trials: int, followers: int, latency_s: float) -> dict[str, Any]:
    app, _ = await application(latency_s)
    server: WebServer = create_web_server("127.0.0.1", 0, WebSecurity())
    await server.start(app)
    client = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--followers-client", server.url(), "--followers", str(followers),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    alone, watched, counts = [], [], []
    try:
        await one_deliberation(app, None)  # warm-up, not counted
        for _ in range(trials):
            wall, _ = await one_deliberation(app, None)
            alone.append(wall)
            wall, seen = await one_deliberation(app, client)
            watched.append(wall)
            counts.append(seen)
    finally:
        assert client.stdin is not None
        client.stdin.close()
        await client.wait()
        await server.stop()
    ratio = statistics.median(watched) / statistics.median(alone)
    return {
        "followers": followers,
        "trials": trials,
        "agents": 5,
        "rounds": 2,
        "latency_per_call_s": latency_s,
        "wall_s_alone": [round(w, 3) for w in alone],
        "wall_s_followed": [round(w, 3) for w in watched],
        "median_alone_s": round(statistics.median(alone), 3),
        "median_followed_s": round(statistics.median(watched), 3),
        "ratio": round(ratio, 4),
        "within_5_percent": ratio <= 1.05,
        "events_per_trial": [c["events"] for c in counts],
        "page_fetches_per_trial": [c["fetches"] for c in counts],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=15)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--followers", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--followers-client", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.followers_client:
        await followers_client(args.followers_client, args.followers)
        return
    configure_logging("console", "WARNING")
    if why := browser.missing():
        raise SystemExit(f"the render benchmark needs Chromium: {why}")
    load_before = os.getloadavg()
    render = await render_bench(args.loads)
    for name in (f"{SMALL[0]}x{SMALL[1]}", f"{BIG[0]}x{BIG[1]}"):
        r = render[name]
        print(
            f"render {name}: {r['proposals']} proposals, {r['matrix_cells']} cells, {r['html_bytes']} bytes; "
            f"browser load median {r['browser_load_ms']['median']} ms (max {r['browser_load_ms']['max']}), "
            f"server answer median {r['server_answer_ms']['median']} ms"
        )
    followed = await followers_bench(args.trials, args.followers, args.latency)
    print(
        f"followers: median wall {followed['median_alone_s']} s alone, {followed['median_followed_s']} s with "
        f"{args.followers} followers: ratio {followed['ratio']} (events per trial {followed['events_per_trial']})"
    )
    result = {
        "render": render,
        "followers": followed,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpus": os.cpu_count(),
        "load_average_1m": {"before": round(load_before[0], 1), "after": round(os.getloadavg()[0], 1)},
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
