"""The process skeleton every background worker shares: connect, provision, serve ops, run until a signal.

SIGTERM/SIGINT stop the consumer loops (the job in hand finishes or is left for redelivery), then the
NATS connection is drained. A worker that crashes makes the process exit non-zero, so a supervisor
(``deksdenflow run``, Kubernetes) sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

from nats.aio.client import Client as NATS

from deksdenflow_core.eventstore import JetStreamEventStore, connect
from deksdenflow_core.logging import get_logger
from deksdenflow_core.ops import OpsServer
from deksdenflow_core.settings import EventStoreSettings

log = get_logger(__name__)


class Runnable(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


async def serve_worker(
    name: str,
    build: Callable[[JetStreamEventStore, NATS], Awaitable[Runnable]],
    *,
    ops_host: str,
    ops_port: int,
    metrics: Callable[[], bytes],
    stop_timeout_seconds: float = 30.0,
) -> int:
    """Run the worker ``build`` makes until SIGTERM/SIGINT; returns the exit code."""
    settings = EventStoreSettings()
    nc = await connect(settings, name=f"deksdenflow-{name}")
    store = JetStreamEventStore(nc, settings)
    await store.provision()
    worker = await build(store, nc)

    async def health() -> dict[str, str]:
        return {"nats": "ok" if nc.is_connected else "disconnected"}

    ops = OpsServer(ops_host, ops_port, health=health, metrics=metrics) if ops_port else None
    if ops is not None:
        await ops.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    log.info(f"{name} running", ops_port=ops.bound_port if ops else None, stream=settings.stream_name)
    code = 0
    task = asyncio.create_task(worker.run())
    try:
        await task
    except Exception as exc:
        log.error(f"{name} crashed", error=repr(exc))
        code = 1
    finally:
        if not task.done():
            worker.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, stop_timeout_seconds)
        if ops is not None:
            await ops.stop()
        with contextlib.suppress(Exception):
            await nc.drain()
    log.info(f"{name} stopped", exit_code=code)
    return code
