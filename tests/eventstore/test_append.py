"""The event store against a real nats-server: concurrency, dedup, atomicity, load."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Sequence

import pytest
from deksdenflow_core.contracts.base import ContractModel
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import project as pev
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.errors import ConcurrencyConflict, ConfigurationError
from deksdenflow_core.eventstore import (
    AppendMeta,
    AppendResult,
    JetStreamEventStore,
    Position,
    check_server_version,
)
from deksdenflow_core.nats_internals import UPSTREAM_HEADER_PARSER, parse_header_lines
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NATS

META = AppendMeta(source="tests", actor="user:test", correlation_id="corr", causation_id="cause")


async def _count(store: JetStreamEventStore) -> int:
    return await store.stream_last_seq()


START = Position()


async def append_events(
    store: JetStreamEventStore,
    agg: str,
    events: Sequence[ContractModel],
    expected: Position = START,
    meta: AppendMeta = META,
) -> AppendResult:
    """Append ``events`` to the run ``agg`` of project ``p1``."""
    return await store.append(
        project_id="p1",
        aggregate_type="protocol_run",
        aggregate_id=agg,
        events=events,
        expected=expected,
        meta=meta,
    )


async def test_provision_is_idempotent_and_keeps_the_log(store: JetStreamEventStore) -> None:
    await append_events(store, "r1", [ev.ProtocolRunPaused()], Position())
    config = await store.provision()
    again = await store.provision()
    assert config == again
    assert config["storage"] == "file"
    assert (config["max_age"], config["max_msgs"], config["max_bytes"]) == (0, -1, -1), "kept forever"
    assert (config["deny_delete"], config["deny_purge"]) == (True, True), "the audit trail is append-only"
    assert config["allow_atomic"]
    assert config["allow_direct"]
    assert await _count(store) == 1


async def test_stale_append_is_rejected_and_nothing_is_written(store: JetStreamEventStore) -> None:
    first = await append_events(store, "r1", [ev.ProtocolRunPaused()], Position())
    assert first.last_seq == 1
    attempts: list[list[ContractModel]] = [
        [ev.ProtocolRunResumed()],
        [ev.ProtocolRunResumed(), ev.ProtocolRunPaused()],
    ]
    for events in attempts:
        with pytest.raises(ConcurrencyConflict) as info:
            await append_events(
                store,
                "r1",
                events,
                Position(),
                AppendMeta(source="t", actor="a", causation_id=str(uuid.uuid4())),
            )
        assert info.value.fields["actual_seq"] == 1
    assert await _count(store) == 1
    loaded = await store.load("protocol_run", "r1")
    assert [type(e.event) for e in loaded.events] == [ev.ProtocolRunPaused]


async def test_other_aggregates_do_not_conflict(store: JetStreamEventStore) -> None:
    await append_events(store, "r1", [ev.ProtocolRunPaused()], Position())
    other = await append_events(
        store,
        "r2",
        [ev.ProtocolRunPaused()],
        Position(),
        AppendMeta(source="t", actor="a", causation_id="c2"),
    )
    assert other.last_seq == 2


async def test_resending_an_event_id_does_not_duplicate_it(store: JetStreamEventStore) -> None:
    single = await append_events(store, "r1", [ev.ProtocolRunPaused()], Position())
    again = await append_events(store, "r1", [ev.ProtocolRunPaused()], Position())
    assert again.duplicate
    assert again.last_seq == single.last_seq
    batch_meta = AppendMeta(source="t", actor="a", causation_id="batch")
    pos = Position(last_seq=1, version=1)
    decision = await append_events(
        store, "r1", [ev.ProtocolRunResumed(), ev.ProtocolRunPaused()], pos, batch_meta
    )
    assert [(e.stream_seq, e.index) for e in decision.events] == [(2, 0), (2, 1)]
    replay = await append_events(
        store, "r1", [ev.ProtocolRunResumed(), ev.ProtocolRunPaused()], pos, batch_meta
    )
    assert replay.duplicate
    assert [(e.stream_seq, e.index) for e in replay.events] == [(2, 0), (2, 1)]
    assert [e.envelope.id for e in replay.events] == [e.envelope.id for e in decision.events]
    assert await _count(store) == 2, "a decision of two events is one message"


async def test_a_batch_is_atomic_and_versions_are_consecutive(store: JetStreamEventStore) -> None:
    result = await append_events(
        store, "r1", [ev.ProtocolRunPaused(), ev.ProtocolRunResumed(), ev.ProtocolRunPaused()], Position()
    )
    loaded = await store.load("protocol_run", "r1")
    assert [e.envelope.aggregate_version for e in loaded.events] == [1, 2, 3]
    assert [e.position for e in loaded.events] == [e.position for e in result.events]
    assert loaded.position == Position(last_seq=1, version=3)


async def test_two_concurrent_writers_end_with_exactly_one_winner(store: JetStreamEventStore) -> None:
    await append_events(store, "r1", [ev.ProtocolRunPaused()], Position())
    base = Position(last_seq=1, version=1)

    async def writer(i: int) -> str:
        meta = AppendMeta(source="t", actor=f"w{i}", causation_id=f"writer-{i}")
        events: list[ContractModel] = [ev.ProtocolRunResumed()]
        if i % 2 == 0:
            events.append(ev.ProtocolRunPaused())
        try:
            await append_events(store, "r1", events, base, meta)
        except ConcurrencyConflict:
            return "conflict"
        return "won"

    results = await asyncio.gather(*(writer(i) for i in range(8)))
    assert results.count("won") == 1
    assert results.count("conflict") == 7
    loaded = await store.load("protocol_run", "r1")
    winners = {e.envelope.actor for e in loaded.events[1:]}
    assert len(winners) == 1


async def test_envelope_travels_as_cloudevents_headers_with_a_json_body(
    store: JetStreamEventStore, nc: NATS
) -> None:
    meta = AppendMeta(
        source="deksdenflow/tests",
        actor="user:ann",
        correlation_id="run-1",
        causation_id="req-1",
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )
    created = pev.ProjectRegistered(project_id="p1", name="demo", git_url="file:///x")
    result = await store.append(
        project_id="p1",
        aggregate_type="project",
        aggregate_id="p1",
        events=[created],
        expected=Position(),
        meta=meta,
    )
    raw = await nc.request(
        f"$JS.API.STREAM.MSG.GET.{store.stream}", json.dumps({"seq": result.last_seq}).encode()
    )
    message = json.loads(raw.data)["message"]
    assert message["subject"] == f"{store.subjects.prefix}.evt.p1.project.p1.registered"
    headers = base64.b64decode(message["hdrs"]).decode()
    for expected in (
        "ce-specversion: 1.0",
        "ce-type: project.registered",
        "ce-source: deksdenflow/tests",
        "ce-projectid: p1",
        "ce-aggregatetype: project",
        "ce-aggregateversion: 1",
        "ce-correlationid: run-1",
        "ce-causationid: req-1",
        "ce-actor: user:ann",
        "traceparent: 00-",
        "content-type: application/json",
        f"Nats-Msg-Id: {result.events[0].envelope.id}",
    ):
        assert expected in headers
    body = json.loads(base64.b64decode(message["data"]))
    assert body == {
        "project_id": "p1",
        "name": "demo",
        "git_url": "file:///x",
        "base_branch": "",
        "ci_provider": "CI_PROVIDER_UNSPECIFIED",
        "default_models": None,
        "local_path": "",
        "default_engines": None,
        "forge_repo": "",
        "ci_policy": None,
        "run_policy": None,
        "fallbacks": None,
    }


async def test_reading_pages_through_long_aggregates(store: JetStreamEventStore) -> None:
    position = Position()
    for i in range(0, 1200, 100):
        meta = AppendMeta(source="t", actor="a", causation_id=f"c{i}")
        events: list[ContractModel] = [
            ev.ProtocolRunPaused() if j % 2 == 0 else ev.ProtocolRunResumed() for j in range(100)
        ]
        last = (await append_events(store, "long", events, position, meta)).events[-1]
        position = Position(last_seq=last.stream_seq, version=last.envelope.aggregate_version)
    loaded = await store.load("protocol_run", "long")
    assert len(loaded.events) == 1200
    assert [e.envelope.aggregate_version for e in loaded.events] == list(range(1, 1201))
    assert (await store.load("protocol_run", "nothing-here")).events == []


def test_servers_without_subject_filtered_concurrency_are_refused() -> None:
    for old in ("2.9.10", "v2.10.22", "2.11.4"):
        with pytest.raises(ConfigurationError, match=r"too old: deksdenflow needs nats-server >= 2\.12"):
            check_server_version(old, "nats://old:4222")
    for fine in ("2.12.0", "2.15.1", "3.0.0-beta"):
        check_server_version(fine, "nats://new:4222")


def test_the_fast_header_parser_reads_what_nats_py_reads() -> None:
    headers = [
        b"ce-id: abc\r\nce-type: protocol_run.created\r\nNats-Msg-Id: 1\r\ntraceparent: 00-a-b-01\r\n\r\n",
        b"Status: 204\r\nDescription: EOB\r\nNats-Num-Pending: 0\r\n",
        b"X:  padded value \t\r\nY:\r\nZ: caf\xc3\xa9\r\nnot a header line\r\n",
        b"ce-subject: protocol_run/x\r\nce-time: 2026-11-24T10:00:00Z\r\ncontent-type: application/json\r\n",
        # shapes the shortcut must leave to upstream: padding, odd names, misplaced separators, bad UTF-8
        b"k: v \r\n",
        b"k:  v\r\n",
        b"k\t: v\r\n",
        b" k: v\r\n",
        b"a:b: c\r\n",
        b"\r\nB: : :",
        b"k: a: b\r\n",
        b"k: caf\xc3\r\nl: \xff\r\n",
        b"caf\xc3\xa9: v\r\n",
        b"k: v\x0c\r\n",
        # values with nothing to strip are taken as they are; a blank at any edge is stripped
        b"a: \r\nb: 2\r\n",
        b"a: x|y\r\nb: |\r\nc: x | y\r\n",
        b"a:  1\r\nb: 2\r\n",
        b"a: 1\r\nb: 2 \r\n",
        b"a: 1 \r\nb: 2\r\n",
        b"a: 1\r\nb:  2\r\n",
        b"a: \t1\r\nb: 2\r\n",
        b"a: 1\x0b\r\nb: 2\r\n",
        b"a: \x0c1\r\nb: 2\r\n",
        b"a: \r1\r\nb: 2\r\n",
        b"a: 1\n\r\nb: 2\r\n",
        b"a: 1\rb: 2\r\n",
        b"a: 1\nb: 2\r\n",
        b"a: caf\xc3\xa9 \xc2\xa0\r\nb: \xc2\x85x\r\n",
    ]
    for raw in headers:
        assert parse_header_lines(raw) == UPSTREAM_HEADER_PARSER(raw), raw


# Mostly lines the shortcut takes ("name: value"), now and then one that sends the whole block to upstream
# (an odd name or separator). The values of a block draw on one of these alphabets: each kind of blank
# by itself (with others, it would hide a blank the parser misses), or characters that are not blanks.
_NAME = st.sampled_from(["a", "b", "c", "a-b", "a|", "|"] * 6 + ["a:b", "a b", " a", "é"])
_SEPARATOR = st.sampled_from([": "] * 20 + [":", ":  ", " : "])
_ALPHABETS = [" a|", "\ta|", "\na|", "\ra|", "\x0ba|", "\x0ca|", "\x1f\xa0\x85é:|a"]


@settings(max_examples=1000)
@given(
    st.sampled_from(_ALPHABETS).flatmap(
        lambda alphabet: st.lists(
            st.tuples(_NAME, _SEPARATOR, st.text(alphabet=alphabet, max_size=4)), max_size=4
        )
    )
)
def test_the_fast_header_parser_reads_what_nats_py_reads_whatever_the_lines(
    lines: list[tuple[str, str, str]],
) -> None:
    raw = b"".join(f"{name}{separator}{value}\r\n".encode() for name, separator, value in lines) + b"\r\n"
    assert parse_header_lines(raw) == UPSTREAM_HEADER_PARSER(raw)
