"""Replay the log into a read-model schema at full speed: the rebuild's bulk path.

Three things overlap, as in the live projector: pages of the log are read (and decoded) ahead into a
short queue, a batch is folded (:meth:`LiveProjection.prepare`, the live projector's own fold-ahead)
while the one before it commits, and PostgreSQL writes that one meanwhile. A batch is several pages, so a
transaction carries thousands of events. Nothing here is rebuild-specific but the absence of
``LISTEN``/``NOTIFY`` readers: any schema nobody reads yet can be filled this way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from deksdenflow_core.envelope import RecordedEvent
from deksdenflow_core.eventstore import JetStreamEventStore

from deksdenflow_projector.pages import read_pages
from deksdenflow_projector.projection import LiveProjection, PreparedBatch

# Events folded and written in one transaction (whole pages of up to 512 decisions make one batch).
BATCH_EVENTS = 4096
# Pages read ahead of the fold: enough to hide a round trip to NATS, little memory.
PAGES_AHEAD = 4


@dataclass(frozen=True)
class Replayed:
    """Where a replay stopped and what it applied."""

    checkpoint: int
    events: int


# A page: its events, and (for a part of the log) the sequence of the last decision it covers.
Page = tuple[list[RecordedEvent], int | None]


class _End:
    """Queued after the last page (or with the source's failure)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


async def _read_ahead(source: AsyncIterator[Page], pages: asyncio.Queue[Page | _End]) -> None:
    try:
        async for page in source:
            await pages.put(page)
    except Exception as exc:
        await pages.put(_End(exc))
    else:
        await pages.put(_End())


async def _whole_log(store: JetStreamEventStore, after: int) -> AsyncIterator[Page]:
    async for events in read_pages(store, after):
        yield events, None


async def _commit(conn: asyncpg.Connection, projection: LiveProjection, prepared: PreparedBatch) -> int:
    async with conn.transaction():
        return await projection.commit(conn, prepared)


async def replay(
    conn: asyncpg.Connection,
    store: JetStreamEventStore,
    projection: LiveProjection,
    *,
    after: int,
    batch_events: int = BATCH_EVENTS,
) -> Replayed:
    """Apply every decision after ``after`` up to the end of the log (as it stands when the last page is
    read) with ``projection``, one transaction per batch on ``conn``; return the new checkpoint."""
    return await replay_pages(
        conn, _whole_log(store, after), projection, after=after, batch_events=batch_events
    )


async def replay_pages(
    conn: asyncpg.Connection,
    source: AsyncIterator[Page],
    projection: LiveProjection,
    *,
    after: int,
    batch_events: int = BATCH_EVENTS,
) -> Replayed:
    """:func:`replay` from any source of pages (a part of the log: pages that say what they cover)."""
    pages: asyncio.Queue[Page | _End] = asyncio.Queue(maxsize=PAGES_AHEAD)
    reader = asyncio.create_task(_read_ahead(source, pages))
    checkpoint, applied = after, 0
    in_flight: asyncio.Task[int] | None = None
    try:
        end: _End | None = None
        while end is None:
            batch: list[RecordedEvent] = []
            through: int | None = None
            while len(batch) < batch_events:
                page = await pages.get()
                if isinstance(page, _End):
                    end = page
                    break
                batch.extend(page[0])
                through = page[1]
            if end is not None and end.error is not None:
                raise end.error
            if not batch and through is None:
                break
            prepared = await projection.prepare(batch, through=through)  # while the batch before commits
            if in_flight is not None:
                checkpoint = await in_flight
            in_flight = asyncio.create_task(_commit(conn, projection, prepared))
            applied += prepared.events
        if in_flight is not None:
            checkpoint, in_flight = await in_flight, None
        return Replayed(checkpoint, applied)
    finally:
        reader.cancel()
        for task in (reader, in_flight):
            if task is not None:
                with contextlib.suppress(BaseException):
                    await task
