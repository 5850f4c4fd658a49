"""Composition root of the projector process: settings, connections, migrations, loop, HTTP, signals."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import asyncpg
import uvicorn

from deksdenflow_core.eventstore import JetStreamEventStore, connect
from deksdenflow_core.logging import configure_logging, get_logger
from deksdenflow_core.settings import DatabaseSettings, EventStoreSettings, LogSettings
from deksdenflow_projector.http import make_app
from deksdenflow_projector.migrate import migrate
from deksdenflow_projector.projection import init_connection
from deksdenflow_projector.service import Projector
from deksdenflow_projector.settings import ProjectorSettings

log = get_logger(__name__)


async def serve() -> None:
    """Run the projector until SIGTERM/SIGINT, then finish the batch in hand and stop."""
    configure_logging(LogSettings(), service="projector")
    es, db, settings = EventStoreSettings(), DatabaseSettings(), ProjectorSettings()
    await asyncio.to_thread(migrate, db.db_url)
    nc = await connect(es, name="deksdenflow-projector")
    store = JetStreamEventStore(nc, es)
    await store.provision()
    pool = await asyncpg.create_pool(db.db_url, init=init_connection, min_size=1, max_size=3)
    projector = Projector(pool, store, settings)
    server = uvicorn.Server(
        uvicorn.Config(make_app(projector), host=settings.host, port=settings.port, log_level="warning", lifespan="on")
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(projector.run(), name="consume"),
        asyncio.create_task(projector.track_lag(), name="lag"),
        asyncio.create_task(server.serve(), name="http"),
    ]
    log.info("projector running", port=settings.port, stream=store.stream)
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    projector.loop.stop()
    server.should_exit = True
    for task in tasks:
        if task.get_name() == "lag":
            task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=False)
    await pool.close()
    await nc.drain()
    for task in done:
        if task is not waiter and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # re-raise the crash that ended the process


def main() -> None:
    asyncio.run(serve())
