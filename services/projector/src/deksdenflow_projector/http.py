"""A minimal ASGI app for the projector's ``/health`` and ``/metrics`` (served by uvicorn)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from deksdenflow_projector.service import Projector

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def make_app(projector: Projector) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """``GET /health`` → 200 with checkpoint and lag; ``GET /metrics`` → Prometheus text."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope.get("path", "")
        if path == "/metrics":
            body, status, ctype = generate_latest(projector.metrics.registry), 200, CONTENT_TYPE_LATEST
        elif path == "/health":
            lag = max(0, projector.stream_last_seq - projector.last_seq)
            payload = {"status": "ok", "checkpoint": projector.last_seq, "lag": lag}
            body, status, ctype = json.dumps(payload).encode(), 200, "application/json"
        else:
            body, status, ctype = b'{"detail":"not found"}', 404, "application/json"
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype.encode())]})
        await send({"type": "http.response.body", "body": body})

    return app
