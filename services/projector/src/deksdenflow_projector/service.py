"""The live projector: a durable consumer applying batches to the read model, and its lag."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time

import asyncpg
from deksdenflow_core import tracing
from deksdenflow_core.consumer import ConsumerLoop, ConsumerSpec, Delivery
from deksdenflow_core.consumer_metrics import ConsumerGauges
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.logging import get_logger
from deksdenflow_core.progress import Progress
from deksdenflow_core.readmodel import SCHEMA, WRITER_LOCK_KEY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from deksdenflow_projector.feed import FeedWriter
from deksdenflow_projector.projection import LiveProjection, PreparedBatch, checkpoint
from deksdenflow_projector.settings import ProjectorSettings

log = get_logger(__name__)


class Metrics:
    """The projector's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.lag = Gauge(
            "deksdenflow_projector_lag_events",
            "Stream last sequence minus checkpoint",
            registry=self.registry,
        )
        self.checkpoint = Gauge(
            "deksdenflow_projector_checkpoint", "Last applied stream sequence", registry=self.registry
        )
        self.applied = Counter(
            "deksdenflow_projector_events_applied", "Events applied", registry=self.registry
        )
        self.batch_seconds = Histogram(
            "deksdenflow_projector_batch_seconds", "Time to commit one batch", registry=self.registry
        )
        self.failures = Counter(
            "deksdenflow_projector_batch_failures", "Batches that failed", registry=self.registry
        )
        # Every durable consumer of the log and the feed (the workers' backlogs too): sampled here,
        # by the one process that always runs.
        self.consumers = ConsumerGauges(self.registry)


class Projector:
    """Applies delivered batches to the live schema; each batch is one transaction with the checkpoint.

    Batches go through the consumer's pipeline: batch N+1 is decoded and folded (``prepare``) while
    batch N is written (``commit``), so PostgreSQL works on its core while Python works on the other.
    The process also writes the feed (``feed``): the log's other projection, one message per event.
    """

    def __init__(self, pool: asyncpg.Pool, store: JetStreamEventStore, settings: ProjectorSettings) -> None:
        self._pool = pool
        self._store = store
        self._settings = settings
        self.projection = LiveProjection(pool, SCHEMA)
        self.metrics = Metrics()
        self.last_seq = 0
        self.stream_last_seq = 0
        self.last_progress = time.monotonic()
        self.progress = Progress(settings.stall_after_seconds)
        self.feed = FeedWriter(
            store,
            durable=settings.feed_durable,
            batch=settings.batch_size,
            ack_wait_seconds=settings.ack_wait_seconds,
            stall_after_seconds=settings.stall_after_seconds,
        )
        # Batches commit one at a time on one connection, held between them: taking it from the pool
        # for each batch would cost a round trip to reset it every time.
        self._writer: asyncpg.pool.PoolConnectionProxy | None = None
        # Per batch prepared and not committed yet, with spans recorded: its events by traceparent.
        self._traces: collections.deque[collections.Counter[str]] = collections.deque()
        self.loop = ConsumerLoop(
            store.jetstream(),
            store.stream,
            ConsumerSpec(
                durable=settings.durable,
                filter_subjects=[store.subjects.all],
                batch=settings.batch_size,
                # One batch commits, one is folded, two more arrive meanwhile. After a failed batch the
                # consumer starts again after the checkpoint (see ``position``): nothing is nak-ed.
                max_ack_pending=4 * settings.batch_size,
                ack_all=True,
                ack_wait_seconds=settings.ack_wait_seconds,
                heartbeat_seconds=max(0.5, settings.ack_wait_seconds / 4),
                fetch_timeout_seconds=0.5,
                # Pauses after consecutive failures: short, so that the projector catches up within
                # seconds of PostgreSQL coming back.
                backoff_seconds=(0.2, 0.5, 1.0, 2.0),
                max_deliver=-1,
            ),
            poison="retry",
        )

    async def prepare(self, batch: list[Delivery]) -> PreparedBatch:
        if tracing.enabled():  # the traces this batch serves, for its apply spans (in commit order)
            self._traces.append(collections.Counter(d.event.envelope.traceparent for d in batch))
        return await self.projection.prepare([d.event for d in batch])

    async def commit(self, prepared: PreparedBatch) -> None:
        started = time.perf_counter()
        started_ns = time.time_ns()
        traces = self._traces.popleft() if self._traces else None
        try:
            conn = self._writer = self._writer or await self._pool.acquire()
            # One round trip for both: the transaction, and the lock a rebuild takes to swap schemas
            # between two of our batches.
            await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK_KEY})")
            last = await self.projection.commit(conn, prepared)
            if self._settings.debug_batch_delay_seconds:
                await asyncio.sleep(self._settings.debug_batch_delay_seconds)
            await conn.execute("COMMIT")
        except BaseException as exc:
            if isinstance(exc, Exception):  # not a cancellation
                self.metrics.failures.inc()
            await self._release_writer()  # rolls back what was not committed
            raise
        if last != self.last_seq:  # not a redelivery of what was applied already
            self.metrics.applied.inc(prepared.events)
        self.last_seq = last
        self.metrics.checkpoint.set(last)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.last_progress = time.monotonic()
        if traces:
            tracing.record_applied("projector", "projector apply", traces, started_ns, time.time_ns())

    async def _release_writer(self) -> None:
        """Give the writing connection back to the pool (which rolls back an open transaction, or
        replaces the connection if it is broken)."""
        conn, self._writer = self._writer, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await self._pool.release(conn)

    def discard(self) -> None:
        self.projection.discard()
        self._traces.clear()

    async def position(self) -> int:
        """The checkpoint: the read model, not the JetStream consumer, knows what is applied."""
        async with self._pool.acquire() as conn:
            self.last_seq = await checkpoint(conn, SCHEMA)
        return self.last_seq

    def stalled(self) -> str | None:
        """Why the projector or the feed is stalled (decisions waiting, not moving), or None."""
        return self.progress.stalled(time.monotonic()) or self.feed.stalled()

    async def run(self) -> None:
        """Project and write the feed until ``stop()``; if either fails, the other is stopped too."""
        async with self._pool.acquire() as conn:
            self.last_seq = await checkpoint(conn, SCHEMA)
        tasks = [
            asyncio.create_task(self.project(), name="project"),
            asyncio.create_task(self.feed.run(), name="feed"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # raises the failure
        finally:
            self.stop()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def project(self) -> None:
        """The read model alone (``run`` without the feed), until ``stop()``."""
        try:
            await self.loop.run_pipeline(self)
        finally:
            await self._release_writer()

    def stop(self) -> None:
        """Finish the batches in hand, then return from ``run``."""
        self.loop.stop()
        self.feed.stop()

    async def sample_consumers(self) -> None:
        """Sample every durable consumer of the log and the feed once (``deksdenflow_consumer_*``)."""
        await self.metrics.consumers.sample(
            self._store.jetstream(), (self._store.stream, self._store.feed_stream)
        )

    async def track_consumers(self) -> None:
        """Sample the consumers every ``consumer_metrics_interval_seconds`` until cancelled."""
        await self.metrics.consumers.run(
            self._store.jetstream(),
            (self._store.stream, self._store.feed_stream),
            self._settings.consumer_metrics_interval_seconds,
        )

    async def track_lag(self) -> None:
        """Refresh the lag gauge (stream last sequence - checkpoint) and watch for a stall."""
        while True:
            try:
                self.stream_last_seq = await self._store.stream_last_seq()
                async with self._pool.acquire() as conn:
                    self.last_seq = await checkpoint(conn, SCHEMA)
                self.metrics.lag.set(max(0, self.stream_last_seq - self.last_seq))
                self.metrics.checkpoint.set(self.last_seq)
                self.feed.observe(self.stream_last_seq)
            except Exception as exc:
                log.warning("lag refresh failed", error=repr(exc))
            # Observed even when a refresh failed: a database that does not answer is how a stall looks.
            self.progress.observe(self.last_seq, self.stream_last_seq, time.monotonic())
            if reason := self.stalled():
                log.warning("projector stalled", reason=reason)
            await asyncio.sleep(self._settings.lag_interval_seconds)
