"""The projector's catch-up and a rebuild, on a log of a million events, next to the raw insert rate.

    make bench     (or: uv run python -m bench.projector_catchup [LOG_EVENTS [CATCHUP_EVENTS [REPEATS]]])

The log (default 1,000,000 events) is built in seconds (bench.biglog: one protocol run appended through
the real ``append``, one message per decision, then copied with fresh ids). Then:

1. On its first CATCHUP_EVENTS (default 100,000), REPEATS times (default 3), alternating the order:
   (a) the projector catching up from sequence 1 into a fresh read model through a fresh durable
   consumer (the read model only: the feed, which the same process also writes, is left out);
   (b) the raw insert rate: the projector's own writes for the same events (events COPY, one statement
   for the aggregates and the checkpoint), recorded once and replayed batch by batch into a fresh
   schema, with no consuming, decoding or folding; (c) the projector with nothing sent to PostgreSQL:
   the ceiling its Python side sets. Medians are printed, and catch-up / raw.
2. The whole log rebuilt (``deksdenflow projector rebuild``'s code, swap included) while the API, as its
   own process, serves reads of the live read model (paced, see bench.serving): the rebuild's time and
   rate, rebuild / catch-up (the catch-up median of 1.), and how the reads fared meanwhile.

This VM's absolute figures move with what else runs on its two cores: the load average is printed, and
the goals are ratios measured in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
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
from deksdenflow_projector.rebuild import rebuild
from deksdenflow_projector.service import Projector
from deksdenflow_projector.settings import ProjectorSettings

from bench import cpu
from bench.biglog import build_log
from bench.servers import servers
from bench.serving import api, reading

BATCH = 500  # messages in a batch of the projector (its default batch_size)
RECORDED, RAW = "bench_recorded", "bench_raw"
Writes = list[list[tuple[str, tuple[Any, ...], dict[str, Any]]]]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


class Recorder:
    """A connection stand-in that passes every call through and records the writes (with their
    arguments), so the very same inserts can be replayed later without any projection work."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.batches: Writes = []

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


async def decisions_up_to(store: JetStreamEventStore, last: int) -> list[list[RecordedEvent]]:
    """The decisions (the events of each message) from sequence 1 to ``last``."""
    by_seq: dict[int, list[RecordedEvent]] = {}
    seq = 1
    while seq <= last:
        page, _ = await store.read_page(store.subjects.all, seq)
        for event in page:
            if event.stream_seq <= last:
                by_seq.setdefault(event.stream_seq, []).append(event)
        seq = page[-1].stream_seq + 1
    return list(by_seq.values())


async def record_writes(db_url: str, pool: asyncpg.Pool, decisions: list[list[RecordedEvent]]) -> Writes:
    """The projector's writes for these decisions (statements and rows), batch by batch of ``BATCH``
    messages, as it makes them."""
    await asyncio.to_thread(migrate, db_url, schema=RECORDED)
    async with pool.acquire() as conn:
        recorder = Recorder(conn)
        for start in range(0, len(decisions), BATCH):
            batch = [e for decision in decisions[start : start + BATCH] for e in decision]
            async with recorder.transaction():
                await apply_batch(cast(asyncpg.Connection, recorder), RECORDED, batch)
    return recorder.batches


async def raw_inserts(db_url: str, pool: asyncpg.Pool, batches: Writes) -> float:
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
    task = asyncio.create_task(projector.project())
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


async def catch_ups(
    db_url: str, pool: asyncpg.Pool, store: JetStreamEventStore, last: int, events: int, repeats: int
) -> float:
    """Part 1 (see the module's docstring); returns the median catch-up rate."""
    writes = await record_writes(db_url, pool, await decisions_up_to(store, last))
    rates: list[tuple[float, float, float]] = []
    for run in range(1, repeats + 1):
        durable = f"bench{uuid.uuid4().hex[:8]}"
        # alternate the order, so that a drift of the machine weighs on all alike
        if run % 2:
            null_s, _ = await catch_up(db_url, pool, store, last, f"{durable}n", NullProjector)
            raw_s = await raw_inserts(db_url, pool, writes)
            projector_s, cpu_used = await catch_up(db_url, pool, store, last, durable)
        else:
            projector_s, cpu_used = await catch_up(db_url, pool, store, last, durable)
            raw_s = await raw_inserts(db_url, pool, writes)
            null_s, _ = await catch_up(db_url, pool, store, last, f"{durable}n", NullProjector)
        projector_rate, raw_rate, null_rate = events / projector_s, events / raw_s, events / null_s
        rates.append((projector_rate, raw_rate, null_rate))
        print(
            f"run {run}: catch-up {projector_rate:,.0f} events/s ({projector_s:.2f}s; CPU: {cpu_used}); "
            f"raw {raw_rate:,.0f} events/s; catch-up / raw {projector_rate / raw_rate:.0%}; "
            f"without writes {null_rate:,.0f} events/s; {load()}",
            flush=True,
        )
    if repeats % 2 == 0:  # the last run ended with the projector that writes nothing: fill the read model
        await catch_up(db_url, pool, store, last, f"bench{uuid.uuid4().hex[:8]}")
    ratios = [p / r for p, r, _ in rates]
    catch_up_rate = statistics.median(p for p, _, _ in rates)
    print(
        f"projector catch-up, median of {repeats}: {catch_up_rate:,.0f} events/s "
        f"({events:,} events in {last:,} messages, {BATCH} messages a batch)  (target: >= 30,000 events/s)"
    )
    print(
        f"raw batched inserts (the projector's own writes replayed, {BATCH} messages/commit), median: "
        f"{statistics.median(r for _, r, _ in rates):,.0f} events/s"
    )
    spread = f"runs {min(ratios):.0%} to {max(ratios):.0%}"
    print(f"catch-up / raw: median {statistics.median(ratios):.0%} ({spread})")
    print(
        "projector without writes (consume, decode, fold, build rows; nothing sent to PostgreSQL), "
        f"median: {statistics.median(n for _, _, n in rates):,.0f} events/s"
    )
    return catch_up_rate


async def rebuild_serving(
    es: EventStoreSettings, db_url: str, store: JetStreamEventStore, run_id: str, catch_up_rate: float
) -> None:
    """Part 2 (see the module's docstring)."""
    async with api(es, db_url) as port, reading(port, f"/protocols/{run_id}") as reads:
        await asyncio.sleep(1)  # the reads run before the rebuild starts
        cpu_before, parts_before = cpu.snapshot(), resource.getrusage(resource.RUSAGE_CHILDREN)
        report = await rebuild(db_url, store)
        parts_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the parts' processes, once ended
        parts_s = sum(getattr(parts_after, f) - getattr(parts_before, f) for f in ("ru_utime", "ru_stime"))
        cpu_used = f"{cpu.used(cpu_before, cpu.snapshot())}, its part processes {parts_s:.1f} s"
        await asyncio.sleep(1)  # ... and after the swap
    rate = report.events_per_second
    print(
        f"rebuild of {report.events:,} events with the API serving: {report.seconds:.1f}s, "
        f"{rate:,.0f} events/s (CPU: {cpu_used}; {load()})  (target: 1M events in <= 60 s)"
    )
    print(f"rebuild / catch-up: {rate / catch_up_rate:.0%}  (target: >= 80%)")
    print(f"reads meanwhile (GET /protocols/{{id}}, {reads.summary()})")


async def main(log_events: int, catch_up_events: int, repeats: int) -> None:
    print(f"start: {load()}")
    async with servers() as s:
        suffix = uuid.uuid4().hex[:8]
        es = EventStoreSettings(
            nats_url=s.nats_url, stream_name=f"DF_BENCH_{suffix}", subject_prefix=f"b{suffix}"
        )
        nc = await connect(es, name="bench")
        store = JetStreamEventStore(nc, es)
        await store.provision()
        log = await build_log(store, target_events=log_events)
        print(
            f"built a log of {log.events:,} events in {log.messages:,} messages in {log.seconds:.1f}s "
            f"({log.events / log.seconds:,.0f} events/s; {log.runs:,} runs of {log.run_events} events "
            f"in {log.run_messages} decisions; {s.where})",
            flush=True,
        )
        pool = await asyncpg.create_pool(s.db_url, init=init_connection, min_size=2, max_size=4)
        tune_gc()  # as the projector process does
        last, events = log.prefix(catch_up_events)
        catch_up_rate = await catch_ups(s.db_url, pool, store, last, events, repeats)
        first = (await store.read_page(store.subjects.all, 1))[0][0]
        await pool.close()
        await rebuild_serving(es, s.db_url, store, first.envelope.aggregate_id, catch_up_rate)
        await nc.drain()
    print(f"end: {load()}")


if __name__ == "__main__":
    # The projector process runs on uvloop (through uvicorn); so does its benchmark.
    args = [int(a) for a in sys.argv[1:4]]
    defaults = [1_000_000, 100_000, 3]
    uvloop.run(main(*(args + defaults[len(args) :])))
