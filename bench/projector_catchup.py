"""Projector catch-up rate on a pre-filled log, next to the raw rate of the same batched inserts.

    make bench            (or: uv run python -m bench.projector_catchup [EVENTS [REPEATS]])

Prints events/s of (a) the projector catching up from sequence 1 through its durable consumer
(fetch, decode, fold with the domain's evolve, write aggregates + events + checkpoint per batch; batch
N+1 is decoded and folded while batch N commits), and
(b) the raw rate of the same batched inserts: the projector's writes for the same events (events COPY,
one statement for the project/run/step/usage rows and the checkpoint + notify — recorded once) replayed
batch by batch, one commit each, with no consuming, decoding or folding, and
(c) the projector with nothing sent to PostgreSQL (consume, decode, fold, build the rows, drop them):
the ceiling its Python side sets, whatever the database.

Also printed: the CPU seconds each process used during the catch-up (this process, PostgreSQL,
nats-server), which says where the time went on a machine whose cores are all shared.

A small shared VM measures the same work ±15% from one minute to the next, so both are measured
REPEATS times (default 3), alternating, each catch-up into a fresh read model through a fresh durable
consumer and each replay into a fresh schema; every run is printed, then the medians.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
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
from deksdenflow_projector.projection import PreparedBatch, apply_batch, init_connection
from deksdenflow_projector.service import Projector
from deksdenflow_projector.settings import ProjectorSettings

from bench import cpu
from bench.servers import servers
from bench.workload import prefill

BATCH = 500
RECORDED, RAW = "bench_recorded", "bench_raw"


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


async def settle(pool: asyncpg.Pool) -> None:
    """Write out what earlier runs left dirty, so that no run pays for the one before it (needs the
    right to run CHECKPOINT; without it, runs start as they are)."""
    async with pool.acquire() as conn:
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")


async def record_writes(
    db_url: str, pool: asyncpg.Pool, events: list[RecordedEvent]
) -> list[list[tuple[str, tuple[Any, ...], dict[str, Any]]]]:
    """The projector's writes for ``events`` (statements and rows), batch by batch, as it makes them."""
    await asyncio.to_thread(migrate, db_url, schema=RECORDED)
    async with pool.acquire() as conn:
        recorder = Recorder(conn)
        for start in range(0, len(events), BATCH):
            async with recorder.transaction():
                await apply_batch(cast(asyncpg.Connection, recorder), RECORDED, events[start : start + BATCH])
    return recorder.batches


async def raw_inserts(
    db_url: str, pool: asyncpg.Pool, batches: list[list[tuple[str, tuple[Any, ...], dict[str, Any]]]]
) -> float:
    """Seconds to run exactly the projector's writes (same statements, same rows, same batches, one
    commit per batch) into a fresh schema, with no consuming, decoding or folding: the raw insert rate."""
    async with pool.acquire() as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{RAW}" CASCADE')
    await asyncio.to_thread(migrate, db_url, schema=RAW)
    await settle(pool)
    async with pool.acquire() as conn:
        started = time.perf_counter()
        for writes in batches:
            async with conn.transaction():
                for method, args, kwargs in writes:
                    if method == "copy_records_to_table":
                        await conn.copy_records_to_table(*args, **{**kwargs, "schema_name": RAW})
                    else:
                        sql = args[0].replace(f'"{RECORDED}"', f'"{RAW}"')
                        await getattr(conn, method)(sql, *args[1:])
        return time.perf_counter() - started


class NullProjector(Projector):
    """The projector with nothing sent to PostgreSQL: consumes, decodes, folds and builds the rows of
    every batch, then drops them. Its rate is the ceiling the Python side sets, whatever the database."""

    async def commit(self, prepared: PreparedBatch) -> None:
        self.last_seq = prepared.last


async def catch_up(
    db_url: str,
    pool: asyncpg.Pool,
    store: JetStreamEventStore,
    last: int,
    durable: str,
    kind: type[Projector] = Projector,
) -> tuple[float, str]:
    """Seconds for a projector to apply the log up to ``last`` into a fresh read model, through a new
    durable consumer, and the CPU each process used meanwhile."""
    async with pool.acquire() as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
    await asyncio.to_thread(migrate, db_url)
    await settle(pool)
    projector = kind(pool, store, ProjectorSettings(batch_size=BATCH, durable=durable))
    cpu_before = cpu.snapshot()
    started = time.perf_counter()
    task = asyncio.create_task(projector.run())
    while projector.last_seq < last:  # set once a batch has committed
        if task.done():
            task.result()
        await asyncio.sleep(0.002)
    seconds = time.perf_counter() - started
    cpu_used = cpu.used(cpu_before, cpu.snapshot())
    projector.stop()
    await task
    await store.jetstream().delete_consumer(store.stream, durable)
    return seconds, cpu_used


async def main(target: int, repeats: int) -> None:
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
        pool = await asyncpg.create_pool(s.db_url, init=init_connection, min_size=2, max_size=4)
        last = await store.stream_last_seq()
        events = (await store.read(store.subjects.all)).events
        writes = await record_writes(s.db_url, pool, events)

        tune_gc()  # as the projector process does
        rates: list[tuple[float, float, float]] = []
        for run in range(1, repeats + 1):
            durable = f"bench{suffix}{run}"
            # alternate the order, so that a drift of the machine weighs on all alike
            if run % 2:
                projector_s, cpu_used = await catch_up(s.db_url, pool, store, last, durable)
                raw_s = await raw_inserts(s.db_url, pool, writes)
                null_s, _ = await catch_up(s.db_url, pool, store, last, f"{durable}n", NullProjector)
            else:
                null_s, _ = await catch_up(s.db_url, pool, store, last, f"{durable}n", NullProjector)
                raw_s = await raw_inserts(s.db_url, pool, writes)
                projector_s, cpu_used = await catch_up(s.db_url, pool, store, last, durable)
            projector_rate, raw_rate, null_rate = last / projector_s, len(events) / raw_s, last / null_s
            rates.append((projector_rate, raw_rate, null_rate))
            print(
                f"run {run}: projector {projector_rate:,.0f} events/s ({projector_s:.2f}s; CPU: {cpu_used}); "
                f"raw {raw_rate:,.0f} events/s; projector / raw {projector_rate / raw_rate:.0%}; "
                f"without writes {null_rate:,.0f} events/s"
            )
        await pool.close()
        await nc.drain()

    ratios = [p / r for p, r, _ in rates]
    print(
        f"projector catch-up, median of {repeats}: {statistics.median(p for p, _, _ in rates):,.0f} events/s "
        f"({last:,} events, {BATCH} a batch)"
    )
    print(
        f"raw batched inserts (the projector's own writes replayed, {BATCH} events/commit), median: "
        f"{statistics.median(r for _, r, _ in rates):,.0f} events/s"
    )
    spread = f"runs {min(ratios):.0%} to {max(ratios):.0%}"
    print(
        f"projector / raw: median {statistics.median(ratios):.0%} ({spread})"
        "  (targets: >= 80% and >= 20,000 events/s)"
    )
    print(
        "projector without writes (consume, decode, fold, build rows; nothing sent to PostgreSQL), "
        f"median: {statistics.median(n for _, _, n in rates):,.0f} events/s"
    )


if __name__ == "__main__":
    # The projector process runs on uvloop (through uvicorn); so does its benchmark.
    args = [int(a) for a in sys.argv[1:3]]
    uvloop.run(main(args[0] if args else 100_000, args[1] if len(args) > 1 else 3))
