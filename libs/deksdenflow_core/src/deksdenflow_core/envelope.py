"""The envelope every event travels in, and its encoding as NATS messages.

A message of the log is one *decision*: the events one command produced, stored all or none.

* A decision of one event is CloudEvents *binary mode* (the NATS binding): headers ``ce-`` + attribute
  name; deksdenflow's own attributes are CloudEvents extension attributes (lowercase, no separators).
  ``traceparent`` is the W3C header itself, so OpenTelemetry propagators read it unchanged. The body is
  the event's proto3 JSON. Every message written before decisions existed has this shape too.
* A decision of several events is CloudEvents *batched mode*: ``content-type:
  application/cloudevents-batch+json`` and a body that is a JSON array of structured-mode events (the same
  attributes without the ``ce-`` prefix, the event's JSON under ``data``). It is one message, so it is
  stored atomically at the cost of one append; each event keeps its own id and envelope.

``decode_all`` reads both shapes; an event's place in the log is its decision's stream sequence and its
index in the decision (``RecordedEvent.position``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json, to_json

from deksdenflow_core.contracts.base import TOLERANT, ContractModel
from deksdenflow_core.contracts.generated.registry import EVENT_TYPES
from deksdenflow_core.errors import ContractError

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
MSG_ID_HEADER = "Nats-Msg-Id"
# Events one decision may hold: an event's position is ``stream sequence * MAX_DECISION_EVENTS + index``.
MAX_DECISION_EVENTS = 1024

_REQUIRED = ("id", "type", "source", "time", "project_id", "aggregate_type", "aggregate_id")


class Envelope(BaseModel):
    """Metadata of one event. ``aggregate_version`` is 1 for an aggregate's first event.

    Each field's validation alias is its header, so a message's headers validate as they are (see
    :func:`decode`); code builds envelopes by field name.
    """

    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True)

    id: str = Field(validation_alias="ce-id")
    type: str = Field(validation_alias="ce-type")
    source: str = Field(validation_alias="ce-source")
    time: datetime = Field(validation_alias="ce-time")
    subject: str = Field("", validation_alias="ce-subject")
    dataschema: str = Field("", validation_alias="ce-dataschema")
    schema_version: int = Field(1, validation_alias="ce-schemaversion")
    project_id: str = Field(validation_alias="ce-projectid")
    aggregate_type: str = Field(validation_alias="ce-aggregatetype")
    aggregate_id: str = Field(validation_alias="ce-aggregateid")
    aggregate_version: int = Field(0, validation_alias="ce-aggregateversion")
    correlation_id: str = Field("", validation_alias="ce-correlationid")
    causation_id: str = Field("", validation_alias="ce-causationid")
    # "<kind>:<id>", e.g. "user:admin", "token:3f2a", "worker:codex-1", "webhook:github".
    actor: str = Field("", validation_alias="ce-actor")
    traceparent: str = Field("", validation_alias="traceparent")


# envelope field -> header
_HEADERS: dict[str, str] = {name: str(f.validation_alias) for name, f in Envelope.model_fields.items()}
_REQUIRED_HEADERS = {name: _HEADERS[name] for name in _REQUIRED}
_REQUIRED_HEADER_SET = frozenset(_REQUIRED_HEADERS.values())
# envelope field -> structured-mode attribute (the header without ``ce-``; ``traceparent`` as it is)
_ATTRIBUTES: dict[str, str] = {name: header.removeprefix("ce-") for name, header in _HEADERS.items()}
_ATTRIBUTE_HEADERS: dict[str, str] = {attr: _HEADERS[name] for name, attr in _ATTRIBUTES.items()}
_ENVELOPE_VALIDATOR = Envelope.__pydantic_validator__


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored in the log: envelope, typed body, and its stream sequence.

    A plain value (both parts are validated models already): every reader builds one per event, and
    the projector builds tens of thousands a second.
    """

    envelope: Envelope
    event: ContractModel
    stream_seq: int
    # The JSON body as stored (empty for events built in memory); lets readers such as the projector
    # keep the payload without serialising the model again.
    body: bytes = field(default=b"", repr=False, compare=False)
    # Where the event stands in its decision (0 for the first, and for a decision of one event).
    index: int = 0

    @property
    def position(self) -> int:
        """The event's place in the log, unique and increasing: its decision's stream sequence and its
        index in the decision, as one integer."""
        return self.stream_seq * MAX_DECISION_EVENTS + self.index

    @property
    def payload_json(self) -> bytes:
        """The event's JSON body: as stored when read from the log, else freshly serialised."""
        return self.body or self.event.model_dump_json().encode()


def last_position(stream_seq: int) -> int:
    """The highest position an event of the decision at ``stream_seq`` can have: every event at or
    below it is in a decision at or below ``stream_seq``."""
    return stream_seq * MAX_DECISION_EVENTS + MAX_DECISION_EVENTS - 1


_NUL = b"\\u0000"


def scrub_nul(body: bytes) -> bytes:
    """The JSON body with every NUL character in its strings replaced by U+FFFD.

    PostgreSQL can store NUL neither in ``text`` nor in ``jsonb``; an event carrying one (say, in an
    agent's summary) would stop every projection at that event. The fast path is one bytes search.
    """
    if _NUL not in body:
        return body

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("\x00", "\ufffd")
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        return value

    return json.dumps(clean(json.loads(body)), ensure_ascii=False, separators=(",", ":")).encode()


def encode_headers(envelope: Envelope) -> dict[str, str]:
    """The binary-mode headers of one event, without ``Nats-Msg-Id``."""
    headers = {"ce-specversion": SPEC_VERSION, "content-type": CONTENT_TYPE}
    for name, header in _HEADERS.items():
        value = getattr(envelope, name)
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if value not in ("", None):
            headers[header] = str(value)
    return headers


def encode(envelope: Envelope, event: ContractModel) -> tuple[dict[str, str], bytes]:
    """Headers and JSON body for one event (NUL characters scrubbed, see :func:`scrub_nul`)."""
    headers = encode_headers(envelope)
    headers[MSG_ID_HEADER] = envelope.id
    return headers, scrub_nul(event.model_dump_json().encode())


def _structured(envelope: Envelope, body: bytes) -> bytes:
    """One event in structured mode: its attributes and, under ``data``, its JSON body."""
    attributes: dict[str, Any] = {"specversion": SPEC_VERSION, "datacontenttype": CONTENT_TYPE}
    for name, attribute in _ATTRIBUTES.items():
        value = getattr(envelope, name)
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if value not in ("", None):
            attributes[attribute] = value
    head = json.dumps(attributes, ensure_ascii=False, separators=(",", ":")).encode()
    return head[:-1] + b',"data":' + body + b"}"


def encode_decision(events: Sequence[tuple[Envelope, ContractModel]]) -> tuple[dict[str, str], bytes]:
    """Headers and body of one message holding a decision: binary mode for one event (exactly what
    :func:`encode` writes), batched mode for several. ``Nats-Msg-Id`` is the first event's id, so a
    decision sent again is recognised as a duplicate."""
    if not events:
        raise ContractError("a decision holds at least one event")
    if len(events) == 1:
        return encode(*events[0])
    if len(events) > MAX_DECISION_EVENTS:
        raise ContractError(f"a decision holds at most {MAX_DECISION_EVENTS} events, not {len(events)}")
    parts = [_structured(env, scrub_nul(event.model_dump_json().encode())) for env, event in events]
    headers = {"content-type": BATCH_CONTENT_TYPE, MSG_ID_HEADER: events[0][0].id}
    return headers, b"[" + b",".join(parts) + b"]"


def is_decision_of_several(headers: Mapping[str, str] | None) -> bool:
    """Whether a message holds a decision of several events (batched mode)."""
    return bool(headers) and headers.get("content-type") == BATCH_CONTENT_TYPE  # type: ignore[union-attr]


def decode_all(headers: Mapping[str, str] | None, body: bytes, stream_seq: int) -> list[RecordedEvent]:
    """Every event of one stored message, in order: one for a single event, several for a decision in
    batched mode. ``ContractError`` says precisely what is wrong; nothing of a bad decision is returned.

    A decision is parsed once, by pydantic-core's parser (over twice as fast as ``json.loads``). Each
    event's ``data`` is then written back to JSON text (in Rust: ~3x as fast as ``json.dumps``) and
    validated from it, exactly as an event stored alone is. The text is needed anyway: it is the event's
    body, which the projector keeps as the payload. Validating the parsed values instead (python mode)
    costs as much as validating the text, on the events of ``bench.projector_catchup``; it would save
    nothing and would rest on both modes reading every field type alike.
    """
    if not is_decision_of_several(headers):
        return [decode(headers, body, stream_seq)]
    try:
        items = from_json(scrub_nul(body))
    except ValueError as exc:
        raise ContractError(f"decision is not JSON: {exc}", stream_seq=stream_seq) from exc
    if not isinstance(items, list) or not items or len(items) > MAX_DECISION_EVENTS:
        raise ContractError("decision is not an array of 1 to 1024 events", stream_seq=stream_seq)
    recorded = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "data" not in item:
            raise ContractError(
                f"event {index} of the decision is not a structured event", stream_seq=stream_seq
            )
        event_headers = {_ATTRIBUTE_HEADERS[k]: str(v) for k, v in item.items() if k in _ATTRIBUTE_HEADERS}
        # Compact, non-ASCII characters as they are: the same text ``encode`` writes for the event alone.
        data = to_json(item["data"])
        recorded.append(_decode_scrubbed(event_headers, data, stream_seq, index))
    return recorded


def decode(headers: Mapping[str, str] | None, body: bytes, stream_seq: int) -> RecordedEvent:
    """Parse one stored message; ``ContractError`` says precisely what is wrong."""
    return _decode_scrubbed(headers, scrub_nul(body), stream_seq, 0)


def _decode_scrubbed(
    headers: Mapping[str, str] | None, body: bytes, stream_seq: int, index: int
) -> RecordedEvent:
    """:func:`decode` of a body whose NUL characters are scrubbed already, at ``index`` in its decision."""
    if not headers:
        raise ContractError("message has no headers: not a deksdenflow event", stream_seq=stream_seq)
    if not headers.keys() >= _REQUIRED_HEADER_SET:
        missing = [f for f, h in _REQUIRED_HEADERS.items() if h not in headers]
        raise ContractError(f"event headers miss {missing}", stream_seq=stream_seq)
    event_type = headers["ce-type"]
    model = EVENT_TYPES.get(event_type)
    if model is None:
        raise ContractError(f"unknown event type {event_type!r}", stream_seq=stream_seq)
    try:
        # The models' validators, called as ``model_validate`` and ``model_validate_json`` call them: their
        # Python wrappers cost a sixth of each validation, twice an event.
        # Headers only: a header that happens to be named like a field must not stand in for one.
        envelope: Envelope = _ENVELOPE_VALIDATOR.validate_python(headers, by_name=False)
        # Readers of the log are tolerant of enum values added by newer producers.
        event: ContractModel = model.__pydantic_validator__.validate_json(body or b"{}", context=TOLERANT)
    except (ValidationError, ValueError) as exc:
        raise ContractError(f"invalid {event_type} event: {exc}", stream_seq=stream_seq) from exc
    return RecordedEvent(envelope, event, stream_seq, body, index)


def event_type_of(event: ContractModel) -> str:
    """The wire type of an event model (its ``event_type`` option)."""
    event_type = getattr(type(event), "EVENT_TYPE", None)
    if not isinstance(event_type, str):
        raise ContractError(f"{type(event).__name__} is not an event (no event_type option)")
    return event_type
