"""The live event feed of one API process: one reader of the read model, fanned out to every stream client.

Each time the projector's checkpoint advances, the fan-out reads the new rows of the ``events`` table
*once* and hands each client the messages that match its filters, already rendered; a hundred clients
cost what one does. (Before, every client ran its own query on every advance, and a hundred of them
held the connection pool that every other read waits for.)

A client never waits on another: each has a queue bounded in events; a client that falls that far
behind (it does not read what is sent) is cut off, and resumes with ``Last-Event-ID``. The number of
clients is capped per process.

Gapless hand-over from history to live: a client is registered at the fan-out's ``position`` — every
event above it will come through its queue — and reads the history up to that position from the read
model itself (see ``routes/events.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from deksdenflow_core.aio import cancel_and_wait
from deksdenflow_core.envelope import MAX_DECISION_EVENTS, last_position
from deksdenflow_core.logging import get_logger
from deksdenflow_core.readmodel import SCHEMA

from deksdenflow_api.consistency import CheckpointWatcher
from deksdenflow_api.errors import HttpError
from deksdenflow_api.middleware import ApiMetrics
from deksdenflow_api.schemas import EventPublic

log = get_logger(__name__)

PAGE = 500
_LINGER_SECONDS = 0.1
T = f'"{SCHEMA}"'
FILTERED_QUERY = (
    f"SELECT * FROM {T}.events WHERE position > $1 AND position <= $2 "
    "AND ($3::text IS NULL OR project_id = $3) AND ($4::text IS NULL OR protocol_run_id = $4) "
    "AND ($5::text IS NULL OR type = $5) ORDER BY position LIMIT $6"
)
_FEED_QUERY = f"SELECT * FROM {T}.events WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3"

Filters = tuple[str | None, str | None, str | None]  # project, protocol run, event type


@dataclass(eq=False)
class Chunk:
    """Rendered messages ``(position, message)`` of one delivery, shared by every client they match;
    joined into one send once, for all the clients that have seen none of them."""

    messages: list[tuple[int, bytes]]
    _joined: bytes | None = None

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def last_position(self) -> int:
        return self.messages[-1][0]

    def after(self, position: int) -> bytes:
        """The messages above ``position``, as one send."""
        if self.messages[0][0] > position:  # the usual case: nothing of it was sent as history
            if self._joined is None:
                self._joined = b"".join(message for _, message in self.messages)
            return self._joined
        return b"".join(message for p, message in self.messages if p > position)


def render(row: dict[str, Any]) -> bytes:
    """One event as a Server-Sent Events message; its id is its position."""
    body = EventPublic(**row).model_dump_json()
    return f"id: {row['position']}\nevent: {row['type']}\ndata: {body}\n\n".encode()


def matches(filters: Filters, row: dict[str, Any]) -> bool:
    project_id, run_id, type_ = filters
    return (
        (project_id is None or row["project_id"] == project_id)
        and (run_id is None or row["protocol_run_id"] == run_id)
        and (type_ is None or row["type"] == type_)
    )


@dataclass(eq=False)
class Subscriber:
    """One stream client: its filters, where the live part starts, and what is queued for it."""

    filters: Filters
    start: int  # every event above this position comes through the queue
    limit: int  # events queued at most
    chunks: deque[Chunk] = field(default_factory=deque)
    pending: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    cut: asyncio.Event = field(default_factory=asyncio.Event)  # fell too far behind: disconnect it

    def offer(self, chunk: Chunk) -> bool:
        """Queue messages; False (and cut) if the client has not taken what it was given and this
        would take it beyond the limit. (A client that keeps up takes any chunk: at most a page.)"""
        if self.pending and self.pending + len(chunk) > self.limit:
            self.cut.set()
            return False
        self.chunks.append(chunk)
        self.pending += len(chunk)
        self.ready.set()
        return True

    async def next(self, wait_seconds: float) -> Chunk | None:
        """The next queued messages, or None after ``wait_seconds`` of nothing."""
        if not self.chunks:
            self.ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_seconds):  # no task per wait, unlike wait_for
                    await self.ready.wait()
            if not self.chunks:
                return None
        chunk = self.chunks.popleft()
        self.pending -= len(chunk)
        return chunk


class EventFanout:
    """Reads the feed once per checkpoint advance for all of this process's stream clients."""

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        watcher: CheckpointWatcher,
        metrics: ApiMetrics,
        *,
        max_clients: int,
        queue_events: int,
    ) -> None:
        self._pool = pool
        self._watcher = watcher
        self._metrics = metrics
        self._max_clients = max_clients
        self._queue_events = queue_events
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        # Every event at or below this position has been handed to the clients registered when it was read.
        self.position = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-fanout")

    async def close(self) -> None:
        if self._task is not None:
            # (again as needed: its retry loop may catch an error that stood for the cancellation)
            await cancel_and_wait(self._task)

    def subscribe(self, filters: Filters) -> Subscriber:
        """Register a client from the current position on; 503 when the process has enough of them."""
        if len(self._subscribers) >= self._max_clients:
            raise HttpError(
                503,
                "too_many_streams",
                f"this API process serves {self._max_clients} event streams already; retry later",
                headers={"Retry-After": "5"},
                limit=self._max_clients,
            )
        if not self._subscribers:
            # Idle until now: nothing above the checkpoint has been read, nothing below it is owed.
            self.position = max(self.position, last_position(self._watcher.current))
        subscriber = Subscriber(filters, self.position, self._queue_events)
        self._subscribers.add(subscriber)
        self._metrics.sse_clients.set(len(self._subscribers))
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        self._metrics.sse_clients.set(len(self._subscribers))

    async def _run(self) -> None:
        while True:
            try:
                target = last_position(self._watcher.current)
                if target <= self.position:
                    await self._watcher.wait_for(self.position // MAX_DECISION_EVENTS + 1, 30.0)
                elif not self._subscribers:
                    self.position = target
                else:
                    async with self._pool().acquire() as conn:
                        rows = [dict(r) for r in await conn.fetch(_FEED_QUERY, self.position, target, PAGE)]
                    self._metrics.sse_feed_reads.inc()
                    # Delivered and moved in one step (no await between): a client registered later
                    # starts above these rows and reads them as history. max: a client registered
                    # during the read may have moved the position past it already.
                    self._deliver(rows)
                    full_page = len(rows) == PAGE
                    self.position = max(self.position, rows[-1]["position"] if full_page else target)
                    # Each delivery wakes every client and costs a send each: with a thousand clients,
                    # one delivery per commit would take the process's whole CPU from the other reads.
                    # At most one every _LINGER_SECONDS, so that commits in between go in one send;
                    # but a full page means more is waiting: go on at once (a burst is not throttled).
                    if not full_page:
                        await asyncio.sleep(_LINGER_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: the clients wait, nothing is skipped
                log.warning("event feed read failed", error=repr(exc))
                await asyncio.sleep(1.0)

    def _deliver(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        rendered = [(row["position"], render(row)) for row in rows]
        # Clients with the same filters (typically: all of them, unfiltered) share one selection.
        by_filters: dict[Filters, Chunk] = {}
        for subscriber in list(self._subscribers):
            chunk = by_filters.get(subscriber.filters)
            if chunk is None:
                chunk = by_filters[subscriber.filters] = Chunk(
                    [
                        message
                        for row, message in zip(rows, rendered, strict=True)
                        if matches(subscriber.filters, row)
                    ]
                )
            if chunk and not subscriber.offer(chunk):
                self.unsubscribe(subscriber)
                self._metrics.sse_cut_off.inc()
                log.warning("event stream client too slow; disconnected", queued=subscriber.pending)
