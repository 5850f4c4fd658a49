"""``protocol watch`` and ``protocol wait``: the run's events from the SSE stream, never polling.

The run's past events are read page by page first (shown by ``watch``), then its status, then the stream
from the last position read (``Last-Event-ID``), so nothing that happens in between is missed; after a
dropped connection the stream is opened again from the last position received, which the API resumes
from without a gap or a duplicate. The status is read again after each event.

``live`` is the same stream for an event loop (``deksdenflow tui``): every event a view shows, from the
position ``head`` found before the view read its state, resumed the same way after a drop.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import httpx

from deksdenflow_cli.client import Client
from deksdenflow_cli.exits import FAILED, OK, SERVER, TIMEOUT, CliError

COMPLETED = "completed"
# The run stops by itself in these: completed or cancelled for good, or failed/blocked until a person acts.
TERMINAL = frozenset({"completed", "cancelled", "failed", "blocked"})
FAILURES = frozenset({"cancelled", "failed", "blocked"})
# A person (or CI, or the forge) must act before the run moves on.
WAITING = frozenset({"planned", "paused"}) | TERMINAL
UNTIL = ("completed", "waiting", "terminal")
# How often a dropped stream is retried before giving up (each after a short pause).
RECONNECTS = 20
PAGE = 500


def reached(run: dict[str, Any], until: str) -> bool:
    """``completed`` and ``terminal`` both stop where the run stops by itself (completed, or short of it:
    cancelled, failed, blocked; the exit code tells them apart); ``waiting`` also where a person, CI or
    the forge must act first."""
    if until == "waiting":
        return run["status"] in WAITING or run.get("waiting_for") is not None
    return run["status"] in TERMINAL


def exit_code(run: dict[str, Any]) -> int:
    """0 unless the run failed, is blocked or was cancelled (1)."""
    return FAILED if run["status"] in FAILURES else OK


class _Deadline(Exception):
    """Raised by the alarm inside whatever the stream was blocked on."""


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """An alarm after ``seconds``: a stream with no event (only keep-alives) still ends on time."""
    if seconds is None:
        yield
        return

    def ring(_signum: int, _frame: FrameType | None) -> None:
        raise _Deadline

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def follow(
    client: Client,
    run_id: str,
    *,
    on_event: Callable[[dict[str, Any]], None],
    done: Callable[[dict[str, Any]], bool],
    timeout: float | None = None,
    on_reconnect: Callable[[str | None], None] | None = None,
    replay: bool = False,
) -> dict[str, Any]:
    """Feed the run's events to ``on_event`` until ``done(run)``; returns the run as it is then.

    Raises CliError(TIMEOUT) once ``timeout`` seconds have passed, with the status the run had then."""
    return follow_resource(
        client,
        {"protocol_run_id": run_id},
        lambda: client.call("protocol.get", protocol_run_id=run_id),
        on_event=on_event,
        done=done,
        timeout=timeout,
        on_reconnect=on_reconnect,
        replay=replay,
        what="run",
    )


def follow_resource(
    client: Client,
    filters: dict[str, str],
    fetch: Callable[[], dict[str, Any]],
    *,
    on_event: Callable[[dict[str, Any]], None],
    done: Callable[[dict[str, Any]], bool],
    timeout: float | None = None,
    on_reconnect: Callable[[str | None], None] | None = None,
    replay: bool = False,
    what: str = "resource",
) -> dict[str, Any]:
    """``follow`` for anything the event feed can be filtered on (a run, a project): ``fetch`` reads it
    again after each of its events until ``done``."""
    state: dict[str, Any] = {}
    try:
        with _deadline(timeout):
            return _follow(client, filters, fetch, on_event, done, on_reconnect, replay, state)
    except _Deadline:
        status = state.get("item", {}).get("status", "unknown")
        raise CliError(TIMEOUT, f"timed out after {timeout:g} s; the {what} is {status}") from None


def _follow(
    client: Client,
    filters: dict[str, str],
    fetch: Callable[[], dict[str, Any]],
    on_event: Callable[[dict[str, Any]], None],
    done: Callable[[dict[str, Any]], bool],
    on_reconnect: Callable[[str | None], None] | None,
    replay: bool,
    state: dict[str, Any],
) -> dict[str, Any]:
    def page_after(position: int) -> int:
        """Every event after ``position`` (to ``on_event`` when replaying); the last position read."""
        while True:
            page = client.call("events.list", params={**filters, "after": position, "limit": PAGE})
            for event in page["data"]:
                if replay:
                    on_event(event)
                position = event["position"]
            if len(page["data"]) < PAGE:
                return position

    after = page_after(0)
    item = state["item"] = fetch()
    if done(item):
        if replay:  # the events that led to what was read, to the end of the timeline
            page_after(after)
        return item
    last_id: str | None = str(after) if after else None
    failures = 0
    while True:
        try:
            for message in client.stream(filters, last_id):
                if not message.data:
                    continue  # the stream's opening `retry:` advice
                failures = 0
                if message.id:
                    last_id = message.id
                event = json.loads(message.data)
                on_event(event)
                item = state["item"] = fetch()
                if done(item):
                    if replay:  # what the read model holds beyond this event: the rest of the timeline
                        page_after(int(event["position"]))
                    return item
        except httpx.TransportError as exc:
            failures += 1
            if failures > RECONNECTS:
                raise CliError(SERVER, f"the event stream keeps dropping: {exc}") from exc
            if on_reconnect is not None:
                on_reconnect(last_id)
            time.sleep(min(0.2 * failures, 2.0))


def head(client: Client, params: dict[str, Any] | None = None) -> int:
    """The position of the last event ``params`` select (0 if none): a live view reads this, then its
    state, then streams from here, so it misses nothing and replays no history. One-event reads,
    about 2·log2(position) of them: doubling steps past the last event, then halving back."""
    query = dict(params or {})

    def first_after(position: int) -> int | None:
        page = client.call("events.list", params={**query, "after": position, "limit": 1})["data"]
        return int(page[0]["position"]) if page else None

    low = first_after(0)
    if low is None:
        return 0
    high: int | None = None
    step = PAGE
    while high is None:  # an event at `low`; find a position with none after it
        found = first_after(low + step)
        if found is None:
            high = low + step
        else:
            low, step = found, step * 2
    while high - low > 1:  # an event at `low`, none after `high`
        middle = (low + high) // 2
        found = first_after(middle)
        if found is None:
            high = middle
        else:
            low = found
    return first_after(low) or low


async def live(
    client: Client,
    params: dict[str, Any],
    after: int,
    on_reconnect: Callable[[str | None], None] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Every event ``params`` select after position ``after``, as it is appended, for as long as the
    caller reads; a dropped stream is opened again from the last position received (no gap, no repeat)."""
    last_id: str | None = str(after) if after else None
    failures = 0
    while True:
        try:
            async for message in client.astream(params, last_id):
                if not message.data:
                    continue  # the opening `retry:` advice, keep-alives
                failures = 0
                if message.id:
                    last_id = message.id
                yield json.loads(message.data)
        except httpx.TransportError as exc:
            failures += 1
            if failures > RECONNECTS:
                raise CliError(SERVER, f"the event stream keeps dropping: {exc}") from exc
            if on_reconnect is not None:
                on_reconnect(last_id)
            await asyncio.sleep(min(0.2 * failures, 2.0))
