"""The log read page by page for a replay, as raw frames, with the next page on its way while one decodes.

``JetStreamEventStore.read_page`` serves every reader; per message it pays nats-py's ``Msg``, a queue
hop and a timed wait (~15 µs, about what folding the event costs). A replay reads the whole log, so it
takes the frames of its batched direct gets straight from the protocol parser
(``nats_internals.frame_routes``, as the live projector's consumer does), asks for page N+1 as soon as
page N has arrived, and decodes page N meanwhile. Same requests, same answers, same decoding.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from deksdenflow_core.envelope import RecordedEvent, decode_all
from deksdenflow_core.errors import InfrastructureError
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.nats_internals import (
    HEADER_BLOCK_START,
    Frame,
    connection_of,
    frame_routes,
    parse_header_lines,
    subscription_id,
)

# Decisions in one batched direct get (the server's most).
PAGE = 512
# Messages decoded between two yields to the event loop, so that a commit in flight keeps moving.
_DECODE_SLICE = 16
_STATUS = HEADER_BLOCK_START[:-2] + b" "  # b"NATS/1.0 ": a status line (end of batch, not found, ...)


class _Page:
    """The frames of one request, and how it ended: (status code, the status frame's headers)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.frames: list[Frame] = []
        self.ended: asyncio.Future[tuple[bytes, dict[str, str]]] = loop.create_future()


def _headers(raw: bytes | None) -> dict[str, str]:
    return parse_header_lines((raw or b"")[len(HEADER_BLOCK_START) :])


def sequence(raw_headers: bytes | None) -> int:
    """The stream sequence of a message a direct get answered, from its raw header block."""
    return int(_headers(raw_headers)["Nats-Sequence"])


def decode(raw_headers: bytes | None, data: bytes) -> list[RecordedEvent]:
    """The events of a message a direct get answered (``decode_all``, from the raw header block)."""
    headers = _headers(raw_headers)
    return decode_all(headers, data, int(headers["Nats-Sequence"]))


async def decode_page(messages: list[tuple[bytes | None, bytes]]) -> list[RecordedEvent]:
    """The events of these messages (raw header block, body), yielding to the event loop now and then."""
    events: list[RecordedEvent] = []
    for start in range(0, len(messages), _DECODE_SLICE):
        for raw_headers, data in messages[start : start + _DECODE_SLICE]:
            events.extend(decode(raw_headers, data))
        await asyncio.sleep(0)
    return events


async def read_pages(store: JetStreamEventStore, after: int) -> AsyncIterator[list[RecordedEvent]]:
    """The events of every decision after ``after``, a page at a time, up to the end of the log as it
    stands when the last page is asked for."""
    async for frames in frame_pages(store, after):
        events = await decode_page([(f.headers, f.data) for f in frames])
        if events:
            yield events


async def frame_pages(store: JetStreamEventStore, after: int) -> AsyncIterator[list[Frame]]:
    """The messages after ``after`` as raw frames, a page at a time (never empty), the next page asked
    for before this one is handed over."""
    nc = connection_of(store.jetstream())
    loop = asyncio.get_running_loop()
    subject = f"$JS.API.DIRECT.GET.{store.stream}"
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    routes = frame_routes(nc)
    page = _Page(loop)

    async def on_frame(frame: Frame) -> None:
        raw = frame.headers or b""
        if raw.startswith(HEADER_BLOCK_START):
            page.frames.append(frame)
        elif not page.ended.done():
            status_line, _, rest = raw.partition(b"\r\n")
            code = status_line[len(_STATUS) :][:3] if status_line.startswith(_STATUS) else b"???"
            page.ended.set_result((code, parse_header_lines(rest) if rest.strip() else {}))

    # Every message of the log's stream is in the log: a filter would only cost NATS a match per message
    # (a quarter of what it spends serving the page). Kept if the stream holds other subjects too.
    config = (await store.stream_info(store.stream)).get("config", {})
    only_log = config.get("subjects") == [store.subjects.all]
    wanted = {} if only_log else {"next_by_subj": store.subjects.all}

    async def ask(seq: int) -> None:
        request = {"seq": seq, "batch": PAGE, **wanted}
        await nc.publish(subject, json.dumps(request).encode(), reply=inbox)

    routes[subscription_id(sub)] = on_frame
    try:
        await ask(after + 1)
        while True:
            try:
                code, status = await asyncio.wait_for(asyncio.shield(page.ended), store.request_timeout)
            except TimeoutError as exc:
                raise InfrastructureError(f"reading {store.stream} after {after} timed out") from exc
            if code not in (b"204", b"404"):
                raise InfrastructureError(f"direct get on {store.stream} failed: {code!r} {status}")
            frames, page = page.frames, _Page(loop)
            more = code == b"204" and int(status.get("Nats-Num-Pending", "0")) > 0
            if frames and more:  # on its way while this one is handled
                await ask(sequence(frames[-1].headers) + 1)
            if frames:
                yield frames
            if not frames or not more:
                return
    finally:
        routes.pop(subscription_id(sub), None)
        await sub.unsubscribe()
