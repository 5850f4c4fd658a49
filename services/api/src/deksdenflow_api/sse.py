"""The response of ``GET /events/stream``: history from the read model, then the live fan-out.

The history is read up to the position the client was registered at (``Subscriber.start``); every later
event comes from the fan-out's queue. A message at or below what was sent is skipped, so nothing is sent
twice and nothing is missed across the switch. Three things end a stream: the client goes away, it falls
too far behind (cut off: the connection is closed and the client resumes with ``Last-Event-ID``), or the
history cannot be read (the stream ends; the client resumes).
"""

from __future__ import annotations

import asyncio
from typing import Any

from deksdenflow_core.logging import get_logger
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from deksdenflow_api.context import ApiContext
from deksdenflow_api.fanout import FILTERED_QUERY, PAGE, Subscriber, render

log = get_logger(__name__)


class EventStream(Response):
    """Server-Sent Events for one registered client, starting after position ``after``."""

    # Set as a header, not as the class's media type: FastAPI would document every error of the route
    # (JSON) as an event stream.
    media_type = None

    def __init__(self, ctx: ApiContext, subscriber: Subscriber, after: int) -> None:
        self._ctx = ctx
        self._subscriber = subscriber
        self._after = after
        self.status_code = 200
        self.background = None
        self.init_headers(
            {
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscriber = self._subscriber
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            body = asyncio.ensure_future(self._body(send))
            gone = asyncio.ensure_future(_disconnected(receive))
            cut = asyncio.ensure_future(subscriber.cut.wait())
            tasks = (body, gone, cut)
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if cut.done() and not cut.cancelled():
                # Returning without ending the response makes the server close the connection: the
                # body may be stuck on a client that does not read, so it cannot be ended politely.
                return
            if body.done() and not body.cancelled() and body.exception() is not None:
                log.warning("event stream ended", error=repr(body.exception()))
                await asyncio.wait_for(send({"type": "http.response.body", "body": b""}), 5)
        finally:
            self._ctx.fanout.unsubscribe(subscriber)

    async def _body(self, send: Send) -> None:
        async def emit(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        subscriber, sent = self._subscriber, self._after
        await emit(b"retry: 1000\n\n")
        while sent < subscriber.start:  # the history, up to where the live part starts
            async with self._ctx.pool.acquire() as conn:
                rows = await conn.fetch(FILTERED_QUERY, sent, subscriber.start, *subscriber.filters, PAGE)
            if rows:
                await emit(b"".join(render(dict(row)) for row in rows))
            sent = rows[-1]["position"] if len(rows) == PAGE else subscriber.start
        while True:
            chunk = await subscriber.next(self._ctx.settings.sse_keepalive_seconds)
            if chunk is None:
                await emit(b": keep-alive\n\n")
                continue
            fresh = chunk.after(sent)
            if fresh:
                await emit(fresh)
                sent = chunk.last_position


async def _disconnected(receive: Receive) -> None:
    while True:
        message: dict[str, Any] = dict(await receive())
        if message["type"] == "http.disconnect":
            return
