"""Ready means ready: readiness follows the read model, and a client reads its own writes without a header."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
import uvicorn
from deksdenflow_api.app import create_app
from deksdenflow_core.aggregates import Repository
from deksdenflow_core.eventstore import JetStreamEventStore, connect
from deksdenflow_core.readmodel import WRITER_LOCK_KEY
from deksdenflow_core.settings import ApiSettings, DatabaseSettings, EventStoreSettings
from deksdenflow_projector.migrate import migrate
from deksdenflow_projector.projection import init_connection
from deksdenflow_projector.service import Projector
from deksdenflow_projector.settings import ProjectorSettings
from deksdenflow_runtime.embedded import free_port
from pydantic import SecretStr

from tests.api.conftest import ADMIN_TOKEN, System, _Server
from tests.projector.scenario import drive
from tests.support import eventually


async def test_a_write_then_a_read_through_the_same_process_sees_the_write(system: System) -> None:
    async with system.admin() as admin:
        for i in range(40):
            created = await admin.post(
                "/projects", json={"name": f"p{i}", "git_url": f"file:///p{i}.git", "onboard": False}
            )
            assert created.status_code == 201, created.text
            project = created.json()
            read = await admin.get(f"/projects/{project['id']}")
            assert read.status_code == 200, f"attempt {i}: {read.text}"
            # The token issued with the project opens it at once, too.
            async with system.client(**{"X-Project-Token": project["project_token"]}) as scoped:
                assert (await scoped.get(f"/projects/{project['id']}")).status_code == 200, f"attempt {i}"
            paused = await admin.post(f"/projects/{project['id']}/protocols", json={"task_name": "t"})
            assert paused.status_code == 201, paused.text
            runs = await admin.get(f"/projects/{project['id']}/protocols")
            assert [r["id"] for r in runs.json()["data"]] == [paused.json()["id"]], f"attempt {i}"


@dataclass
class ApiAlone:
    """An API served without a projector; the test starts one when it wants."""

    base_url: str
    db_url: str
    store: JetStreamEventStore
    repo: Repository

    async def probe(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as client:
            return await client.get(path)


@pytest.fixture
async def api_alone(nats_url: str, fresh_db_url: str) -> AsyncIterator[ApiAlone]:
    suffix = uuid.uuid4().hex[:10]
    es = EventStoreSettings(nats_url=nats_url, stream_name=f"DF_RDY_{suffix}", subject_prefix=f"r{suffix}")
    nc = await connect(es, name="tests-readiness")
    store = JetStreamEventStore(nc, es)
    await store.provision()
    port = free_port()
    settings = ApiSettings(api_port=port, api_token=SecretStr(ADMIN_TOKEN), read_model_stall_seconds=1)
    app = create_app(settings, event_store=es, database=DatabaseSettings(db_url=fresh_db_url))
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: bool(server.started), within=15, what="the API to start")
    try:
        yield ApiAlone(f"http://127.0.0.1:{port}", fresh_db_url, store, Repository(store))
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)
        await nc.request(f"$JS.API.STREAM.DELETE.{es.stream_name}", b"", timeout=5)
        await nc.drain()


async def _status(api: ApiAlone, path: str) -> tuple[int, dict[str, object]]:
    response = await api.probe(path)
    return response.status_code, response.json()


async def test_readiness_waits_for_the_projector_to_catch_up_and_reports_a_stall(api_alone: ApiAlone) -> None:
    api = api_alone
    await drive(api.repo, projects=2, runs_per_project=2)
    last = await api.store.stream_last_seq()
    # NATS and PostgreSQL answer, but no projector has migrated or applied anything.
    await eventually(lambda: _answers(api, "/health", 200), within=30, what="/health to answer 200")
    status, body = await _status(api, "/readyz")
    assert status == 503, body
    assert body["checks"] == {"nats": "ok", "postgres": "ok", "read_model": "down"}
    assert (await api.probe("/livez")).status_code == 200

    await asyncio.to_thread(migrate, api.db_url)
    pool = await asyncpg.create_pool(api.db_url, init=init_connection, min_size=1, max_size=3)
    # Hold the projector's writer lock (as a rebuild's swap does): it consumes but cannot commit, so the
    # read model is behind for as long as the test wants, whatever the machine's speed.
    holder = await asyncpg.connect(api.db_url)
    holding = holder.transaction()
    await holding.start()
    await holder.execute("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK_KEY)
    projector = Projector(pool, api.store, ProjectorSettings(batch_size=7))
    running = asyncio.create_task(projector.run())
    try:
        # Not ready while catching up, ready once caught up.
        await eventually(lambda: _answers(api, "/readyz", 503, "catching up"), within=30, what="catching up")
        assert projector.last_seq < last
        await holding.rollback()
        await eventually(lambda: _answers(api, "/readyz", 200), within=60, what="ready once caught up")
        assert projector.last_seq >= last
    finally:
        await holder.close()
        projector.stop()
        await asyncio.wait_for(running, 15)
    # The projector is gone and events keep coming: a stall, once they have waited long enough.
    await drive(api.repo, projects=1, runs_per_project=1)
    await eventually(lambda: _answers(api, "/readyz", 503, "stalled"), within=30, what="the stall reported")
    projector = Projector(pool, api.store, ProjectorSettings(batch_size=50))
    running = asyncio.create_task(projector.run())
    try:
        await eventually(lambda: _answers(api, "/readyz", 200), within=60, what="ready again")
    finally:
        projector.stop()
        await asyncio.wait_for(running, 15)
        await pool.close()


async def _answers(api: ApiAlone, path: str, status: int, reason: str = "") -> bool:
    try:
        got, body = await _status(api, path)
    except httpx.HTTPError:
        return False
    return got == status and reason in str(body.get("errors", ""))
