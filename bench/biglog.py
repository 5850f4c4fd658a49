"""A log of a million events in seconds: one protocol run recorded, then copied with fresh ids.

Producing events with the real ``decide`` costs ~100 µs each in Python (a million: minutes), and a
conditional append waits for its acknowledgement. Here one run (a few projects' worth of decisions, one
message per command, exactly as the API and the workers append them) goes through the real ``append``
once; its stored messages (subject, headers, body) are then published again and again, each copy with
every id in it renamed (the run, its steps, its events, its project), without waiting for each
acknowledgement. Every copy is a legal run of its own project: same decisions, same sizes, same mix of
single-event and multi-event messages as the recorded one.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.eventstore import AppendMeta, JetStreamEventStore, Position
from deksdenflow_core.nats_internals import connection_of

from bench.workload import append_with_retry, run_decisions

# Stands for the first 8 characters of every id in a recorded message; a copy puts its number there.
_MARK = b"@@@@@@@@"
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Headers the server adds to a direct get, or that only made sense for the recorded append.
_DROPPED = ("Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp", "Nats-Expected-")
# Acknowledgements outstanding at most (JetStream stores in the order it receives, per connection).
_WINDOW = 2000


@dataclass(frozen=True)
class Recorded:
    """One stored message of the recorded run, its ids marked."""

    subject: bytes
    headers: tuple[tuple[str, bytes], ...]
    body: bytes
    events: int


def _marked(data: bytes, project_id: bytes) -> bytes:
    data = data.replace(project_id, _MARK + project_id[8:])
    return _UUID.sub(lambda m: _MARK + m.group(0)[8:], data)


async def record_run(store: JetStreamEventStore) -> list[Recorded]:
    """Append one run through the real ``append`` (one decision per command) and read its messages back."""
    project = ProjectState(project_id=uuid.uuid4().hex, exists=True, name="bench", git_url="file:///b.git")
    pid = project.project_id.encode()
    decisions = run_decisions(project, 1)
    run_id = decisions[0][0].protocol_run_id  # type: ignore[attr-defined]
    position, seqs = Position(), []
    for n, events in enumerate(decisions):
        meta = AppendMeta(source="bench", actor="bench", causation_id=f"{run_id}/{n}", correlation_id=run_id)
        result = await append_with_retry(store, project.project_id, run_id, events, position, meta)
        last = result.events[-1]
        position = Position(last_seq=last.stream_seq, version=last.envelope.aggregate_version)
        seqs.append(last.stream_seq)
    nc = connection_of(store.jetstream())
    recorded = []
    for seq, events in zip(seqs, decisions, strict=True):
        reply = await nc.request(f"$JS.API.DIRECT.GET.{store.stream}", json.dumps({"seq": seq}).encode())
        headers = reply.headers or {}
        kept = tuple((k, _marked(v.encode(), pid)) for k, v in headers.items() if not k.startswith(_DROPPED))
        subject = _marked(headers["Nats-Subject"].encode(), pid)
        recorded.append(Recorded(subject, kept, _marked(reply.data, pid), len(events)))
    return recorded


def _copies(recorded: list[Recorded], first: int, count: int) -> Iterator[tuple[str, bytes, dict[str, str]]]:
    for k in range(first, first + count):
        mark = f"{k:08x}".encode()
        for r in recorded:
            headers = {name: value.replace(_MARK, mark).decode() for name, value in r.headers}
            yield r.subject.replace(_MARK, mark).decode(), r.body.replace(_MARK, mark), headers


@dataclass(frozen=True)
class BigLog:
    """What :func:`build_log` appended: ``runs`` copies of a run of ``run_events`` events in ``run_messages``
    messages, from sequence 1 on."""

    runs: int
    run_events: int
    run_messages: int
    seconds: float

    @property
    def events(self) -> int:
        return self.runs * self.run_events

    @property
    def messages(self) -> int:
        return self.runs * self.run_messages

    def prefix(self, events: int) -> tuple[int, int]:
        """The last sequence and the event count of the shortest prefix of whole runs with ``events``."""
        runs = min(self.runs, max(1, -(-events // self.run_events)))
        return runs * self.run_messages, runs * self.run_events


async def build_log(store: JetStreamEventStore, *, target_events: int) -> BigLog:
    """Fill an empty log with copies of one recorded run until it holds at least ``target_events``."""
    started = time.perf_counter()
    recorded = await record_run(store)
    per_run = sum(r.events for r in recorded)
    copies = max(0, -(-target_events // per_run) - 1)
    nc = connection_of(store.jetstream())
    inbox = nc.new_inbox()
    room = asyncio.Semaphore(_WINDOW)
    errors: list[bytes] = []

    async def acked(msg: object) -> None:
        data: bytes = msg.data  # type: ignore[attr-defined]
        if b'"error"' in data:
            errors.append(data)
        room.release()

    sub = await nc.subscribe(inbox, cb=acked)
    try:
        for subject, body, headers in _copies(recorded, 1, copies):
            await room.acquire()
            await nc.publish(subject, body, reply=inbox, headers=headers)
        for _ in range(_WINDOW):  # every acknowledgement is in
            await room.acquire()
    finally:
        await sub.unsubscribe()
    if errors:
        raise RuntimeError(f"{len(errors)} copies refused, e.g. {errors[0][:300]!r}")
    return BigLog(copies + 1, per_run, len(recorded), time.perf_counter() - started)
