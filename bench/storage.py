"""What the log and the read model hold on disk, and waiting until nothing is in flight between them.

The log's size is what JetStream reports (``STREAM.INFO`` ``state.bytes``) for every stream named like
the configured one (the log may be split over several). The read model's size is
``pg_total_relation_size`` of each table of its schema: the table with its indexes and TOAST. Events are
counted in the read model's ``events`` table, not as stream messages, since one message may carry several
events.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.readmodel import PROJECTOR_NAME, SCHEMA


@dataclass(frozen=True)
class Stream:
    name: str
    bytes: int
    messages: int
    last_seq: int


@dataclass(frozen=True)
class Disk:
    """Bytes on disk after a load, and the events they hold."""

    events: int
    streams: list[Stream]
    tables: dict[str, int]  # read-model table → bytes with indexes and TOAST
    events_heap: int  # the events table's rows (with TOAST), without its indexes
    events_indexes: int

    @property
    def log(self) -> int:
        return sum(s.bytes for s in self.streams)

    @property
    def read_model(self) -> int:
        return sum(self.tables.values())


async def streams(store: JetStreamEventStore) -> list[Stream]:
    """Every stream whose name starts with the log's configured stream name."""
    js = store.jetstream()
    found: list[Stream] = []
    offset = 0
    while page := await js.streams_info(offset):
        offset += len(page)
        found += [
            Stream(i.config.name, i.state.bytes, i.state.messages, i.state.last_seq)
            for i in page
            if i.config.name and i.config.name.startswith(store.stream)
        ]
    return found


async def quiet(store: JetStreamEventStore, db: asyncpg.Connection, within: float) -> None:
    """Wait until the read model is at the log's last event and no consumer of the log (the projector,
    the workers) has anything pending or unacknowledged: nothing is left in flight."""
    js = store.jetstream()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        last = await store.stream_last_seq()
        at = await db.fetchval(f'SELECT last_seq FROM "{SCHEMA}".checkpoints WHERE name = $1', PROJECTOR_NAME)
        pending = 0
        for stream in await streams(store):
            consumers = await js.consumers_info(stream.name)
            pending += sum((c.num_pending or 0) + (c.num_ack_pending or 0) for c in consumers)
        if (at or 0) == last and pending == 0:  # no checkpoint row yet: nothing applied yet
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the system was not quiet within {within:g}s")


async def disk(store: JetStreamEventStore, db: asyncpg.Connection) -> Disk:
    """The log's and the read model's bytes, and the events in the read model."""
    rows = await db.fetch(
        "SELECT c.relname, pg_total_relation_size(c.oid) AS total, pg_table_size(c.oid) AS heap, "
        "pg_indexes_size(c.oid) AS indexes FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
        SCHEMA,
    )
    events = next(r for r in rows if r["relname"] == "events")
    return Disk(
        events=await db.fetchval(f'SELECT count(*) FROM "{SCHEMA}".events'),
        streams=await streams(store),
        tables={r["relname"]: r["total"] for r in rows},
        events_heap=events["heap"],
        events_indexes=events["indexes"],
    )
