"""The projector's ASGI app: ``/health`` and ``/metrics``, and a lifespan that runs the projector.

uvicorn owns the process signals (as in the API): SIGTERM ends the lifespan, which stops the consumer
after the batch in hand, then closes the connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from deksdenflow_core.logging import get_logger
from deksdenflow_projector.service import Projector

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
Started = tuple[Projector, Callable[[], Awaitable[None]]]

log = get_logger(__name__)


def make_app(start: Callable[[], Awaitable[Started]], on_crash: Callable[[], None]) -> App:
    """``start`` connects and returns the projector and a closer; ``on_crash`` asks the server to exit."""
    state: dict[str, Any] = {}

    async def startup() -> None:
        projector, close = await start()
        consume = asyncio.create_task(projector.run(), name="consume")
        lag = asyncio.create_task(projector.track_lag(), name="lag")

        def crashed(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.error("projector loop crashed", error=repr(task.exception()))
                on_crash()

        consume.add_done_callback(crashed)
        state.update(projector=projector, close=close, consume=consume, lag=lag)

    async def shutdown() -> None:
        if "projector" not in state:
            return
        state["projector"].loop.stop()
        state["lag"].cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(state["consume"], timeout=30)
        with contextlib.suppress(asyncio.CancelledError):
            await state["lag"]
        await state["close"]()

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        projector: Projector | None = state.get("projector")
        path = scope.get("path", "")
        if path == "/metrics" and projector is not None:
            body, status, ctype = generate_latest(projector.metrics.registry), 200, CONTENT_TYPE_LATEST
        elif path == "/health":
            if projector is None:
                body, status = b'{"status":"starting"}', 503
            else:
                lag = max(0, projector.stream_last_seq - projector.last_seq)
                payload = {"status": "ok", "checkpoint": projector.last_seq, "lag": lag}
                body, status = json.dumps(payload).encode(), 200
            ctype = "application/json"
        else:
            body, status, ctype = b'{"detail":"not found"}', 404, "application/json"
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype.encode())]})
        await send({"type": "http.response.body", "body": body})

    return app
