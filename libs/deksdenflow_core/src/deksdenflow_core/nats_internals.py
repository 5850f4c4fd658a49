"""Every use of nats-py's private internals, in one place.

Two hot paths go under nats-py's public API, because its per-message cost was larger than the work done
per event (the projector's catch-up and the event store's reads):

* a faster header parser installed in place of ``Client._parse_header_lines`` (process-wide: it is a
  static method of the class), which gives upstream's answer exactly (checked against it by a test);
* a per-connection wrapper around ``Client._process_msg``, which hands the raw frames of chosen
  subscriptions straight to a handler, skipping the ``Msg`` and the hop to the subscription's task.

They rely on private names that a release of nats-py may change without notice: ``Client._process_msg``
(its signature), ``Client._parse_header_lines``, ``JetStreamContext._nc`` and ``._prefix``,
``Subscription._id`` and the ``_client`` field of ``Msg``. The version is pinned in
``libs/deksdenflow_core/pyproject.toml``, and ``tests/eventstore/test_nats_internals.py`` fails loudly
when any of them is gone or has changed shape: re-check this module against the new release before
moving the pin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import repeat
from typing import NamedTuple

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

__all__ = [
    "HEADER_BLOCK_START",
    "UPSTREAM_HEADER_PARSER",
    "Frame",
    "FrameHandler",
    "api_prefix",
    "connection_of",
    "frame_routes",
    "message",
    "parse_header_lines",
    "subscription_id",
    "use_fast_header_parser",
]

# --- the header parser ---------------------------------------------------------------------------------

# What nats-py strips around a header value (``bytes.strip``'s blanks).
_BLANKS = " \t\n\r\x0b\x0c"


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """Exactly what nats-py's ``Client._parse_header_lines`` returns, ~2.5x faster for usual headers.

    Every envelope travels in ~20 headers and nats-py handles each line in Python; on a projector
    catch-up that was one of the largest costs per event. Here the block is decoded once and split and
    stripped in C. That shortcut is only taken when it provably gives upstream's answer (every line is
    ``name: value`` and the names are printable ASCII without ":" or spaces); anything else goes to
    upstream's own parser.
    """
    text = raw.decode("utf-8", "replace").rstrip("\r\n")
    try:
        parsed = dict(map(str.split, text.split("\r\n"), repeat(": "), repeat(1)))
    except ValueError:  # a line without ": " (blank, status, malformed)
        return UPSTREAM_HEADER_PARSER(raw)
    names = "".join(parsed)
    if ":" in names or " " in names or not (names.isascii() and names.isprintable()):
        return UPSTREAM_HEADER_PARSER(raw)
    # Usual values have nothing to strip, and then the dict is the answer as it is (stripping it anew
    # cost a third of the parse). A value has a blank at an edge only if a tab, LF, CR, VT or FF is in
    # it, or a space is at either end of the values joined by "|" or next to a "|" (a "|" of a value's
    # own can only send a value that needs nothing the long way).
    values = "|".join(parsed.values())
    edges = "| " in values or " |" in values or values.startswith(" ") or values.endswith(" ")
    if not (
        edges or "\t" in values or "\n" in values or "\r" in values or "\x0b" in values or "\x0c" in values
    ):
        return parsed
    return dict(zip(parsed, map(str.strip, parsed.values(), repeat(_BLANKS)), strict=True))


UPSTREAM_HEADER_PARSER = NATS._parse_header_lines  # kept to check ours against it


def use_fast_header_parser() -> None:
    """Install :func:`parse_header_lines` in nats-py (idempotent; called by ``eventstore.connect``)."""
    NATS._parse_header_lines = staticmethod(parse_header_lines)  # type: ignore[method-assign]  # see docstring


# --- raw frames ----------------------------------------------------------------------------------------

# How a header block starts on the wire; the status line (``NATS/1.0 408 ...``) of a control frame differs.
HEADER_BLOCK_START = b"NATS/1.0\r\n"


class Frame(NamedTuple):
    """A message as nats-py's protocol parser hands it over, before anything is decoded."""

    subject: bytes
    reply: bytes
    data: bytes
    headers: bytes | None  # the raw block: b"NATS/1.0\r\nname: value\r\n..."


FrameHandler = Callable[[Frame], Awaitable[None]]


def frame_routes(nc: NATS) -> dict[int, FrameHandler]:
    """The subscriptions of ``nc`` whose frames go straight to a handler (by subscription id).

    For every message nats-py parses its headers into a dict, builds a ``Msg``, queues it and hops to
    the subscription's task: ~15 µs, more than the projector spends folding the event. Its protocol
    parser hands each frame to ``Client._process_msg``; a wrapper installed on this connection (an
    instance attribute, so other connections are untouched) gives the frames of registered
    subscriptions to their handler and everything else to nats-py as before.
    """
    routes: dict[int, FrameHandler] | None = getattr(nc, "_deksdenflow_frame_routes", None)
    if routes is None:
        table: dict[int, FrameHandler] = {}
        upstream = nc._process_msg

        async def process_msg(
            sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
        ) -> None:
            handler = table.get(sid)
            if handler is None:
                # nats-py passes None for frames without headers, whatever its annotation says
                await upstream(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            else:
                await handler(Frame(subject, reply, data, headers))

        nc._process_msg = process_msg  # type: ignore[method-assign]  # see the docstring
        nc._deksdenflow_frame_routes = table  # type: ignore[attr-defined]  # one table per connection
        routes = table
    return routes


def subscription_id(sub: Subscription) -> int:
    """The id nats-py hands ``_process_msg`` for this subscription's frames (it has no public accessor)."""
    return sub._id


def connection_of(js: JetStreamContext) -> NATS:
    """The connection behind a JetStream context (a plain field, with no public accessor)."""
    return js._nc


def api_prefix(js: JetStreamContext) -> str:
    """The JetStream API prefix of a context (``$JS.API``, or the domain's), with no public accessor."""
    return js._prefix


def message(nc: NATS, frame: Frame) -> Msg:
    """A frame as a nats-py message to settle (ack, nak, ...) on ``nc``; its headers are not parsed."""
    return Msg(_client=nc, subject=frame.subject.decode(), reply=frame.reply.decode(), data=frame.data)
