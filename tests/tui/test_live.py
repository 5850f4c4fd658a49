"""The stream dropped under a run's screen: it resumes from the last event received (Last-Event-ID), and
the events that were appended meanwhile are shown once each, none missing."""

from __future__ import annotations

import asyncio

from deksdenflow_cli import follow
from deksdenflow_cli.client import Client
from deksdenflow_cli.context import Context
from deksdenflow_cli.tui.app import RunScreen

from tests.api.conftest import ADMIN_TOKEN, System
from tests.api.helpers import create_project, create_protocol, planned
from tests.cli.support import CuttableProxy
from tests.support import eventually
from tests.tui.support import column, said, shown, tui


async def test_a_dropped_stream_resumes_with_no_gap_and_no_repeat(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin, "demo")
        run_id, _, _ = await planned(admin, system.repo, project["id"], steps=2)
    proxy = CuttableProxy(system.base_url)
    async with proxy.running() as url, tui(system, "demo/1", url=url) as (app, _):
        await shown(app, RunScreen)
        await asyncio.wait_for(proxy.stream_open.wait(), 120)
        proxy.cut()
        async with system.admin() as admin:  # the run moves while the TUI reconnects
            for action in ("pause", "resume", "cancel"):
                response = await admin.post(f"/protocols/{run_id}/actions/{action}")
                assert response.status_code == 200, response.text
            timeline = (await admin.get(f"/protocols/{run_id}/events", params={"limit": 500})).json()["data"]
        await said(app, "the event stream dropped; resuming after #")
        await eventually(lambda: column(app, 2, "events")[-1] == "cancelled", what="the cancel shown")
        assert column(app, 0, "events") == [str(e["position"]) for e in timeline], "each event once, in order"
        await eventually(lambda: column(app, 2, "steps") == ["cancelled", "cancelled"], what="steps follow")
    assert proxy.streams_opened >= 2


async def test_head_is_the_last_event_however_far_apart_positions_are(system: System) -> None:
    """Positions go by a decision's sequence times 1024, plus the event's index in it: the search for the
    last doubles its steps past it, halves back, and lands on it exactly; scoped as the stream is."""
    client = Client(Context(system.base_url, ADMIN_TOKEN, "test"))

    async def head(**params: str) -> int:
        return await asyncio.to_thread(follow.head, client, params)

    try:
        assert await head() == 0
        async with system.admin() as admin:
            project = await create_project(admin, "demo")
            assert await head() == 1025  # registered (1024) and its token issued (1025)
            for _ in range(3):
                run = await create_protocol(admin, project["id"])
                events = (await admin.get("/events", params={"limit": 500})).json()["data"]
                assert await head() == events[-1]["position"]
            first_run = events[2]["protocol_run_id"]
            assert await head(protocol_run_id=first_run) == events[2]["position"]
            assert await head(protocol_run_id=run["id"]) == events[-1]["position"]
    finally:
        client.close()
