"""The projector's ASGI app: ``/health``, ``/livez`` and ``/metrics``, and a lifespan that runs the projector.

``/health`` answers 503 while starting and when the projector or the feed is stalled (decisions waiting,
checkpoint or feed not moving for ``DEKSDENFLOW_PROJECTOR_STALL_AFTER_SECONDS``), with the reason;
``/livez`` only says the process serves.

uvicorn owns the process signals (as in the API): SIGTERM ends the lifespan, which stops the consumer
after the batch in hand, then closes the connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from deksdenflow_core.aio import cancel_and_wait
from deksdenflow_core.logging import get_logger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from deksdenflow_projector.service import Projector

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Started = tuple[Projector, Callable[[], Awaitable[None]]]

log = get_logger(__name__)


class ProjectorApp:
    """``start`` connects and returns the projector and a closer; ``on_crash`` asks the server to exit."""

    def __init__(self, start: Callable[[], Awaitable[Started]], on_crash: Callable[[], None]) -> None:
        self._start = start
        self._on_crash = on_crash
        self.projector: Projector | None = None
        self._close: Callable[[], Awaitable[None]] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.crashed = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        status, ctype, body = self._respond(scope.get("path", ""))
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype.encode())]}
        )
        await send({"type": "http.response.body", "body": body})

    def _respond(self, path: str) -> tuple[int, str, bytes]:
        projector = self.projector
        if path == "/metrics" and projector is not None:
            return 200, CONTENT_TYPE_LATEST, generate_latest(projector.metrics.registry)
        if path == "/livez":
            return 200, "application/json", b'{"status":"ok"}'
        if path == "/health":
            if projector is None:
                return 503, "application/json", b'{"status":"starting"}'
            lag = max(0, projector.stream_last_seq - projector.last_seq)
            feed_lag = max(0, projector.feed.stream_last_seq - projector.feed.log_seq)
            payload: dict[str, object] = {
                "status": "ok",
                "checkpoint": projector.last_seq,
                "lag": lag,
                "feed": {"log_seq": projector.feed.log_seq, "lag": feed_lag},
            }
            if reason := projector.stalled():
                payload.update(status="stalled", reason=reason)
                return 503, "application/json", json.dumps(payload).encode()
            return 200, "application/json", json.dumps(payload).encode()
        return 404, "application/json", b'{"detail":"not found"}'

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _startup(self) -> None:
        projector, self._close = await self._start()
        self._tasks = {
            "consume": asyncio.create_task(projector.run(), name="consume"),
            "lag": asyncio.create_task(projector.track_lag(), name="lag"),
            "consumers": asyncio.create_task(projector.track_consumers(), name="consumers"),
        }
        self._tasks["consume"].add_done_callback(self._crashed)
        self.projector = projector

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("projector loop crashed", error=repr(task.exception()))
            self.crashed = True
            self._on_crash()

    async def _shutdown(self) -> None:
        if self.projector is None:
            return
        self.projector.stop()
        # (again as needed: their loops catch errors, which may stand for a cancellation on Python 3.11)
        await asyncio.gather(cancel_and_wait(self._tasks["lag"]), cancel_and_wait(self._tasks["consumers"]))
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._tasks["consume"], timeout=30)
        if self._close is not None:
            await self._close()
