"""The feed: every event of the log once, in log order, on its own subject; a subscriber filtering by event
type sees every event of the type exactly once, wherever it stood in its decision; a writer stopped
anywhere, or two writers at once, neither lose nor repeat an event."""

from __future__ import annotations

import asyncio
from collections import Counter

from deksdenflow_core.aggregates import Repository
from deksdenflow_core.consumer import ConsumerLoop, ConsumerSpec, Delivery
from deksdenflow_core.envelope import RecordedEvent, encode_headers
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_projector.feed import LOG_INDEX_HEADER, LOG_SEQ_HEADER, FeedWriter

from tests.projector.scenario import drive
from tests.support import eventually

REQUEST = "protocol_run.qa_requested"


async def _feed_ids(store: JetStreamEventStore) -> list[str]:
    loaded = await store.read(store.subjects.feed.all, stream=store.feed_stream)
    return [e.envelope.id for e in loaded.events]


async def _log_ids(store: JetStreamEventStore) -> list[str]:
    return [e.envelope.id for e in (await store.read(store.subjects.all)).events]


def _writer(store: JetStreamEventStore, batch: int = 7) -> FeedWriter:
    return FeedWriter(store, durable="feed", batch=batch, ack_wait_seconds=5)


async def _run_until_whole(store: JetStreamEventStore, *writers: FeedWriter) -> None:
    last = await store.stream_last_seq()
    tasks = [asyncio.create_task(w.run()) for w in writers]
    try:

        async def whole() -> bool:
            for task in tasks:
                if task.done():
                    task.result()  # a crashed writer fails the test at once
            return len(await _feed_ids(store)) >= len(await _log_ids(store)) and any(
                w.log_seq >= last for w in writers
            )

        await eventually(whole, within=60, what="the feed to hold the whole log")
    finally:
        for w in writers:
            w.stop()
        await asyncio.gather(*tasks)


async def test_the_feed_holds_each_event_once_in_log_order_and_type_filters_find_them_all(
    store: JetStreamEventStore, repo: Repository
) -> None:
    await drive(repo, projects=2, runs_per_project=2)
    log = (await store.read(store.subjects.all)).events
    several = [e for e in log if e.index > 0]
    assert any(e.envelope.type == REQUEST for e in several), "the scenario has requests inside decisions"
    # On the log, a type filter selects decisions by their first event: it misses those requests.
    led = (await store.read(store.subjects.of_type(REQUEST))).events
    assert {e.envelope.id for e in led if e.envelope.type == REQUEST} < {
        e.envelope.id for e in log if e.envelope.type == REQUEST
    }
    await _run_until_whole(store, _writer(store))
    assert await _feed_ids(store) == [e.envelope.id for e in log]
    feed = (await store.read(store.subjects.feed.all, stream=store.feed_stream)).events
    assert [(f.envelope, f.event) for f in feed] == [(e.envelope, e.event) for e in log]

    # A durable subscriber on the feed, filtering by type, as a worker or an analytics consumer does.
    seen: list[str] = []

    async def take(delivery: Delivery) -> None:
        seen.append(delivery.event.envelope.id)

    spec = ConsumerSpec(durable="by_type", filter_subjects=[store.subjects.feed.of_type(REQUEST)], batch=3)
    loop = ConsumerLoop(store.jetstream(), store.feed_stream, spec)
    consuming = asyncio.create_task(loop.run(take))
    wanted = [e.envelope.id for e in log if e.envelope.type == REQUEST]
    try:
        await eventually(lambda: len(seen) >= len(wanted), within=30, what="every request delivered")
    finally:
        loop.stop()
        await asyncio.wait_for(consuming, 30)
    assert seen == wanted, "every event of the type, once, in log order"


async def _copy_to_feed(store: JetStreamEventStore, events: list[RecordedEvent]) -> None:
    """Append ``events`` to the feed as the writer does."""
    js = store.jetstream()
    for e in events:
        env = e.envelope
        headers = {**encode_headers(env), LOG_SEQ_HEADER: str(e.stream_seq), LOG_INDEX_HEADER: str(e.index)}
        subject = store.subjects.feed.event(env.project_id, env.aggregate_type, env.aggregate_id, env.type)
        await js.publish(subject, e.payload_json, headers=headers, stream=store.feed_stream)


async def test_a_writer_stopped_anywhere_resumes_after_the_feeds_last_event(
    store: JetStreamEventStore, repo: Repository
) -> None:
    await drive(repo, projects=1, runs_per_project=2)
    log = (await store.read(store.subjects.all)).events
    # What a writer stopped inside a decision leaves: the feed up to the first event of a decision of
    # several, and not the rest of it (it died between two appends).
    split = next(e for e in log if e.index == 1)
    before = [e for e in log if e.position < split.position]
    await _copy_to_feed(store, before)
    # More decisions while no writer runs, then a new writer.
    await drive(repo, projects=1, runs_per_project=1)
    await _run_until_whole(store, _writer(store, batch=4))
    ids = await _feed_ids(store)
    assert ids == await _log_ids(store)
    assert not [i for i, n in Counter(ids).items() if n > 1]
    # Stopped between two batches, then started again after more decisions.
    await drive(repo, projects=1, runs_per_project=1)
    await _run_until_whole(store, _writer(store, batch=2))
    assert await _feed_ids(store) == await _log_ids(store)


async def test_two_writers_at_once_never_repeat_nor_reorder_an_event(
    store: JetStreamEventStore, repo: Repository
) -> None:
    """One writer per deployment (like the projector); two at once — a rolling update — take turns at
    the durable and get in each other's way, but every append is conditional on the feed's last
    sequence: nothing is written twice or out of order, and the one left finishes the feed."""
    await drive(repo, projects=2, runs_per_project=2)
    first, second = _writer(store, batch=5), _writer(store, batch=3)
    running = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
    try:
        await eventually(lambda: _some_feed(store), within=30, what="the writers to write")
        feed = await _feed_ids(store)  # while they run: a prefix of the log
        assert feed == (await _log_ids(store))[: len(feed)]
    finally:
        first.stop()
        await asyncio.gather(*running[:1])
        second.stop()
        await asyncio.gather(*running[1:])
    await _run_until_whole(store, _writer(store, batch=4))
    assert await _feed_ids(store) == await _log_ids(store), "once each, in log order"


async def _some_feed(store: JetStreamEventStore) -> bool:
    return len(await _feed_ids(store)) > 10


async def test_a_feed_made_for_a_log_that_exists_starts_where_the_log_stands(
    store: JetStreamEventStore, repo: Repository
) -> None:
    """A deployment whose log was written before the feed existed: the earlier events stay where they
    are (one message each on the log's subjects); the feed, and so the workers, start with what follows."""
    await drive(repo, projects=1, runs_per_project=1)
    before = len(await _log_ids(store))
    await store.connection.request(f"$JS.API.STREAM.DELETE.{store.feed_stream}", b"", timeout=5)
    await store.provision()  # the upgraded release makes the feed
    await drive(repo, projects=1, runs_per_project=1)
    await _run_until_whole_after(store, before)
    assert await _feed_ids(store) == (await _log_ids(store))[before:]


async def _run_until_whole_after(store: JetStreamEventStore, skipped: int) -> None:
    writer = _writer(store)
    task = asyncio.create_task(writer.run())
    last = await store.stream_last_seq()
    wanted = len(await _log_ids(store)) - skipped
    try:
        await eventually(
            lambda: _feed_holds(store, wanted, writer, last, task), within=60, what="the feed to catch up"
        )
    finally:
        writer.stop()
        await task


async def _feed_holds(
    store: JetStreamEventStore, wanted: int, writer: FeedWriter, last: int, task: asyncio.Task[None]
) -> bool:
    if task.done():
        task.result()
    return writer.log_seq >= last and len(await _feed_ids(store)) >= wanted
