"""Rebuild the read model from sequence 1 into a fresh schema and swap it in, while the API serves.

1. Migrate a fresh schema (same migrations as the live one), drop its secondary indexes (those that back
   no constraint: kept up row by row they cost PostgreSQL more than the rows themselves), and replay the
   whole log into it through the live projector's fold-ahead (``replay``: pages read ahead, batch N+1
   folded while batch N commits), in one process per core on a large log (``parts``: each folds the
   aggregates of its part). Its commits do not wait for the disk (``synchronous_commit=off``): until
   the swap nobody reads the schema, and a crash before it leaves only a schema to rebuild again.
2. Create the dropped indexes again from their definitions (one sort each, not a million inserts),
   and replay what arrived meanwhile.
3. Take the writers' advisory lock (the live projector waits between two batches), apply what arrived
   meanwhile, and rename: live → retired, rebuilt → live, in one durable transaction (which makes every
   commit before it durable too). Readers see either the old or the new tables, never a mix.
4. Drop the retired schema. The live projector continues from the rebuilt checkpoint.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

import asyncpg
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.logging import get_logger
from deksdenflow_core.readmodel import (
    CHECKPOINT_CHANNEL,
    REBUILD_SCHEMA,
    RETIRED_SCHEMA,
    SCHEMA,
    WRITER_LOCK_KEY,
)

from deksdenflow_projector.migrate import migrate
from deksdenflow_projector.parts import CACHE_SIZE, REPLAY_SETTINGS, replay_in_parts
from deksdenflow_projector.projection import LiveProjection, apply_batch, init_connection
from deksdenflow_projector.replay import replay

log = get_logger(__name__)

# Below this many decisions one process replays the log: starting the parts' processes costs more.
_PARTS_FROM = 20_000

# The indexes of a schema that back no constraint (primary keys and unique constraints stay: the
# upserts rely on them), with their definitions.
_SECONDARY_INDEXES = """
SELECT format('%I.%I', n.nspname, c.relname) AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY 1
"""


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild did."""

    events: int
    checkpoint: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def _drop_secondary_indexes(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Drop the secondary indexes of ``schema``; return the statements that create them again."""
    rows = await conn.fetch(_SECONDARY_INDEXES, schema)
    for row in rows:
        await conn.execute(f"DROP INDEX {row['name']}")
    return [row["definition"] for row in rows]


async def _catch_up(
    conn: asyncpg.Connection, store: JetStreamEventStore, schema: str, seq: int
) -> tuple[int, int]:
    """Page by page, each applied in a (sub)transaction of its own: the short tail under the lock."""
    applied = 0
    while True:
        page, _ = await store.read_page(store.subjects.all, seq + 1)
        if not page:
            return seq, applied
        async with conn.transaction():
            seq = await apply_batch(conn, schema, page, notify=False)
        applied += len(page)


def _parts(decisions: int) -> int:
    """One part per core (up to 4) for a large log. Measured on a 2-core VM shared with other work
    (400k events, alternating): 2 parts replay 15-20% faster than one process."""
    return max(1, min(4, os.cpu_count() or 1)) if decisions >= _PARTS_FROM else 1


async def rebuild(
    db_url: str, store: JetStreamEventStore, *, swap: bool = True, parts: int | None = None
) -> RebuildReport:
    """Replay the whole log into a fresh schema and (unless ``swap`` is False) make it the live one.

    ``parts``: how many processes replay the log (default: one per core, up to 4, for a large log).
    """
    started = time.perf_counter()
    pool = await asyncpg.create_pool(
        db_url,
        init=init_connection,
        min_size=1,
        max_size=2,  # the writer, and the projection's reads of aggregates it no longer holds
        server_settings=REPLAY_SETTINGS,
    )
    try:
        async with pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{REBUILD_SCHEMA}" CASCADE')
            await asyncio.to_thread(migrate, db_url, schema=REBUILD_SCHEMA)
            indexes = await _drop_secondary_indexes(conn, REBUILD_SCHEMA)
            parts = parts or _parts(await store.stream_last_seq())
            projection = LiveProjection(pool, REBUILD_SCHEMA, notify=False, cache_size=CACHE_SIZE)
            if parts > 1:
                replayed = await replay_in_parts(conn, db_url, store, REBUILD_SCHEMA, parts)
            else:
                replayed = await replay(conn, store, projection, after=0)
            log.info(
                "replayed into fresh schema",
                events=replayed.events,
                checkpoint=replayed.checkpoint,
                parts=parts,
            )
            for statement in indexes:
                await conn.execute(statement)
            more = await replay(conn, store, projection, after=replayed.checkpoint)
            seq, applied = more.checkpoint, replayed.events + more.events
            if not swap:
                return RebuildReport(events=applied, checkpoint=seq, seconds=time.perf_counter() - started)
            async with conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit = on")
                await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK_KEY)
                seq, tail = await _catch_up(conn, store, REBUILD_SCHEMA, seq)  # savepoint per page
                applied += tail
                live = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", SCHEMA)
                await conn.execute(f'DROP SCHEMA IF EXISTS "{RETIRED_SCHEMA}" CASCADE')
                if live:
                    await conn.execute(f'ALTER SCHEMA "{SCHEMA}" RENAME TO "{RETIRED_SCHEMA}"')
                await conn.execute(f'ALTER SCHEMA "{REBUILD_SCHEMA}" RENAME TO "{SCHEMA}"')
                await conn.execute("SELECT pg_notify($1, $2)", CHECKPOINT_CHANNEL, f"{SCHEMA}:{seq}")
            await conn.execute(f'DROP SCHEMA IF EXISTS "{RETIRED_SCHEMA}" CASCADE')
        report = RebuildReport(events=applied, checkpoint=seq, seconds=time.perf_counter() - started)
        log.info(
            "rebuilt read model swapped in", events=applied, checkpoint=seq, seconds=round(report.seconds, 2)
        )
        return report
    finally:
        await pool.close()
