"""The projector never stalls for good: a PostgreSQL restart under write load, a consumer that does not
stand at the checkpoint. While it cannot move, its /health says so."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from deksdenflow_core.aggregates import Repository
from deksdenflow_core.consumer import ConsumerLoop
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.settings import EventStoreSettings
from deksdenflow_projector.migrate import migrate
from deksdenflow_projector.projection import init_connection
from deksdenflow_projector.service import Projector
from deksdenflow_projector.settings import ProjectorSettings
from deksdenflow_runtime.embedded import EmbeddedPostgres, free_port

from tests.projector.scenario import drive
from tests.projector.test_process import ProjectorProcess
from tests.projector.test_projection import assert_equals_a_rebuild, log_positions, projected_positions
from tests.support import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
async def own_postgres() -> AsyncIterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, to be stopped and started again (not the session's)."""
    home = Path(tempfile.mkdtemp(prefix="df-pgrestart-"))
    server = EmbeddedPostgres(home, port=free_port(), durable=False)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()
        shutil.rmtree(home, ignore_errors=True)


async def _health(port: int) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/health", timeout=2)
    return response.status_code, response.json()


async def test_a_postgresql_restart_under_write_load_is_caught_up_by_itself(
    own_postgres: EmbeddedPostgres,
    store_settings: EventStoreSettings,
    store: JetStreamEventStore,
    repo: Repository,
) -> None:
    proc = ProjectorProcess(
        {
            **os.environ,
            "DEKSDENFLOW_NATS_URL": store_settings.nats_url,
            "DEKSDENFLOW_STREAM_NAME": store_settings.stream_name,
            "DEKSDENFLOW_SUBJECT_PREFIX": store_settings.subject_prefix,
            "DEKSDENFLOW_DB_URL": own_postgres.url,
            "DEKSDENFLOW_PROJECTOR_PORT": str(free_port()),
            "DEKSDENFLOW_PROJECTOR_BATCH_SIZE": "20",
            "DEKSDENFLOW_PROJECTOR_STALL_AFTER_SECONDS": "2",
            "DEKSDENFLOW_PROJECTOR_LAG_INTERVAL_SECONDS": "0.2",
            "DEKSDENFLOW_LOG_JSON": "1",
        }
    )
    writing = asyncio.Event()
    writing.set()

    async def write() -> None:
        while writing.is_set():
            await drive(repo, projects=1, runs_per_project=1)

    proc.start()
    writer = asyncio.create_task(write())
    try:

        async def applied_some() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                status, body = await _health(proc.port)
                return status == 200 and int(str(body["checkpoint"])) > 50
            return False

        await eventually(applied_some, within=60, what="the projector applying events")
        await own_postgres.stop()

        async def stalled() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                status, body = await _health(proc.port)
                return status == 503 and body["status"] == "stalled" and "not moved" in str(body["reason"])
            return False

        await eventually(stalled, within=30, what="/health to report the stall")
        await own_postgres.start()

        async def moving_again() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return (await _health(proc.port))[0] == 200
            return False

        await eventually(moving_again, within=30, what="the projector moving again under load")
        writing.clear()
        await asyncio.wait_for(writer, 30)
        last = await store.stream_last_seq()

        async def caught_up() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                status, body = await _health(proc.port)
                return status == 200 and body["checkpoint"] == last
            return False

        await eventually(caught_up, within=30, what=f"the checkpoint reaching the stream's end ({last})")
        assert proc.proc is not None
        assert proc.proc.poll() is None, "the projector kept running"
        assert proc.stop() in (0, -signal.SIGTERM)
    finally:
        writing.clear()
        writer.cancel()
        with contextlib.suppress(BaseException):
            await writer
        if proc.proc and proc.proc.poll() is None:
            proc.kill()
    db = await asyncpg.connect(own_postgres.url)
    try:
        positions = await projected_positions(db)
    finally:
        await db.close()
    assert positions == await log_positions(store), "every event applied exactly once"
    await assert_equals_a_rebuild(own_postgres.url, store)


async def test_the_projector_starts_after_its_checkpoint_wherever_its_consumer_stands(
    store: JetStreamEventStore, repo: Repository, fresh_db_url: str
) -> None:
    """The JetStream consumer acknowledged more than the read model holds (a read model restored from an
    older backup, or acks of batches that never committed): the checkpoint decides where to start."""
    await drive(repo, projects=2, runs_per_project=2)
    last = await store.stream_last_seq()
    await asyncio.to_thread(migrate, fresh_db_url)
    pool = await asyncpg.create_pool(fresh_db_url, init=init_connection, min_size=1, max_size=3)
    projector = Projector(pool, store, ProjectorSettings(batch_size=10))
    # The consumer stands at the middle of the log; the read model is empty.
    js = store.jetstream()
    await ConsumerLoop(js, store.stream, projector.loop._spec).ensure_consumer()
    psub = await js.pull_subscribe_bind(projector.loop._spec.durable, stream=store.stream)
    msgs = await psub.fetch(last // 2, timeout=5)
    await msgs[-1].ack()  # acknowledges every earlier message too
    await psub.unsubscribe()
    running = asyncio.create_task(projector.run())
    try:
        await eventually(lambda: projector.last_seq == last, within=30, what="the whole log applied")
        assert await projected_positions(pool) == await log_positions(store)
    finally:
        projector.stop()
        await asyncio.wait_for(running, 15)
        await pool.close()
    await assert_equals_a_rebuild(fresh_db_url, store)
