"""Reads that wait for this process's own writes, when the read model does not move: one read pays the
bound per stall, not every read of the process."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from deksdenflow_core.readmodel import WRITER_LOCK_KEY

from tests.api.conftest import System
from tests.support import eventually


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    return {"read_wait_timeout_seconds": 1}


async def _waits(system: System) -> dict[str, float]:
    async with system.client() as client:
        text = (await client.get("/metrics")).text
    prefix = "deksdenflow_api_own_write_waits_total{outcome="
    return {
        line[len(prefix) + 1 : line.index('"}')]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


async def test_a_stalled_read_model_makes_one_read_wait_not_every_read(system: System) -> None:
    async with system.admin() as admin:
        first = await admin.post(
            "/projects", json={"name": "a", "git_url": "file:///a.git", "onboard": False}
        )
        assert (await admin.get(f"/projects/{first.json()['id']}")).status_code == 200
        holder = await asyncpg.connect(system.db_url)
        held = holder.transaction()
        await held.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK_KEY)  # the projector stalls
        try:
            second = await admin.post(
                "/projects", json={"name": "b", "git_url": "file:///b.git", "onboard": False}
            )
            assert second.status_code == 201, second.text
            before = await _waits(system)
            for _ in range(5):
                assert (await admin.get("/projects")).status_code == 200
            after = await _waits(system)
            assert after.get("timed_out", 0) - before.get("timed_out", 0) == 1, after
            assert after.get("skipped", 0) - before.get("skipped", 0) == 4, after
        finally:
            await held.rollback()
            await holder.close()

        # The projector moves again (it catches up with what it held) and reads wait for this process's
        # writes again: a new write is seen by the read right after it.
        async def projected() -> bool:
            return (await admin.get(f"/projects/{second.json()['id']}")).status_code == 200

        await eventually(projected, within=30, what="the held write to be projected")
        third = await admin.post(
            "/projects", json={"name": "c", "git_url": "file:///c.git", "onboard": False}
        )
        read = await admin.get(f"/projects/{third.json()['id']}")
        assert read.status_code == 200, read.text
