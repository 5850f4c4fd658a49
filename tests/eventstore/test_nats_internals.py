"""The contract between ``deksdenflow_core.nats_internals`` and the nats-py release it is pinned to.

nats-py may change its private parts in any release. When one of these tests fails after an upgrade, do
not patch the test: re-read ``nats_internals.py`` against the new release (``Client._process_msg`` and
``_parse_header_lines``, ``JetStreamContext._nc``/``_prefix``, ``Subscription._id``, ``Msg._client``),
adapt it, then move the pin in ``libs/deksdenflow_core/pyproject.toml`` and the one here together.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

from deksdenflow_core import nats_internals
from deksdenflow_core.nats_internals import (
    Frame,
    api_prefix,
    connection_of,
    frame_routes,
    message,
    subscription_id,
)
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

_RECHECK = "nats-py changed a private part deksdenflow_core/nats_internals.py relies on: re-check that module"
_PYPROJECT = Path(__file__).parents[2] / "libs" / "deksdenflow_core" / "pyproject.toml"


def _pinned() -> str:
    dependencies = tomllib.loads(_PYPROJECT.read_text())["project"]["dependencies"]
    pins = [d for d in dependencies if d.startswith("nats-py")]
    assert len(pins) == 1, pins
    assert pins[0].startswith("nats-py=="), f"nats-py must be pinned exactly: {pins}"
    return str(pins[0].removeprefix("nats-py=="))


def test_the_installed_nats_py_is_the_pinned_release() -> None:
    assert version("nats-py") == _pinned(), _RECHECK


def test_process_msg_takes_a_raw_frame() -> None:
    process_msg = getattr(NATS, "_process_msg", None)
    assert process_msg is not None, _RECHECK
    assert inspect.iscoroutinefunction(process_msg), _RECHECK
    parameters = list(inspect.signature(process_msg).parameters)
    assert parameters == ["self", "sid", "subject", "reply", "data", "headers"], _RECHECK


def test_header_lines_are_parsed_by_a_static_method_of_the_client() -> None:
    assert isinstance(inspect.getattr_static(NATS, "_parse_header_lines"), staticmethod), _RECHECK
    assert list(inspect.signature(nats_internals.UPSTREAM_HEADER_PARSER).parameters) == ["raw"], _RECHECK
    raw = b"ce-id: abc\r\nNats-Msg-Id: 1\r\n"
    assert nats_internals.UPSTREAM_HEADER_PARSER(raw) == {"ce-id": "abc", "Nats-Msg-Id": "1"}, _RECHECK


def test_a_message_is_a_dataclass_with_its_client() -> None:
    fields = {f.name for f in dataclasses.fields(Msg)}
    assert {"_client", "subject", "reply", "data"} <= fields, _RECHECK


def test_a_jetstream_context_keeps_its_connection_and_prefix() -> None:
    nc = NATS()
    js = JetStreamContext(nc, prefix="$JS.X.API")
    assert connection_of(js) is nc, _RECHECK
    assert api_prefix(js) == "$JS.X.API", _RECHECK
    assert api_prefix(JetStreamContext(nc, domain="hub")) == "$JS.hub.API", _RECHECK


async def test_routed_frames_reach_their_handler_and_the_rest_reach_nats_py(nc: NATS) -> None:
    routed: asyncio.Queue[Frame] = asyncio.Queue()
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    assert isinstance(sub, Subscription)

    async def handler(frame: Frame) -> None:
        await routed.put(frame)

    frame_routes(nc)[subscription_id(sub)] = handler
    try:
        await nc.publish(inbox, b"straight", reply="answer.here", headers={"k": "v"})
        frame = await asyncio.wait_for(routed.get(), 5)
        assert (frame.subject, frame.reply, frame.data) == (inbox.encode(), b"answer.here", b"straight")
        assert frame.headers is not None
        assert frame.headers.startswith(nats_internals.HEADER_BLOCK_START)
        assert nats_internals.parse_header_lines(frame.headers[len(nats_internals.HEADER_BLOCK_START) :]) == {
            "k": "v"
        }
        settled = message(nc, frame)
        assert (settled.subject, settled.reply, settled.data) == (inbox, "answer.here", b"straight")

        other = await nc.subscribe(nc.new_inbox())
        await nc.publish(other.subject, b"as usual")
        assert (await other.next_msg(timeout=5)).data == b"as usual", _RECHECK
    finally:
        frame_routes(nc).pop(subscription_id(sub), None)
        await sub.unsubscribe()
