"""Composition root of the projector process: settings, connections, migrations, then uvicorn.

uvicorn owns the signals; the app's lifespan runs the consumer (see ``http``).
"""

from __future__ import annotations

import asyncio
import gc

import asyncpg
import uvicorn
from deksdenflow_core import tracing
from deksdenflow_core.eventstore import JetStreamEventStore, connect
from deksdenflow_core.logging import configure_logging, get_logger
from deksdenflow_core.settings import DatabaseSettings, EventStoreSettings, LogSettings

from deksdenflow_projector.http import ProjectorApp, Started
from deksdenflow_projector.migrate import migrate
from deksdenflow_projector.projection import init_connection
from deksdenflow_projector.service import Projector
from deksdenflow_projector.settings import ProjectorSettings

log = get_logger(__name__)


def tune_gc() -> None:
    """Fewer, shorter collections: startup objects are frozen out of scans, the young generation is
    collected less often. Batches allocate many short-lived objects; this keeps pauses off the tail."""
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def main() -> int:
    """Run the projector until SIGTERM/SIGINT; the return value is the exit code."""
    configure_logging(LogSettings(), service="projector")
    tracing.configure("projector")  # spans only when OTEL_* configures an exporter
    es, db, settings = EventStoreSettings(), DatabaseSettings(), ProjectorSettings()

    async def start() -> Started:
        await asyncio.to_thread(migrate, db.db_url)
        nc = await connect(es, name="deksdenflow-projector")
        store = JetStreamEventStore(nc, es)
        await store.provision()
        pool = await asyncpg.create_pool(
            db.db_url,
            init=init_connection,
            min_size=1,
            max_size=3,
            server_settings={"application_name": "deksdenflow-projector"},
        )

        async def close() -> None:
            await pool.close()
            await nc.drain()

        log.info("projector running", port=settings.port, stream=store.stream)
        return Projector(pool, store, settings), close

    app = ProjectorApp(start, on_crash=lambda: setattr(server, "should_exit", True))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            lifespan="on",
            log_config=None,
        )
    )
    tune_gc()
    server.run()
    return 0 if server.started and not app.crashed else 1
