"""A decision of several events is one message: atomic and conditional as one append, each event with its
own id and envelope; the shape written before (an atomic batch of one message per event) still reads."""

from __future__ import annotations

import asyncio
import json

import pytest
from deksdenflow_core.contracts.base import ContractModel
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.envelope import BATCH_CONTENT_TYPE, MAX_DECISION_EVENTS, RecordedEvent, decode_all
from deksdenflow_core.errors import ConcurrencyConflict, ContractError
from deksdenflow_core.eventstore import AppendMeta, AppendResult, JetStreamEventStore, Position
from deksdenflow_core.settings import EventStoreSettings
from nats.aio.client import Client as NATS

from tests.eventstore.test_append import append_events

THREE: list[ContractModel] = [ev.ProtocolRunPaused(), ev.ProtocolRunResumed(), ev.ProtocolRunPaused()]


@pytest.fixture
def old_shape(nc: NATS, store_settings: EventStoreSettings) -> JetStreamEventStore:
    """The same log, written as before decisions were messages: several events, one message each."""
    return JetStreamEventStore(nc, store_settings, decision_bytes=0)


async def _raw(nc: NATS, store: JetStreamEventStore, seq: int) -> tuple[dict[str, str], bytes]:
    reply = await nc.request(
        f"$JS.API.DIRECT.GET.{store.stream}", json.dumps({"seq": seq}).encode(), timeout=5
    )
    return dict(reply.headers or {}), reply.data


async def test_a_decision_of_several_events_is_one_message_each_event_with_its_envelope(
    nc: NATS, store: JetStreamEventStore
) -> None:
    result = await append_events(store, "r1", THREE)
    assert await store.stream_last_seq() == 1, "one message"
    headers, body = await _raw(nc, store, 1)
    assert headers["content-type"] == BATCH_CONTENT_TYPE
    assert headers["Nats-Msg-Id"] == result.events[0].envelope.id
    items = json.loads(body)  # readable JSON any subscriber can use: CloudEvents batched mode
    assert [i["type"] for i in items] == [
        "protocol_run.paused",
        "protocol_run.resumed",
        "protocol_run.paused",
    ]
    assert [i["aggregateversion"] for i in items] == [1, 2, 3]
    assert all(i["specversion"] == "1.0" and i["data"] == {} for i in items)
    loaded = await store.load("protocol_run", "r1")
    assert [(e.stream_seq, e.index) for e in loaded.events] == [(1, 0), (1, 1), (1, 2)]
    assert [e.envelope for e in loaded.events] == [e.envelope for e in result.events]
    assert len({e.envelope.id for e in loaded.events}) == 3
    assert [e.position for e in loaded.events] == [1024, 1025, 1026]
    assert loaded.position == Position(last_seq=1, version=3)
    # The next decision is conditional on the one before, as for a single event.
    await append_events(store, "r1", [ev.ProtocolRunResumed()], loaded.position)
    with pytest.raises(ConcurrencyConflict):
        await append_events(
            store, "r1", THREE, loaded.position, AppendMeta(source="t", actor="a", causation_id="x")
        )


async def test_racing_decisions_of_several_events_leave_exactly_one_whole(store: JetStreamEventStore) -> None:
    await append_events(store, "r1", [ev.ProtocolRunPaused()])
    base = Position(last_seq=1, version=1)

    async def writer(n: int) -> AppendResult | ConcurrencyConflict:
        meta = AppendMeta(source="t", actor="a", causation_id=f"writer-{n}")
        try:
            return await append_events(
                store, "r1", [ev.ProtocolRunResumed(), ev.ProtocolRunPaused()] * 2, base, meta
            )
        except ConcurrencyConflict as exc:
            return exc

    outcomes = await asyncio.gather(*(writer(n) for n in range(8)))
    won = [o for o in outcomes if isinstance(o, AppendResult)]
    assert len(won) == 1
    loaded = await store.load("protocol_run", "r1")
    assert len(loaded.events) == 5, "the winner's four events, nothing of the losers"
    assert [e.envelope.id for e in loaded.events[1:]] == [e.envelope.id for e in won[0].events]
    assert {e.envelope.causation_id for e in loaded.events[1:]} == {won[0].events[0].envelope.causation_id}


async def test_a_decision_sent_again_is_a_duplicate_not_a_second_copy(store: JetStreamEventStore) -> None:
    first = await append_events(store, "r1", THREE)
    again = await append_events(store, "r1", THREE)  # e.g. its acknowledgement was lost
    assert again.duplicate
    assert [e.envelope.id for e in again.events] == [e.envelope.id for e in first.events]
    assert await store.stream_last_seq() == 1


async def test_the_shape_written_before_reads_the_same(
    store: JetStreamEventStore, old_shape: JetStreamEventStore
) -> None:
    old = await append_events(old_shape, "old", THREE)
    assert [e.stream_seq for e in old.events] == [1, 2, 3], "one message per event, an atomic batch"
    new = await append_events(store, "new", THREE)
    assert [(e.stream_seq, e.index) for e in new.events] == [(4, 0), (4, 1), (4, 2)]
    old_loaded, new_loaded = await store.load("protocol_run", "old"), await store.load("protocol_run", "new")

    def shape(events: list[RecordedEvent]) -> list[tuple[str, int, object]]:
        return [(e.envelope.type, e.envelope.aggregate_version, e.event) for e in events]

    assert shape(old_loaded.events) == shape(new_loaded.events)
    assert old_loaded.position == Position(last_seq=3, version=3)
    # Still conditional in the old shape: a stale writer conflicts and writes nothing.
    with pytest.raises(ConcurrencyConflict):
        await append_events(
            old_shape, "old", THREE, Position(last_seq=1, version=1), AppendMeta(source="t", actor="a")
        )
    assert await store.stream_last_seq() == 4


async def test_a_decision_too_large_for_one_message_is_written_as_an_atomic_batch(
    nc: NATS, store_settings: EventStoreSettings
) -> None:
    small = JetStreamEventStore(nc, store_settings, decision_bytes=200)
    await small.provision()
    summary = "x" * 500
    events = [ev.StepExecutionCompleted(step_run_id="s1", summary=summary), ev.ProtocolRunPaused()]
    result = await append_events(small, "big", events)
    assert [e.stream_seq for e in result.events] == [1, 2]
    loaded = await small.load("protocol_run", "big")
    assert [e.event for e in loaded.events] == events


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not JSON"),
        (b'{"a": 1}', "not an array"),
        (b"[]", "not an array"),
        (b'[{"type": "protocol_run.paused"}]', "not a structured event"),
        (b'[{"data": {}, "id": "1"}]', "miss"),
        (
            b'[{"data": {}, "id": "1", "type": "protocol_run.nope", "source": "s", '
            b'"time": "2026-01-01T00:00:00Z", "projectid": "p", "aggregatetype": "protocol_run", '
            b'"aggregateid": "r"}]',
            "unknown event type",
        ),
    ],
)
def test_a_malformed_decision_is_refused_whole_with_a_clear_error(body: bytes, says: str) -> None:
    with pytest.raises(ContractError) as caught:
        decode_all({"content-type": BATCH_CONTENT_TYPE}, body, 7)
    assert says in caught.value.message
    assert caught.value.fields.get("stream_seq") == 7


async def test_a_decision_holds_at_most_the_events_a_position_can_number(store: JetStreamEventStore) -> None:
    with pytest.raises(ContractError):
        await append_events(store, "r1", [ev.ProtocolRunPaused()] * (MAX_DECISION_EVENTS + 1))
    assert await store.stream_last_seq() == 0
