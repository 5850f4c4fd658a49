"""Projector catch-up rate on a pre-filled log, next to the raw rate of the same batched inserts.

    make bench            (or: uv run python -m bench.projector_catchup [EVENTS])

Prints events/s of (a) the projector catching up from sequence 1 through its durable consumer
(fetch, decode, fold with the domain's evolve, write aggregates + events + checkpoint per batch), and
(b) COPY of the same event rows in batches of the same size with a checkpoint per batch and no
projection work at all.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import asyncpg
import uvloop
from deksdenflow_core.eventstore import JetStreamEventStore, connect
from deksdenflow_core.readmodel import SCHEMA
from deksdenflow_core.settings import EventStoreSettings
from deksdenflow_projector.main import tune_gc
from deksdenflow_projector.migrate import migrate
from deksdenflow_projector.projection import _EVENT_COLUMNS, _event_row, checkpoint, init_connection
from deksdenflow_projector.service import Projector
from deksdenflow_projector.settings import ProjectorSettings

from bench.servers import servers
from bench.workload import prefill

BATCH = 500


async def raw_inserts(pool: asyncpg.Pool, rows: list[tuple[object, ...]]) -> float:
    """Seconds to COPY ``rows`` into a twin of the events table, ``BATCH`` rows and one commit at a time."""
    async with pool.acquire() as conn:
        await conn.execute(f'CREATE TABLE "{SCHEMA}".events_raw (LIKE "{SCHEMA}".events INCLUDING ALL)')
        await conn.execute(
            f'CREATE TABLE "{SCHEMA}".checkpoints_raw (LIKE "{SCHEMA}".checkpoints INCLUDING ALL)'
        )
        started = time.perf_counter()
        for start in range(0, len(rows), BATCH):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "events_raw",
                    schema_name=SCHEMA,
                    columns=_EVENT_COLUMNS,
                    records=rows[start : start + BATCH],
                )
                await conn.execute(
                    f'INSERT INTO "{SCHEMA}".checkpoints_raw VALUES ($1, $2, now()) '
                    "ON CONFLICT (name) DO UPDATE SET last_seq = EXCLUDED.last_seq",
                    "raw",
                    rows[min(start + BATCH, len(rows)) - 1][0],
                )
        return time.perf_counter() - started


async def main(target: int) -> None:
    async with servers() as s:
        suffix = uuid.uuid4().hex[:8]
        es = EventStoreSettings(
            nats_url=s.nats_url, stream_name=f"DF_BENCH_{suffix}", subject_prefix=f"b{suffix}"
        )
        nc = await connect(es, name="bench")
        store = JetStreamEventStore(nc, es)
        await store.provision()
        t0 = time.perf_counter()
        count = await prefill(store, target_events=target)
        print(f"pre-filled {count:,} events in {time.perf_counter() - t0:.1f}s ({s.where})")
        await asyncio.to_thread(migrate, s.db_url)
        pool = await asyncpg.create_pool(s.db_url, init=init_connection, min_size=2, max_size=4)
        last = await store.stream_last_seq()

        tune_gc()  # as the projector process does
        projector = Projector(pool, store, ProjectorSettings(batch_size=BATCH, durable=f"bench{suffix}"))
        started = time.perf_counter()
        task = asyncio.create_task(projector.run())
        while True:
            async with pool.acquire() as conn:
                if await checkpoint(conn, SCHEMA) >= last:
                    break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        projector_s = time.perf_counter() - started
        projector.loop.stop()
        await task

        events = (await store.read(store.subjects.all)).events
        raw_s = await raw_inserts(pool, [_event_row(e) for e in events])
        await pool.close()
        await nc.drain()

    projector_rate, raw_rate = last / projector_s, len(events) / raw_s
    print(f"projector catch-up: {last:,} events in {projector_s:.2f}s = {projector_rate:,.0f} events/s")
    print(f"raw batched inserts (COPY of the same rows, {BATCH}/commit): {raw_rate:,.0f} events/s")
    print(f"projector / raw: {projector_rate / raw_rate:.0%}  (targets: >= 80% and >= 20,000 events/s)")


if __name__ == "__main__":
    # The projector process runs on uvloop (through uvicorn); so does its benchmark.
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
