"""``protocol wait`` (exit codes from the state, 124 on timeout) and ``protocol watch`` (the live timeline,
across a dropped connection with no gap and no repeat), as processes reading the real SSE stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd

from tests.api.conftest import System
from tests.api.helpers import as_worker, create_project, planned
from tests.cli.support import CuttableProxy, cli, finish, start


async def _planned_run(system: System) -> str:
    async with system.admin() as admin:
        project = await create_project(admin, "demo")
        run_id, _, _ = await planned(admin, system.repo, project["id"], steps=2)
    return run_id


async def _cancel(system: System, run_id: str) -> None:
    async with system.admin() as admin:
        response = await admin.post(f"/protocols/{run_id}/actions/cancel")
        assert response.status_code == 200, response.text


async def test_wait_exits_with_a_code_from_the_state(system: System, tmp_path: Path) -> None:
    run_id = await _planned_run(system)
    waiting, timed_out = await asyncio.gather(
        cli(system, tmp_path, "protocol", "wait", run_id, "--until", "waiting", "-o", "json"),
        cli(system, tmp_path, "protocol", "wait", run_id, "--until", "completed", "--timeout", "1"),
    )
    assert waiting.code == 0, waiting.stderr
    assert waiting.json()["status"] == "planned"
    assert timed_out.code == 124
    assert "timed out" in timed_out.stderr
    assert "planned" in timed_out.stderr

    until_done = await start(system, tmp_path, "protocol", "wait", run_id, "--field", "status", "-o", "json")
    await _cancel(system, run_id)
    done = await finish(until_done)
    assert done.code == 1, done.stderr
    assert done.stdout.strip() == "cancelled"


async def test_watch_shows_the_timeline_across_a_dropped_connection(system: System, tmp_path: Path) -> None:
    run_id = await _planned_run(system)
    proxy = CuttableProxy(system.base_url)
    async with proxy.running() as url:
        watching = await start(system, tmp_path, "protocol", "watch", run_id, api_url=url)
        assert watching.stdout is not None
        first = (await asyncio.wait_for(watching.stdout.readline(), 120)).decode()
        assert "protocol_run.created" in first
        # The history is printed and the stream open: cut it, and make the run move while the watcher
        # reconnects.
        await asyncio.wait_for(proxy.stream_open.wait(), 30)
        proxy.cut()
        await _cancel(system, run_id)
        rest = await finish(watching)
    assert rest.code == 1, rest.stderr  # cancelled: not a success
    lines = [first, *rest.stdout.splitlines()]
    positions = [int(line.split("#")[1].split()[0]) for line in lines if line.strip()]
    assert positions == sorted(set(positions)), "no event twice, none out of order"
    async with system.admin() as admin:
        timeline = (await admin.get(f"/protocols/{run_id}/events", params={"limit": 500})).json()["data"]
    assert positions == [e["position"] for e in timeline], "no event missing"
    assert "protocol_run.cancelled" in lines[-1] or any("cancelled" in line for line in lines[-3:])
    assert "resuming" in rest.stderr
    assert proxy.streams_opened >= 2


async def test_wait_until_waiting_returns_when_a_manual_run_needs_its_next_action(
    system: System, tmp_path: Path
) -> None:
    async with system.admin() as admin:
        project = await create_project(admin, "demo")
        run_id, steps, _ = await planned(admin, system.repo, project["id"], steps=2)
        ran = await admin.post(f"/steps/{steps[0]}/actions/run")
        assert ran.status_code == 200, ran.text
    # the step is with the codex worker: nothing for a person to do until its execution ends
    waiting = await start(system, tmp_path, "protocol", "wait", run_id, "--until", "waiting", "-o", "json")
    await as_worker(
        system.repo, run_id, cmd.RecordStepExecutionCompleted(step_run_id=steps[0], commit_sha="a1")
    )
    done = await finish(waiting)
    assert done.code == 0, done.stderr
    run = done.json()
    assert (run["status"], run["waiting_for"]) == ("running", "action")
