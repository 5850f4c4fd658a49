"""The web console in a real browser: event-to-screen latency, and a run of 10,000 events on screen.

    make bench            (or: uv run python -m bench.console [EVENTS] [SAMPLES])

The API and the projector run as their own processes on embedded NATS and PostgreSQL; Chromium is
Debian's (``/usr/bin/chromium``, or ``DEKSDENFLOW_CHROMIUM``) driven by Playwright. A run's page is open
and signed in; the bench appends an event (pause, resume: one event each) through the API and waits until
the page shows it — the page hears it on the event stream and re-renders its live region. Event-to-screen
is measured from the command's answer (the event is in the log) to the region's swap in the page, both
on this machine's clock. Then the run is driven to EVENTS events (while the page follows it live) and
the figures of a long run are taken: the page's load, the rows in the DOM, the main thread's long tasks
(over 50 ms, from the browser's own ``longtask`` entries), event-to-screen on that run, the events screen
and time travel over the whole history.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import httpx
from deksdenflow_runtime.embedded import free_port
from playwright.async_api import Page, async_playwright

from bench.servers import servers
from bench.system import TOKEN, pct, ready, running, system_env

CHROMIUM = os.environ.get("DEKSDENFLOW_CHROMIUM", "/usr/bin/chromium")
OBSERVE_LONG_TASKS = """() => { window.__dfLong = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__dfLong.push(e.duration); })
    .observe({ type: "longtask", buffered: true }); }"""


async def _flip(api: httpx.AsyncClient, run_id: str, n: int) -> tuple[int, float]:
    """Pause or resume (one event); the event's position and when the API answered (ms, epoch)."""
    answer = await api.post(f"/protocols/{run_id}/actions/{'pause' if n % 2 == 0 else 'resume'}")
    answer.raise_for_status()
    return answer.json()["event_sequence"] * 1024, time.time() * 1000


async def _to_screen(
    page: Page, api: httpx.AsyncClient, run_id: str, samples: int, start: int
) -> tuple[list[float], list[float]]:
    """Event-to-screen of ``samples`` events, and for each the part from its arrival in the page (the
    stream) to the swap (the fragment's fetch and render)."""
    latencies, in_page = [], []
    for n in range(start, start + samples):
        position, appended = await _flip(api, run_id, n)
        seen = f"window.__dfSwaps.find((s) => s.position >= {position})"
        await page.wait_for_function(f"() => Boolean({seen})", timeout=30_000)
        swap = await page.evaluate(f"() => {seen}")
        latencies.append(swap["at"] - appended)
        in_page.append(swap["at"] - swap["heard"])
    return latencies, in_page


async def main(events: int, samples: int) -> None:
    async with servers() as s:
        api_port = free_port()
        env = system_env(s.nats_url, s.db_url, api_port, free_port())
        base = f"http://127.0.0.1:{api_port}"
        with running(env, "deksdenflow_projector", "deksdenflow_api"):
            async with httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
            ) as api:
                await ready(api, "/readyz")
                body = {"name": "bench", "git_url": "file:///b.git", "onboard": False}
                project = (await api.post("/projects", json=body)).json()
                run = (await api.post(f"/projects/{project['id']}/protocols", json={"task_name": "t"})).json()
                run_id = run["id"]
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(
                        executable_path=CHROMIUM, args=["--no-sandbox"]
                    )
                    page = await (await browser.new_context(base_url=base)).new_page()
                    await page.goto("/console/signin")
                    await page.get_by_label("Admin token or project token").fill(TOKEN)
                    await page.get_by_role("button", name="Sign in").click()
                    await page.wait_for_url("**/console/attention")
                    await page.goto(f"/console/runs/{run_id}")
                    await page.wait_for_function("() => Array.isArray(window.__dfSwaps)")
                    await page.wait_for_timeout(500)  # the stream is connected (its first bytes came)
                    fresh, fresh_in_page = await _to_screen(page, api, run_id, samples, 0)

                    await page.evaluate(OBSERVE_LONG_TASKS)
                    began, flips = time.monotonic(), samples
                    while flips + 2 < events:  # created + the flips
                        await _flip(api, run_id, flips)
                        flips += 1
                    fill_seconds = time.monotonic() - began
                    await page.wait_for_function(
                        f"() => window.__dfSwaps.some((s) => s.position >= {(await _last(api, run_id))})",
                        timeout=60_000,
                    )
                    flood_long = await page.evaluate("() => window.__dfLong")

                    began = time.monotonic()
                    await page.goto(f"/console/runs/{run_id}")
                    load_ms = (time.monotonic() - began) * 1000
                    await page.evaluate(OBSERVE_LONG_TASKS)
                    rows = await page.evaluate("() => document.querySelectorAll('tr').length")
                    await page.wait_for_timeout(500)
                    long_run, long_in_page = await _to_screen(page, api, run_id, samples, flips + samples % 2)
                    long_tasks = await page.evaluate("() => window.__dfLong")

                    began = time.monotonic()
                    await page.goto(f"/console/events?protocol_run_id={run_id}")
                    events_ms = (time.monotonic() - began) * 1000
                    event_rows = await page.evaluate(
                        "() => document.querySelectorAll('#events-body tr').length"
                    )
                    began = time.monotonic()
                    await page.goto(f"/console/runs/{run_id}/travel?at={run['event_sequence'] * 1024}")
                    travel_ms = (time.monotonic() - began) * 1000
                    travel_rows = await page.evaluate("() => document.querySelectorAll('tr, li').length")
                    await browser.close()

    print(
        f"console event-to-screen (a fresh run): p50 {pct(fresh, 50):.0f} ms, p95 {pct(fresh, 95):.0f} ms, "
        f"max {max(fresh):.0f} ms ({samples} events, from the API's answer to the page's swap; of which in "
        f"the page, from the stream's message to the swap: p50 {pct(fresh_in_page, 50):.0f} ms, "
        f"p95 {pct(fresh_in_page, 95):.0f} ms) ({s.where})"
    )
    print(
        f"console with a run of {events} events: event-to-screen p50 {pct(long_run, 50):.0f} ms, "
        f"p95 {pct(long_run, 95):.0f} ms (in the page p50 {pct(long_in_page, 50):.0f} ms, "
        f"p95 {pct(long_in_page, 95):.0f} ms); run page load {load_ms:.0f} ms, {rows} table rows in the DOM; "
        f"long tasks (>50 ms) on the page: {len(long_tasks)}"
        + (f" (max {max(long_tasks):.0f} ms)" if long_tasks else "")
    )
    print(
        f"console following {events - samples} events appended at {(events - samples) / fill_seconds:.0f}/s: "
        f"long tasks {len(flood_long)}"
        + (f" (max {max(flood_long):.0f} ms)" if flood_long else "")
        + f"; events screen of the run {events_ms:.0f} ms ({event_rows} rows); time travel over the whole "
        f"history {travel_ms:.0f} ms ({travel_rows} rows)"
    )


async def _last(api: httpx.AsyncClient, run_id: str) -> int:
    """The position of the run's last event."""
    position = after = 0
    while True:
        page = (await api.get(f"/protocols/{run_id}/events", params={"after": after, "limit": 500})).json()[
            "data"
        ]
        if not page:
            return position
        position = after = page[-1]["position"]


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, int(sys.argv[2]) if len(sys.argv) > 2 else 100
        )
    )
