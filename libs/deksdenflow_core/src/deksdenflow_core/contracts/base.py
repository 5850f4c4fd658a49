"""The hand-written runtime under the bindings generated from ``proto/`` (see ``proto/codegen``).

Every generated message derives from :class:`ContractModel`. The configuration here is what makes
the JSON of a model the proto3 JSON mapping of the message (with proto field names), and what keeps
old readers working when a contract grows:

* ``frozen``: events and commands are values; nothing mutates them after validation.
* ``extra="ignore"``: a reader built before a field was added drops it instead of failing.
* Missing fields read as their proto3 zero value (the defaults are set by the generator).
* bytes are standard base64 in JSON (:data:`ProtoBytes`; both alphabets are accepted on input).
* ``google.protobuf.Timestamp`` is a timezone-aware UTC :class:`~datetime.datetime`
  (:data:`UtcDatetime`), written as RFC 3339.
* non-finite floats are written as ``"NaN"``/``"Infinity"``/``"-Infinity"`` like protobuf does.
"""

from __future__ import annotations

import base64
import enum
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer, ValidationInfo, WrapValidator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

__all__ = ["TOLERANT", "ContractModel", "OpenEnum", "ProtoBytes", "UtcDatetime"]

TOLERANT = {"tolerant_enums": True}
"""Validation context for readers of the log (``model_validate(..., context=TOLERANT)``)."""


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        msg = "a timestamp needs a timezone offset (RFC 3339); naive datetimes are ambiguous"
        raise ValueError(msg)
    return value.astimezone(UTC)


def _standard_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
"""``google.protobuf.Timestamp``: must carry an offset, is normalised to UTC, serialises as ``...Z``."""

ProtoBytes = Annotated[bytes, PlainSerializer(_standard_base64, return_type=str, when_used="json")]
"""proto ``bytes``: standard base64 with padding in JSON, as protobuf's JSON printer writes it."""


class ContractModel(BaseModel):
    """Base of every generated event, command and value message.

    ``PROTO_NAME`` is the full proto name of the message (``deksdenflow.events.v1.ProtocolRunCreated``);
    messages with the ``event_type``/``command_type`` option also carry ``EVENT_TYPE``/``COMMAND_TYPE``.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        val_json_bytes="base64",
        ser_json_inf_nan="strings",
    )

    PROTO_NAME: ClassVar[str]


class OpenEnum(enum.StrEnum):
    """Base of every generated enum. proto3 enums are open: see :func:`open_enum_field`."""


def open_enum_field(enum_type: type[OpenEnum]) -> WrapValidator:
    """The validator the generator attaches to every enum-typed field.

    A reader of the log (validation context :data:`TOLERANT`) reads a value it does not know — one a
    newer producer added — as the enum's zero value instead of rejecting the whole event. Everywhere
    else (API input, commands) an unknown value stays a validation error.
    """

    def validate(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        try:
            return handler(value)
        except ValueError:
            context = info.context
            if isinstance(context, dict) and context.get("tolerant_enums") and isinstance(value, str | int):
                return next(iter(enum_type))
            raise

    return WrapValidator(validate)
