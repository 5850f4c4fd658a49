"""The whole system for API tests: real NATS, a fresh PostgreSQL database, the projector consuming
the log, and the API served by uvicorn on a free port. Clients talk HTTP to it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from deksdenflow_api.app import create_app
from deksdenflow_core.aggregates import Repository
from deksdenflow_core.eventstore import JetStreamEventStore, connect
from deksdenflow_core.settings import ApiSettings, DatabaseSettings, EventStoreSettings
from deksdenflow_projector.migrate import migrate
from deksdenflow_projector.projection import init_connection
from deksdenflow_projector.service import Projector
from deksdenflow_projector.settings import ProjectorSettings
from deksdenflow_runtime.embedded import free_port
from nats.aio.client import Client as NATS
from pydantic import SecretStr

from tests.support import eventually

ADMIN_TOKEN = "test-admin-token"
WEBHOOK_TOKEN = "test-webhook-secret"


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the test process keeps its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class System:
    base_url: str
    repo: Repository
    store: JetStreamEventStore
    db_url: str
    # The store's NATS connection (workers in tests also serve request/reply on it).
    store_nc: NATS
    # The projector (its metrics: the consumers of the log and the feed are sampled there).
    projector: Projector
    # The log's settings (another API process of the same deployment is made with them).
    event_store: EventStoreSettings

    def client(self, **headers: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10)

    def admin(self) -> httpx.AsyncClient:
        return self.client(Authorization=f"Bearer {ADMIN_TOKEN}")


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    """API settings a test module wants different (override this fixture in the module)."""
    return {}


@pytest.fixture
async def system(nats_url: str, fresh_db_url: str, api_overrides: dict[str, Any]) -> AsyncIterator[System]:
    suffix = uuid.uuid4().hex[:10]
    es = EventStoreSettings(nats_url=nats_url, stream_name=f"DF_API_{suffix}", subject_prefix=f"a{suffix}")
    await asyncio.to_thread(migrate, fresh_db_url)
    nc = await connect(es, name="tests-projector")
    store = JetStreamEventStore(nc, es)
    await store.provision()
    pool = await asyncpg.create_pool(fresh_db_url, init=init_connection, min_size=1, max_size=3)
    projector = Projector(pool, store, ProjectorSettings(batch_size=200))
    projecting = asyncio.create_task(projector.run())
    port = free_port()
    settings = ApiSettings(
        api_port=port,
        api_token=SecretStr(ADMIN_TOKEN),
        webhook_token=SecretStr(WEBHOOK_TOKEN),
        webhook_max_body_bytes=64 * 1024,
        **{"read_wait_timeout_seconds": 5, "sse_keepalive_seconds": 1, **api_overrides},
    )
    app = create_app(settings, event_store=es, database=DatabaseSettings(db_url=fresh_db_url))
    server = _Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, lifespan="on", timeout_graceful_shutdown=5
        )
    )
    serving = asyncio.create_task(server.serve())

    def started() -> bool:
        if serving.done():
            serving.result()  # a server that could not start raises its error here
        return bool(server.started)

    await eventually(started, within=15, what="the API to start")
    try:
        yield System(
            base_url=f"http://127.0.0.1:{port}",
            repo=Repository(store),
            store=store,
            db_url=fresh_db_url,
            store_nc=nc,
            projector=projector,
            event_store=es,
        )
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)
        projector.stop()
        await asyncio.wait_for(projecting, 15)
        await pool.close()
        await nc.request(f"$JS.API.STREAM.DELETE.{es.stream_name}", b"", timeout=5)
        await nc.request(f"$JS.API.STREAM.DELETE.KV_{es.stream_name}_IDEMPOTENCY", b"", timeout=5)
        await nc.request(f"$JS.API.STREAM.DELETE.KV_{es.stream_name}_SPEC_AUDIT", b"", timeout=5)
        await nc.drain()
