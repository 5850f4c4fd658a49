"""Projector catch-up rate on a pre-filled log, next to the raw rate of the same batched inserts.

    make bench            (or: uv run python -m bench.projector_catchup [EVENTS])

Prints events/s of (a) the projector catching up from sequence 1 through its durable consumer
(fetch, decode, fold with the domain's evolve, write aggregates + events + checkpoint per batch; batch
N+1 is decoded and folded while batch N commits), and
(b) the raw rate of the same batched inserts: the projector's writes for the same events (events COPY,
one statement for the project/run/step/usage rows, checkpoint + notify — recorded once) replayed batch
by batch, one commit each, with no consuming, decoding or folding.

Also printed: the CPU seconds each process used during the catch-up (this process, PostgreSQL,
nats-server), which says where the time went on a machine whose cores are all shared.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import Any, cast

import asyncpg
import uvloop
from deksdenflow_core.envelope import RecordedEvent
from deksdenflow_core.eventstore import JetStreamEventStore, connect
from deksdenflow_core.readmodel import SCHEMA
from deksdenflow_core.settings import EventStoreSettings
from deksdenflow_projector.main import tune_gc
from deksdenflow_projector.migrate import migrate
from deksdenflow_projector.projection import apply_batch, checkpoint, init_connection
from deksdenflow_projector.service import Projector
from deksdenflow_projector.settings import ProjectorSettings

from bench import cpu
from bench.servers import servers
from bench.workload import prefill

BATCH = 500


class Recorder:
    """A connection stand-in that passes every call through and records the writes (with their
    arguments), so the very same inserts can be replayed later without any projection work."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.batches: list[list[tuple[str, tuple[Any, ...], dict[str, Any]]]] = []

    def transaction(self) -> Any:
        self.batches.append([])
        return self.conn.transaction()

    async def fetch(self, *args: Any) -> Any:
        return await self.conn.fetch(*args)

    async def fetchval(self, *args: Any) -> Any:
        return await self.conn.fetchval(*args)

    async def execute(self, *args: Any) -> Any:
        self.batches[-1].append(("execute", args, {}))
        return await self.conn.execute(*args)

    async def executemany(self, *args: Any) -> Any:
        self.batches[-1].append(("executemany", args, {}))
        return await self.conn.executemany(*args)

    async def copy_records_to_table(self, *args: Any, **kwargs: Any) -> Any:
        self.batches[-1].append(("copy_records_to_table", args, kwargs))
        return await self.conn.copy_records_to_table(*args, **kwargs)


async def raw_inserts(db_url: str, pool: asyncpg.Pool, events: list[RecordedEvent]) -> float:
    """Seconds to run exactly the projector's writes for ``events`` (same statements, same rows, same
    batches, one commit per batch) with no consuming, decoding or folding: the raw insert rate."""
    recorded, raw = "bench_recorded", "bench_raw"
    for schema in (recorded, raw):
        await asyncio.to_thread(migrate, db_url, schema=schema)
    async with pool.acquire() as conn:
        recorder = Recorder(conn)
        for start in range(0, len(events), BATCH):
            async with recorder.transaction():
                await apply_batch(cast(asyncpg.Connection, recorder), recorded, events[start : start + BATCH])
        started = time.perf_counter()
        for writes in recorder.batches:
            async with conn.transaction():
                for method, args, kwargs in writes:
                    if method == "copy_records_to_table":
                        await conn.copy_records_to_table(*args, **{**kwargs, "schema_name": raw})
                    else:
                        sql = args[0].replace(f'"{recorded}"', f'"{raw}"')
                        await getattr(conn, method)(sql, *args[1:])
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
        cpu_before = cpu.snapshot()
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
        cpu_used = cpu.used(cpu_before, cpu.snapshot())
        projector.loop.stop()
        await task

        events = (await store.read(store.subjects.all)).events
        raw_s = await raw_inserts(s.db_url, pool, events)
        await pool.close()
        await nc.drain()

    projector_rate, raw_rate = last / projector_s, len(events) / raw_s
    print(f"projector catch-up: {last:,} events in {projector_s:.2f}s = {projector_rate:,.0f} events/s")
    print(f"  CPU used meanwhile: {cpu_used}")
    print(
        f"raw batched inserts (the projector's own writes replayed, {BATCH} events/commit): "
        f"{raw_rate:,.0f} events/s"
    )
    print(f"projector / raw: {projector_rate / raw_rate:.0%}  (targets: >= 80% and >= 20,000 events/s)")


if __name__ == "__main__":
    # The projector process runs on uvloop (through uvicorn); so does its benchmark.
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
