"""An event reads the same from the log whether it was stored alone (binary mode) or in a decision of
several (batched mode): same envelope, same model, same body. Checked for every event contract, on
payloads that exercise each kind of field, as our producers write them and as other proto3 JSON
writers may (int64 as strings, whitespace, fields left out or unknown, enum values added later)."""

from __future__ import annotations

import json
import types
import typing
from datetime import UTC, datetime
from typing import Any

import pytest
from deksdenflow_core.contracts.base import ContractModel, OpenEnum
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.contracts.generated.registry import EVENT_TYPES
from deksdenflow_core.envelope import (
    BATCH_CONTENT_TYPE,
    Envelope,
    RecordedEvent,
    decode,
    decode_all,
    encode,
    encode_decision,
    encode_headers,
)
from deksdenflow_core.errors import ContractError

# A string that JSON writers escape differently, or not at all.
TEXT = 'é "quoted" back\\slash\nline\ttab \u2028 \x01 😀 </script>'
INT64 = 2**62 + 3  # beyond 2**53: a double cannot hold it
WHEN = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _sample(annotation: Any) -> Any:
    """A value of a contract field's type other than its zero value (containers hold two)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _sample(args[0])
    if origin in (typing.Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)))
    if origin is tuple:
        return (_sample(args[0]), _sample(args[0]))
    if origin is dict:
        return {"k1": _sample(args[1]), "k2": _sample(args[1])}
    if isinstance(annotation, type):
        if issubclass(annotation, ContractModel):
            return annotation(**{n: _sample(f.annotation) for n, f in annotation.model_fields.items()})
        if issubclass(annotation, OpenEnum):
            return list(annotation)[-1]
        samples: dict[type, Any] = {str: TEXT, bool: True, int: INT64, float: 0.1, bytes: b"\xfb\xff\x00"}
        if annotation in samples:
            return samples[annotation]
        if annotation is datetime:
            return WHEN
    if annotation is Any:
        return {"a": [1, "b", None]}
    raise AssertionError(f"no sample for {annotation!r}: extend _sample")


def _envelope(event_type: str, version: int) -> Envelope:
    return Envelope(
        id=f"e{version}",
        type=event_type,
        source="tests",
        time=WHEN,
        project_id="p1",
        aggregate_type="protocol_run",
        aggregate_id="r1",
        aggregate_version=version,
        correlation_id="c",
        causation_id="k",
        actor="user:test",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


def _ints_as_strings(value: Any) -> Any:
    """proto3 JSON as protobuf's own printer writes it: every int64 a string (here: every integer)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return [_ints_as_strings(v) for v in value]
    if isinstance(value, dict):
        return {k: _ints_as_strings(v) for k, v in value.items()}
    return value


def _decision(items: list[tuple[Envelope, bytes]]) -> bytes:
    """A decision in batched mode whose events' data are exactly these JSON texts."""
    parts = []
    for env, data in items:
        headers = encode_headers(env)
        attributes = {k.removeprefix("ce-"): v for k, v in headers.items() if k != "content-type"}
        attributes["datacontenttype"] = "application/json"
        head = json.dumps(attributes).encode()
        parts.append(head[:-1] + b', "data": ' + data + b"}")
    return b"[" + b",\n ".join(parts) + b"]"


def _alone(env: Envelope, data: bytes) -> RecordedEvent:
    return decode(encode_headers(env), data, 5)


def _in_decision(env: Envelope, data: bytes) -> RecordedEvent:
    """The event as the second of a decision of three."""
    paused = _envelope("protocol_run.paused", 1)
    body = _decision([(paused, b"{}"), (env, data), (paused, b"{}")])
    events = decode_all({"content-type": BATCH_CONTENT_TYPE}, body, 5)
    assert [e.index for e in events] == [0, 1, 2]
    return events[1]


def _same(alone: RecordedEvent, batched: RecordedEvent) -> None:
    assert batched.envelope == alone.envelope
    assert batched.event == alone.event
    assert type(batched.event) is type(alone.event)
    assert batched.stream_seq == alone.stream_seq == 5
    assert json.loads(batched.body) == json.loads(alone.body), "the same JSON value as the payload"


EVENTS = sorted(EVENT_TYPES.items())


@pytest.mark.parametrize(("event_type", "model"), EVENTS, ids=[t for t, _ in EVENTS])
def test_every_event_reads_the_same_alone_and_in_a_decision(
    event_type: str, model: type[ContractModel]
) -> None:
    for event in (model(), _sample(model)):
        env = _envelope(event_type, 2)
        headers, body = encode(env, event)
        alone = decode(headers, body, 5)
        decision_headers, decision = encode_decision(
            [(_envelope("protocol_run.paused", 1), ev.ProtocolRunPaused()), (env, event)]
        )
        batched = decode_all(decision_headers, decision, 5)[1]
        assert alone.event == event
        _same(alone, batched)
        # Our producers' JSON comes back byte for byte: the payload and the feed keep what was written.
        assert batched.body == alone.body == body


@pytest.mark.parametrize(("event_type", "model"), EVENTS, ids=[t for t, _ in EVENTS])
def test_every_event_reads_the_same_from_other_proto3_json_writers(
    event_type: str, model: type[ContractModel]
) -> None:
    env = _envelope(event_type, 2)
    sample = _sample(model)
    value = sample.model_dump(mode="json")
    forms = {
        "int64 as strings": (json.dumps(_ints_as_strings(value)), sample),
        "indented, ASCII only": (json.dumps(value, indent=2), sample),
        "fields left out, unknown ones added": (json.dumps({"added_later": {"x": [1, 2]}}), model()),
        "every field at its zero value": (json.dumps(model().model_dump(mode="json")), model()),
    }
    for form, (text, expected) in forms.items():
        alone, batched = _alone(env, text.encode()), _in_decision(env, text.encode())
        assert alone.event == expected, form
        _same(alone, batched)


def test_enum_values_added_later_read_as_the_zero_value_alone_and_in_a_decision() -> None:
    env = _envelope("protocol_run.step_execution_requested", 2)
    data = b'{"step_run_id": "s1", "reason": "EXECUTION_REASON_NOT_YET_INVENTED", "attempt": "3"}'
    alone, batched = _alone(env, data), _in_decision(env, data)
    assert alone.event == ev.StepExecutionRequested(step_run_id="s1", attempt=3)
    _same(alone, batched)


def test_nul_characters_are_scrubbed_alone_and_in_a_decision() -> None:
    env = _envelope("protocol_run.branch_pushed", 2)
    data = b'{"branch": "b\\u0000", "commit_sha": "c"}'
    alone, batched = _alone(env, data), _in_decision(env, data)
    assert alone.event == ev.BranchPushed(branch="b\ufffd", commit_sha="c")
    _same(alone, batched)
    assert b"\\u0000" not in batched.body


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"attempt": "three"}', "invalid protocol_run.planning_requested"),
        (b'{"attempt": 1.5}', "invalid protocol_run.planning_requested"),
        (b"[]", "invalid protocol_run.planning_requested"),
        (b'"{}"', "invalid protocol_run.planning_requested"),
    ],
)
def test_an_invalid_event_is_refused_alike_alone_and_in_a_decision(data: bytes, says: str) -> None:
    env = _envelope("protocol_run.planning_requested", 2)
    for read in (_alone, _in_decision):
        with pytest.raises(ContractError, match=says):
            read(env, data)


def test_a_lone_surrogate_refuses_the_decision_with_a_contract_error() -> None:
    env = _envelope("protocol_run.planning_failed", 2)
    with pytest.raises(ContractError, match="decision is not JSON"):
        _in_decision(env, b'{"reason": "\\ud800"}')
