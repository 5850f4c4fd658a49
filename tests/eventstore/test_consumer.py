"""The shared consumer loop against a real nats-server: ack, retry, term, poison, heartbeat, batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from deksdenflow_core.consumer import BatchHandler, ConsumerLoop, ConsumerSpec, Delivery, Handler
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.errors import DeksdenflowError, InfrastructureError, InvalidCommand
from deksdenflow_core.eventstore import AppendMeta, JetStreamEventStore, Position
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from tests.support import eventually


def spec(store: JetStreamEventStore, **overrides: object) -> ConsumerSpec:
    values: dict[str, object] = {
        "durable": "test-worker",
        "filter_subjects": [store.subjects.all],
        "backoff_seconds": (0.05,),
        "fetch_timeout_seconds": 0.2,
        "ack_wait_seconds": 5.0,
        "heartbeat_seconds": 1.0,
    }
    values.update(overrides)
    return ConsumerSpec(**values)  # type: ignore[arg-type]  # test-only overrides of typed fields


async def append_paused(store: JetStreamEventStore, run_id: str) -> int:
    result = await store.append(
        project_id="p1",
        aggregate_type="protocol_run",
        aggregate_id=run_id,
        events=[ev.ProtocolRunPaused()],
        expected=Position(),
        meta=AppendMeta(source="t", actor="a", causation_id=run_id),
    )
    return result.last_seq


@asynccontextmanager
async def running(
    nc: NATS,
    store: JetStreamEventStore,
    consumer_spec: ConsumerSpec,
    handler: Handler | BatchHandler,
    *,
    batches: bool = False,
    on_failure: Callable[[Delivery, Exception], Awaitable[None]] | None = None,
) -> AsyncIterator[ConsumerLoop]:
    loop = ConsumerLoop(nc.jetstream(), store.stream, consumer_spec, on_failure=on_failure)
    await loop.ensure_consumer()
    task = asyncio.create_task(loop.run_batches(handler) if batches else loop.run(handler))  # type: ignore[arg-type]
    try:
        yield loop
    finally:
        loop.stop()
        await asyncio.wait_for(task, timeout=10)


async def settled(nc: NATS, store: JetStreamEventStore, durable: str = "test-worker") -> bool:
    try:
        info = await nc.jetstream().consumer_info(store.stream, durable)
    except NotFoundError:  # a batch pipeline creates its consumer again after a failed batch
        return False
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def test_handled_events_are_acked_in_order(nc: NATS, store: JetStreamEventStore) -> None:
    seqs = [await append_paused(store, f"r{i}") for i in range(5)]
    seen: list[int] = []

    async def handle(d: Delivery) -> None:
        seen.append(d.event.stream_seq)

    async with running(nc, store, spec(store), handle):
        await eventually(lambda: settled(nc, store), what="all events acked")
    assert seen == seqs


async def test_retryable_failures_are_retried_with_backoff(nc: NATS, store: JetStreamEventStore) -> None:
    await append_paused(store, "r1")
    deliveries: list[int] = []

    async def flaky(d: Delivery) -> None:
        deliveries.append(d.num_delivered)
        if d.num_delivered < 3:
            raise InfrastructureError("broker hiccup")

    async with running(nc, store, spec(store), flaky):
        await eventually(lambda: len(deliveries) == 3, what="third delivery")
        await eventually(lambda: settled(nc, store), what="ack after success")
    assert deliveries == [1, 2, 3]


async def test_permanent_failure_is_recorded_then_terminated(nc: NATS, store: JetStreamEventStore) -> None:
    await append_paused(store, "r1")
    await append_paused(store, "r2")
    failures: list[tuple[str, str]] = []
    handled: list[str] = []

    async def handle(d: Delivery) -> None:
        if d.event.envelope.aggregate_id == "r1":
            raise InvalidCommand("bad job")
        handled.append(d.event.envelope.aggregate_id)

    async def on_failure(d: Delivery, exc: Exception) -> None:
        failures.append((d.event.envelope.aggregate_id, type(exc).__name__))

    async with running(nc, store, spec(store), handle, on_failure=on_failure):
        await eventually(lambda: settled(nc, store), what="both settled")
    assert failures == [("r1", "InvalidCommand")]
    assert handled == ["r2"]


async def test_exhausted_retries_become_a_failure(nc: NATS, store: JetStreamEventStore) -> None:
    await append_paused(store, "r1")
    failures: list[int] = []

    async def always_down(d: Delivery) -> None:
        raise InfrastructureError("still down")

    async def on_failure(d: Delivery, exc: Exception) -> None:
        assert isinstance(exc, DeksdenflowError)
        assert exc.retryable
        failures.append(d.num_delivered)

    async with running(nc, store, spec(store, max_deliver=3), always_down, on_failure=on_failure):
        await eventually(lambda: failures == [3], what="failure after the third delivery")
        await eventually(lambda: settled(nc, store), what="terminated")


async def test_poison_messages_are_terminated_and_do_not_block(nc: NATS, store: JetStreamEventStore) -> None:
    await nc.jetstream().publish(f"{store.subjects.prefix}.evt.p1.protocol_run.x.paused", b"not an event")
    await append_paused(store, "r1")
    handled: list[str] = []

    async def handle(d: Delivery) -> None:
        handled.append(d.event.envelope.aggregate_id)

    async with running(nc, store, spec(store), handle):
        await eventually(lambda: settled(nc, store), what="poison terminated, event acked")
    assert handled == ["r1"]


async def test_heartbeats_keep_a_long_handler_from_being_redelivered(
    nc: NATS, store: JetStreamEventStore
) -> None:
    await append_paused(store, "r1")
    deliveries: list[int] = []
    release = asyncio.Event()

    async def slow(d: Delivery) -> None:
        deliveries.append(d.num_delivered)
        await asyncio.wait_for(release.wait(), timeout=10)

    consumer_spec = spec(store, ack_wait_seconds=1.0, heartbeat_seconds=0.2)
    async with running(nc, store, consumer_spec, slow):
        await eventually(lambda: deliveries == [1], what="first delivery")
        # Three ack-wait periods pass while the handler is busy; heartbeats must prevent redelivery.
        started = asyncio.get_running_loop().time()
        await eventually(lambda: asyncio.get_running_loop().time() - started > 3.0, what="three ack waits")
        release.set()
        await eventually(lambda: settled(nc, store), what="ack")
    assert deliveries == [1]


async def test_batches_are_acked_after_the_handler_and_redelivered_whole_on_failure(
    nc: NATS, store: JetStreamEventStore
) -> None:
    for i in range(4):
        await append_paused(store, f"r{i}")
    calls: list[list[int]] = []

    async def batch_handler(batch: list[Delivery]) -> None:
        calls.append([d.event.stream_seq for d in batch])
        if len(calls) == 1:
            raise InfrastructureError("transaction failed")

    async with running(nc, store, spec(store), batch_handler, batches=True):
        await eventually(lambda: settled(nc, store), what="batch acked")
    applied = sorted(seq for call in calls[1:] for seq in call)
    assert applied == [1, 2, 3, 4]
    assert calls[0] == [1, 2, 3, 4]


class Pipelined:
    """Stages whose first commit waits until the next batch is prepared, then fails."""

    def __init__(self) -> None:
        self.next_prepared = asyncio.Event()
        self.prepared: list[list[int]] = []
        self.committed: list[list[int]] = []
        self.failed = False
        self.discarded = 0

    async def prepare(self, batch: list[Delivery]) -> list[int]:
        seqs = [d.event.stream_seq for d in batch]
        self.prepared.append(seqs)
        if len(self.prepared) == 2:
            self.next_prepared.set()
        return seqs

    async def commit(self, seqs: list[int]) -> None:
        if not self.failed:
            self.failed = True
            await asyncio.wait_for(self.next_prepared.wait(), timeout=5)
            raise InfrastructureError("transaction failed")
        self.committed.append(seqs)

    def discard(self) -> None:
        self.discarded += 1

    async def position(self) -> int | None:
        return None


async def test_a_failed_commit_drops_the_batch_prepared_on_top_of_it(
    nc: NATS, store: JetStreamEventStore
) -> None:
    for i in range(8):
        await append_paused(store, f"r{i}")
    stages = Pipelined()
    loop = ConsumerLoop(nc.jetstream(), store.stream, spec(store, batch=4))
    await loop.ensure_consumer()
    task = asyncio.create_task(loop.run_pipeline(stages))
    try:
        await eventually(lambda: settled(nc, store), what="every batch committed and acked")
    finally:
        loop.stop()
        await asyncio.wait_for(task, timeout=10)
    assert stages.prepared[:2] == [[1, 2, 3, 4], [5, 6, 7, 8]], "the second batch was prepared meanwhile"
    assert stages.discarded >= 1
    assert stages.committed == [[1, 2, 3, 4], [5, 6, 7, 8]], "each batch committed once, in order"


class Checkpointed:
    """Stages that keep their own checkpoint and, like the projector, refuse a batch that does not
    continue it."""

    def __init__(self) -> None:
        self.checkpoint = 0
        self.refused = 0

    async def prepare(self, batch: list[Delivery]) -> list[int]:
        seqs = [d.event.stream_seq for d in batch if d.event.stream_seq > self.checkpoint]
        if seqs and seqs[0] != self.checkpoint + 1:
            self.refused += 1
            raise InfrastructureError(f"gap: {self.checkpoint} then {seqs[0]}")
        return seqs

    async def commit(self, seqs: list[int]) -> None:
        if seqs:
            assert seqs[0] == self.checkpoint + 1
            self.checkpoint = seqs[-1]

    def discard(self) -> None:
        pass

    async def position(self) -> int | None:
        return self.checkpoint


async def test_redeliveries_out_of_order_do_not_stall_an_ordered_pipeline(
    nc: NATS, store: JetStreamEventStore
) -> None:
    """The first half of the log waits in a long redelivery delay while the second half is deliverable
    at once (what nak-ed batches look like after a database restart): the pipeline still applies the
    log in order at once, because it reads from its own checkpoint, not from what JetStream redelivers."""
    for i in range(8):
        await append_paused(store, f"r{i}")
    consumer_spec = spec(store, batch=4, ack_all=True, max_ack_pending=8, ack_wait_seconds=60.0)
    loop = ConsumerLoop(nc.jetstream(), store.stream, consumer_spec)
    await loop.ensure_consumer()
    psub = await nc.jetstream().pull_subscribe_bind("test-worker", stream=store.stream)
    msgs = await psub.fetch(8, timeout=5)
    assert [m.metadata.sequence.stream for m in msgs] == list(range(1, 9))
    for m in msgs[:4]:
        await m.nak(delay=60)  # far beyond the deadline below
    for m in msgs[4:]:
        await m.nak()
    await psub.unsubscribe()
    stages = Checkpointed()
    task = asyncio.create_task(loop.run_pipeline(stages))
    try:
        await eventually(lambda: stages.checkpoint == 8, within=20, what="the whole log applied")
    finally:
        loop.stop()
        await asyncio.wait_for(task, timeout=10)


async def test_other_subscriptions_on_the_connection_are_served_as_before(
    nc: NATS, store: JetStreamEventStore
) -> None:
    seen: list[int] = []

    async def handler(batch: list[Delivery]) -> None:
        seen.extend(d.event.stream_seq for d in batch)

    async with running(nc, store, spec(store), handler, batches=True):
        seqs = [await append_paused(store, f"r{i}") for i in range(3)]
        # Direct gets answer on a plain subscription of the same connection.
        loaded = await store.read(store.subjects.all)
        assert [e.stream_seq for e in loaded.events] == seqs
        await eventually(lambda: settled(nc, store), what="batches acked")
    assert seen == seqs


async def test_a_batch_consumer_whose_consumer_is_deleted_creates_it_again_and_goes_on(
    nc: NATS, store: JetStreamEventStore
) -> None:
    """A consumer deleted under a running pipeline (or lost with a broker restart) is positioned again
    after the last commit; the loop does not crash (a crash per broker hiccup reads as a crash loop)."""
    seen: list[int] = []

    async def handler(batch: list[Delivery]) -> None:
        seen.extend(d.event.stream_seq for d in batch)

    loop = ConsumerLoop(nc.jetstream(), store.stream, spec(store))
    await loop.ensure_consumer()
    task = asyncio.create_task(loop.run_batches(handler))
    try:
        first = await append_paused(store, "r1")
        await eventually(lambda: seen == [first], what="the first event handled")
        await nc.jetstream().delete_consumer(store.stream, "test-worker")
        second = await append_paused(store, "r2")
        await eventually(lambda: second in seen, within=30, what="the event after the deletion handled")
        assert not task.done(), "the loop must keep running"
        assert seen.count(second) == 1
    finally:
        loop.stop()
        await asyncio.wait_for(task, timeout=15)
