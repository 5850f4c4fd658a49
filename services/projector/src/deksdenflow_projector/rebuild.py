"""Rebuild the read model from sequence 1 into a fresh schema and swap it in, while the API serves.

1. Migrate a fresh schema (same migrations as the live one) and replay the whole log into it.
2. Take the writers' advisory lock (the live projector waits between two batches), apply what arrived
   meanwhile, and rename: live → retired, rebuilt → live, in one transaction. Readers see either the
   old or the new tables, never a mix.
3. Drop the retired schema. The live projector continues from the rebuilt checkpoint.
"""

from __future__ import annotations

import asyncio
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
from deksdenflow_projector.projection import apply_batch, init_connection

log = get_logger(__name__)


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild did."""

    events: int
    checkpoint: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def _catch_up(
    conn: asyncpg.Connection, store: JetStreamEventStore, schema: str, seq: int
) -> tuple[int, int]:
    applied = 0
    while True:
        page, _ = await store.read_page(store.subjects.all, seq + 1)
        if not page:
            return seq, applied
        async with conn.transaction():
            seq = await apply_batch(conn, schema, page, notify=False)
        applied += len(page)


async def rebuild(db_url: str, store: JetStreamEventStore, *, swap: bool = True) -> RebuildReport:
    """Replay the whole log into a fresh schema and (unless ``swap`` is False) make it the live one."""
    started = time.perf_counter()
    conn = await asyncpg.connect(db_url)
    try:
        await init_connection(conn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{REBUILD_SCHEMA}" CASCADE')
        await asyncio.to_thread(migrate, db_url, schema=REBUILD_SCHEMA)
        seq, applied = await _catch_up(conn, store, REBUILD_SCHEMA, 0)
        log.info("replayed into fresh schema", events=applied, checkpoint=seq)
        if not swap:
            return RebuildReport(events=applied, checkpoint=seq, seconds=time.perf_counter() - started)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK_KEY)
            seq, more = await _catch_up(conn, store, REBUILD_SCHEMA, seq)  # savepoint per page
            applied += more
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
        await conn.close()
