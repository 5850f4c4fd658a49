"""The event log on NATS JetStream: provisioning, append with optimistic concurrency, load.

* One stream (``DF_EVENTS`` by default), file storage, kept forever, message deletion and purge denied:
  it is the audit trail.
* ``append`` writes one decision: one or more events of one aggregate, as **one message** (see
  ``envelope``: binary mode for one event, batched mode for several), so a decision of several events
  costs what one event costs and is stored all or none. Only a decision too large for one message is
  written as a JetStream atomic batch of one message per event, the shape every multi-event append had
  before decisions existed; readers accept both. The write carries ``Nats-Expected-Last-Subject-Sequence``
  + ``…-Subject`` (a wildcard over the aggregate's subjects, or another consistency boundary such as a
  project's protocol catalog) and ``Nats-Msg-Id`` = the first event's id. A stale writer gets
  ``ConcurrencyConflict`` and nothing is written; a decision sent again is a duplicate, reported as such
  and not stored twice. The subject names the decision's first event.
* ``read`` pages through a subject filter with batched direct gets (no consumer to create or delete).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from opentelemetry.trace import SpanKind

from deksdenflow_core.contracts.base import ContractModel
from deksdenflow_core.envelope import (
    Envelope,
    RecordedEvent,
    decode_all,
    encode,
    encode_decision,
    event_type_of,
)
from deksdenflow_core.errors import (
    ConcurrencyConflict,
    ConfigurationError,
    ContractError,
    InfrastructureError,
)
from deksdenflow_core.nats_internals import use_fast_header_parser
from deksdenflow_core.redact import redact_url
from deksdenflow_core.settings import EventStoreSettings
from deksdenflow_core.subjects import Subjects
from deksdenflow_core.tracing import current_traceparent, enabled, span

# On the feed's stream: the first decision of the log the feed holds (see ``provision``).
FEED_FROM_METADATA = "deksdenflow_feed_from"
_ID_NAMESPACE = uuid.UUID("0c5a4b1e-7d7e-4f55-8f0e-2d1f3a9b6c10")
_ERR_WRONG_LAST_SEQUENCE = 10071
_ERR_BATCH_DUPLICATE_ID = 10201
_ERR_STREAM_NOT_FOUND = 10059
_ERR_NO_MESSAGE = 404
_READ_BATCH = 512
# Room left in a message for headers (the envelope of a decision's first event and the OCC headers).
_HEADROOM = 4096
_WRONG_SEQ = re.compile(r"wrong last sequence: (\d+)")

# What nats-py raises when the server cannot be reached or answer now: not connected (yet, any more),
# draining or closing, a server shutting down or restarting, a request nobody answered in time.
# Every one is worth a retry later, so each becomes an ``InfrastructureError`` (the API's 503), never an
# unexpected error.
NATS_UNAVAILABLE: tuple[type[Exception], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoServersError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
)


@contextmanager
def nats_unavailable_as_infrastructure(what: str) -> Iterator[None]:
    """Raise the errors of ``NATS_UNAVAILABLE`` inside the block as ``InfrastructureError``s."""
    try:
        yield
    except NATS_UNAVAILABLE as exc:
        raise InfrastructureError(f"{what}: NATS is unavailable ({type(exc).__name__})") from exc


@dataclass(frozen=True)
class Position:
    """Where an aggregate (or another consistency boundary) stands in the log."""

    last_seq: int = 0
    version: int = 0


@dataclass(frozen=True)
class AppendMeta:
    """Who and what caused an append. Event ids default to ids derived from the causation."""

    source: str
    actor: str
    correlation_id: str = ""
    causation_id: str = ""
    traceparent: str = ""
    event_ids: Sequence[str] | None = None


@dataclass(frozen=True)
class AppendResult:
    """The events as stored. ``duplicate`` means they had been appended before (same ids)."""

    events: list[RecordedEvent]
    duplicate: bool = False

    @property
    def last_seq(self) -> int:
        return self.events[-1].stream_seq if self.events else 0


@dataclass(frozen=True)
class Loaded:
    """Events matching a filter, in log order, and the position after the last one."""

    events: list[RecordedEvent] = field(default_factory=list)

    @property
    def position(self) -> Position:
        if not self.events:
            return Position()
        last = self.events[-1]
        return Position(last_seq=last.stream_seq, version=last.envelope.aggregate_version or len(self.events))


MIN_SERVER_VERSION = (2, 12)


def check_server_version(version: str, url: str) -> None:
    """Refuse servers that lack what the log relies on, with a message that says what to do.

    ``Nats-Expected-Last-Subject-Sequence-Subject`` (optimistic concurrency over an aggregate's
    wildcard) needs nats-server 2.11, atomic batch publish 2.12. On an older server the first header
    would be silently ignored and concurrent writers would both win: never run on one.
    """
    match = re.match(r"^v?(\d+)\.(\d+)", version)
    found = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if found < MIN_SERVER_VERSION:
        need = ".".join(map(str, MIN_SERVER_VERSION))
        raise ConfigurationError(
            f"nats-server {version} at {url} is too old: deksdenflow needs nats-server >= {need} "
            "(subject-filtered optimistic concurrency and atomic batch publish). Use the embedded server "
            "(unset DEKSDENFLOW_NATS_URL) or upgrade that server.",
            server_version=version,
        )


def derive_event_id(causation_id: str, aggregate_id: str, aggregate_version: int) -> str:
    """A stable id for the event a cause wrote at ``aggregate_version`` of an aggregate.

    Re-sending the same append (e.g. after a lost acknowledgement) re-sends the same ids, which
    JetStream reports as duplicates; a different cause, or the same cause at another version, never
    collides with it.
    """
    return str(uuid.uuid5(_ID_NAMESPACE, f"{causation_id}/{aggregate_id}/{aggregate_version}"))


class JetStreamEventStore:
    """The event log. Build it in a composition root with a connected client and the settings."""

    def __init__(self, nc: NATS, settings: EventStoreSettings, *, decision_bytes: int | None = None) -> None:
        """``decision_bytes``: the largest decision of several events written as one message (default:
        what the server takes in one message); a larger one is an atomic batch of one message per
        event. 0 writes every decision of several events that way, as before decisions were messages."""
        self._nc = nc
        self._decision_bytes = decision_bytes
        self._settings = settings
        self.subjects = Subjects(settings.subject_prefix)
        self.stream = settings.stream_name
        # The feed: one message per event, derived from the log (see ``subjects``).
        self.feed_stream = f"{settings.stream_name}_FEED"
        self._timeout = settings.request_timeout_seconds

    @property
    def connection(self) -> NATS:
        """The store's NATS connection (for writers of derived streams, such as the feed)."""
        return self._nc

    def jetstream(self) -> JetStreamContext:
        """A JetStream context on the store's connection (for consumers of the same stream)."""
        return self._nc.jetstream()

    # --- provisioning ---------------------------------------------------------------------------------

    def _kept_forever(self, name: str, subjects: list[str]) -> dict[str, Any]:
        """A file-stored stream that keeps every message (no limit on count, size or age)."""
        return {
            "name": name,
            "subjects": subjects,
            "retention": "limits",
            "storage": "file",
            "num_replicas": self._settings.stream_replicas,
            "max_msgs": -1,
            "max_bytes": -1,
            "max_age": 0,
            "max_msgs_per_subject": -1,
            "discard": "old",
            "allow_direct": True,
        }

    def stream_config(self) -> dict[str, Any]:
        """The log's stream as deksdenflow wants it: the audit trail, append-only."""
        return {
            **self._kept_forever(self.stream, self.subjects.stream_subjects),
            "duplicate_window": int(self._settings.duplicate_window_seconds * 1e9),
            "allow_atomic": True,
            "deny_delete": True,
            "deny_purge": True,
        }

    def feed_config(self) -> dict[str, Any]:
        """The feed's stream: derived from the log, so it may be purged (its writer writes it again, from
        the decision its metadata names); no duplicate window (its writer checks the feed's last sequence
        instead)."""
        return {
            **self._kept_forever(self.feed_stream, self.subjects.feed.stream_subjects),
            "duplicate_window": int(1e9),
            "deny_delete": False,
            "deny_purge": False,
        }

    async def provision(self) -> dict[str, Any]:
        """Create the log's and the feed's streams, or bring them to the wanted configuration. Safe to
        repeat. Returns the log's configuration."""
        server = self._nc.connected_server_version
        check_server_version(
            f"{server.major}.{server.minor}.{server.patch}", redact_url(self._settings.nats_url)
        )
        config = await self._provision_stream(self.stream_config())
        # The feed starts where the log stands when the feed is made: on a log written before the feed
        # existed, the earlier events stay where they were (one message each on the log's subjects), and
        # the workers are not handed every request of the past again.
        starts_at = {FEED_FROM_METADATA: str(await self.stream_last_seq() + 1)}
        await self._provision_stream(self.feed_config(), metadata=starts_at)
        return config

    async def _provision_stream(
        self, wanted: dict[str, Any], *, metadata: dict[str, str] | None = None
    ) -> dict[str, Any]:
        name = wanted["name"]
        info = await self._api(f"STREAM.INFO.{name}", b"", allow_errors=frozenset({_ERR_STREAM_NOT_FOUND}))
        if "error" in info:
            created_config = {**wanted, "metadata": metadata or {}}
            created = await self._api(f"STREAM.CREATE.{name}", json.dumps(created_config).encode())
            return dict(created["config"])
        current: dict[str, Any] = info["config"]
        if all(current.get(k) == v for k, v in wanted.items()):
            return current
        updated = await self._api(f"STREAM.UPDATE.{name}", json.dumps({**current, **wanted}).encode())
        return dict(updated["config"])

    async def stream_last_seq(self) -> int:
        """Sequence of the newest decision in the log (0 when empty)."""
        info = await self._api(f"STREAM.INFO.{self.stream}", b"")
        return int(info["state"]["last_seq"])

    async def stream_info(self, stream: str) -> dict[str, Any]:
        """JetStream's ``STREAM.INFO`` answer for ``stream`` (the log's, the feed's)."""
        return await self._api(f"STREAM.INFO.{stream}", b"")

    async def headers_at(self, stream: str, seq: int) -> dict[str, str] | None:
        """The headers of the message at ``seq`` in ``stream`` (None: there is none)."""
        request = json.dumps({"seq": seq}).encode()
        with nats_unavailable_as_infrastructure(f"reading {stream} at {seq}"):
            reply = await self._nc.request(f"$JS.API.DIRECT.GET.{stream}", request, timeout=self._timeout)
        headers = reply.headers or {}
        status = headers.get("Status")
        if status == str(_ERR_NO_MESSAGE):
            return None
        if status:
            raise InfrastructureError(
                f"direct get on {stream} failed: {status} {headers.get('Description', '')}"
            )
        return dict(headers)

    @property
    def request_timeout(self) -> float:
        """How long a request to NATS may take."""
        return self._timeout

    # --- append ---------------------------------------------------------------------------------------

    async def append(
        self,
        *,
        project_id: str,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[ContractModel],
        expected: Position,
        meta: AppendMeta,
        boundary: str | None = None,
    ) -> AppendResult:
        """Append ``events`` to one aggregate if nothing was written to ``boundary`` since ``expected``.

        ``boundary`` defaults to the aggregate's own subjects. Raises ``ConcurrencyConflict`` if another
        writer got there first; nothing is written then.
        """
        if not events:
            return AppendResult(events=[])
        if not enabled():
            return await self._append(
                project_id, aggregate_type, aggregate_id, events, expected, meta, boundary
            )
        # The append's producer span: its context is what the events carry, so their consumers are its
        # children (see ``tracing``).
        with span(
            "eventstore",
            f"append {aggregate_type}",
            kind=SpanKind.PRODUCER,
            parent=meta.traceparent,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "send",
                "messaging.destination.name": self.stream,
                "messaging.batch.message_count": len(events),
                "deksdenflow.event_type": event_type_of(events[0]),
            },
        ):
            traced = replace(meta, traceparent=current_traceparent() or meta.traceparent)
            return await self._append(
                project_id, aggregate_type, aggregate_id, events, expected, traced, boundary
            )

    async def _append(
        self,
        project_id: str,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[ContractModel],
        expected: Position,
        meta: AppendMeta,
        boundary: str | None,
    ) -> AppendResult:
        ids = list(meta.event_ids or [])
        if ids and len(ids) != len(events):
            raise ContractError("meta.event_ids must give one id per event")
        if not ids:
            seed = meta.causation_id or str(uuid.uuid4())
            ids = [derive_event_id(seed, aggregate_id, expected.version + i + 1) for i in range(len(events))]
        now = datetime.now(UTC)
        filter_subject = boundary or self.subjects.aggregate(aggregate_type, aggregate_id)
        decided: list[tuple[Envelope, ContractModel]] = []
        for i, (event, event_id) in enumerate(zip(events, ids, strict=True)):
            envelope = Envelope(
                id=event_id,
                type=event_type_of(event),
                source=meta.source,
                time=now,
                subject=f"{aggregate_type}/{aggregate_id}",
                dataschema=f"proto:{type(event).PROTO_NAME}",
                project_id=project_id,
                aggregate_type=aggregate_type,
                aggregate_id=aggregate_id,
                aggregate_version=expected.version + i + 1,
                correlation_id=meta.correlation_id,
                causation_id=meta.causation_id,
                actor=meta.actor,
                traceparent=meta.traceparent,
            )
            decided.append((envelope, event))
        occ = {
            "Nats-Expected-Last-Subject-Sequence": str(expected.last_seq),
            "Nats-Expected-Last-Subject-Sequence-Subject": filter_subject,
        }
        try:
            return await self._write(project_id, aggregate_type, aggregate_id, decided, occ, expected)
        except ConcurrencyConflict:
            # JetStream checks the expected sequence before the msg-id: a re-sent append whose first
            # send was stored (its acknowledgement lost) conflicts. If our ids are what follows the
            # expected position, it is that duplicate, not a lost race.
            stored = await self._find(filter_subject, set(ids), from_seq=expected.last_seq + 1)
            if len(stored) == len(ids):
                return AppendResult(events=stored, duplicate=True)
            raise

    async def _write(
        self,
        project_id: str,
        aggregate_type: str,
        aggregate_id: str,
        decided: list[tuple[Envelope, ContractModel]],
        occ: dict[str, str],
        expected: Position,
    ) -> AppendResult:
        """One message for the decision; an atomic batch of one message per event only for a decision
        too large for one message (the shape every multi-event append had before)."""
        subject = self.subjects.event(project_id, aggregate_type, aggregate_id, decided[0][0].type)
        headers, body = encode_decision(decided)
        limit = self._nc.max_payload - _HEADROOM if self._decision_bytes is None else self._decision_bytes
        if len(decided) == 1 or len(body) <= limit:
            ack = await self._publish(subject, body, {**headers, **occ}, expected)
            seq = int(ack["seq"])
            recorded = [
                RecordedEvent(envelope=env, event=ev, stream_seq=seq, index=i)
                for i, (env, ev) in enumerate(decided)
            ]
            return AppendResult(events=recorded, duplicate=bool(ack.get("duplicate")))
        messages = [
            (
                self.subjects.event(project_id, aggregate_type, aggregate_id, env.type),
                *encode(env, ev),
                env,
                ev,
            )
            for env, ev in decided
        ]
        batch_ack = await self._publish_batch(messages, occ, expected)
        if batch_ack is None:  # the whole batch had been stored before
            filter_subject = occ["Nats-Expected-Last-Subject-Sequence-Subject"]
            stored = await self._find(filter_subject, {env.id for env, _ in decided})
            return AppendResult(events=stored, duplicate=True)
        last = int(batch_ack["seq"])
        first = last - len(messages) + 1
        recorded_events = [
            RecordedEvent(envelope=env, event=ev, stream_seq=first + i)
            for i, (_, _, _, env, ev) in enumerate(messages)
        ]
        return AppendResult(events=recorded_events)

    async def _publish(
        self, subject: str, body: bytes, headers: dict[str, str], expected: Position
    ) -> dict[str, Any]:
        try:
            reply = await self._nc.request(subject, body, timeout=self._timeout, headers=headers)
        except NATS_UNAVAILABLE as exc:
            raise InfrastructureError(f"append to {subject} got no acknowledgement: {exc!r}") from exc
        return self._check_ack(reply.data, expected, subject)

    async def _publish_batch(
        self,
        messages: list[tuple[str, dict[str, str], bytes, Envelope, ContractModel]],
        occ: dict[str, str],
        expected: Position,
    ) -> dict[str, Any] | None:
        batch_id = uuid.uuid4().hex
        last = len(messages)
        try:
            for n, (subject, headers, body, _, _) in enumerate(messages, start=1):
                batch_headers = {**headers, "Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(n)}
                if n == 1:
                    # Concurrency is checked on the first message and covers the whole batch.
                    batch_headers.update(occ)
                    reply = await self._nc.request(
                        subject, body, timeout=self._timeout, headers=batch_headers
                    )
                    if reply.data:  # an error: the batch was refused at its start
                        self._check_ack(reply.data, expected, subject, batch=True)
                elif n < last:
                    await self._nc.publish(subject, body, headers=batch_headers)
                else:
                    batch_headers["Nats-Batch-Commit"] = "1"
                    reply = await self._nc.request(
                        subject, body, timeout=self._timeout, headers=batch_headers
                    )
                    return self._check_ack(reply.data, expected, subject, batch=True)
        except _Duplicate:
            return None
        except NATS_UNAVAILABLE as exc:
            raise InfrastructureError(
                f"atomic append of {last} events got no acknowledgement: {exc!r}"
            ) from exc
        raise AssertionError("unreachable: the last message commits the batch")

    def _check_ack(
        self, data: bytes, expected: Position, subject: str, *, batch: bool = False
    ) -> dict[str, Any]:
        try:
            ack: dict[str, Any] = json.loads(data)
        except ValueError as exc:
            raise InfrastructureError(f"unreadable acknowledgement for {subject}: {data[:200]!r}") from exc
        error = ack.get("error")
        if not error:
            return ack
        if error.get("err_code") == _ERR_WRONG_LAST_SEQUENCE:
            actual = _WRONG_SEQ.search(str(error.get("description", "")))
            raise ConcurrencyConflict(
                "another writer appended first",
                subject=subject,
                expected_seq=expected.last_seq,
                actual_seq=int(actual.group(1)) if actual else None,
            )
        if batch and error.get("err_code") == _ERR_BATCH_DUPLICATE_ID:
            raise _Duplicate
        raise InfrastructureError(
            f"JetStream refused the append to {subject}: {error.get('description')}", **error
        )

    # --- read -----------------------------------------------------------------------------------------

    async def load(self, aggregate_type: str, aggregate_id: str) -> Loaded:
        """Every event of one aggregate, in order."""
        return await self.read(self.subjects.aggregate(aggregate_type, aggregate_id))

    async def read(self, subject_filter: str, *, from_seq: int = 1, stream: str | None = None) -> Loaded:
        """Every event matching ``subject_filter`` from ``from_seq`` on, in log order (of the log, or of
        ``stream``: the feed's is ``feed_stream``)."""
        events: list[RecordedEvent] = []
        seq = from_seq
        while True:
            page, pending = await self.read_page(subject_filter, seq, stream=stream)
            events.extend(page)
            if not page or pending == 0:
                return Loaded(events=events)
            seq = page[-1].stream_seq + 1

    async def _find(self, subject_filter: str, ids: set[str], *, from_seq: int = 1) -> list[RecordedEvent]:
        loaded = await self.read(subject_filter, from_seq=from_seq)
        return [e for e in loaded.events if e.envelope.id in ids]

    async def read_page(
        self, subject_filter: str, seq: int, *, stream: str | None = None
    ) -> tuple[list[RecordedEvent], int]:
        """One batched direct get from ``seq`` on: up to 512 messages (each one decision, of one or more
        events), and how many messages match after them."""
        stream = stream or self.stream
        with nats_unavailable_as_infrastructure(f"reading {subject_filter} from {stream}"):
            return await self._read_page(subject_filter, seq, stream)

    async def _read_page(self, subject_filter: str, seq: int, stream: str) -> tuple[list[RecordedEvent], int]:
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox)
        request = {"seq": seq, "next_by_subj": subject_filter, "batch": _READ_BATCH}
        page: list[RecordedEvent] = []
        try:
            await self._nc.publish(f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox)
            while True:
                msg = await sub.next_msg(timeout=self._timeout)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status == "204":  # end of batch
                    return page, int(headers.get("Nats-Num-Pending", "0"))
                if status == str(_ERR_NO_MESSAGE):
                    return page, 0
                if status:
                    raise InfrastructureError(
                        f"direct get on {stream} failed: {status} {headers.get('Description', '')}"
                    )
                page.extend(decode_all(headers, msg.data, int(headers["Nats-Sequence"])))
        except nats.errors.TimeoutError as exc:
            raise InfrastructureError(f"reading {subject_filter} from {stream} timed out") from exc
        finally:
            await sub.unsubscribe()

    # --- helpers --------------------------------------------------------------------------------------

    async def _api(
        self, path: str, payload: bytes, *, allow_errors: frozenset[int] = frozenset()
    ) -> dict[str, Any]:
        try:
            reply = await self._nc.request(f"$JS.API.{path}", payload, timeout=self._timeout)
        except nats.errors.NoRespondersError as exc:
            raise InfrastructureError("JetStream is not enabled on this NATS server (no responders)") from exc
        except NATS_UNAVAILABLE as exc:
            raise InfrastructureError(f"JetStream API {path} got no answer: {exc!r}") from exc
        data: dict[str, Any] = json.loads(reply.data)
        error = data.get("error")
        if error and error.get("err_code") not in allow_errors:
            raise InfrastructureError(f"JetStream API {path} failed: {error.get('description')}", **error)
        return data


class _Duplicate(Exception):
    """Internal: JetStream recognised the batch's message ids as already stored."""


async def connect(settings: EventStoreSettings, *, name: str) -> NATS:
    """Connect to NATS with bounded, reconnecting behaviour suited to long-running services."""
    use_fast_header_parser()
    nc = NATS()
    try:
        await nc.connect(
            servers=[s.strip() for s in settings.nats_url.split(",")],
            name=name,
            connect_timeout=max(1, round(settings.connect_timeout_seconds)),
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
        )
    except (TimeoutError, OSError, nats.errors.NoServersError) as exc:
        raise InfrastructureError(
            f"cannot connect to NATS at {redact_url(settings.nats_url)}: {exc!r}"
        ) from exc
    return nc
