"""Fair admission of commands: a flood of one kind cannot crowd out the others.

An API process runs every request on one event loop. At most ``limit`` commands run at once; the others
wait — without using the loop — in one queue per *key* (the aggregate or collection the path names), and
a freed slot goes to the next key in turn, not to the longest queue. A quiet project's command waits for
one turn of each busy key, however deep their backlogs.

What it buys depends on the limit, measured on 2 cores (``bench.decisions``): a pause on project B while
32 clients create projects took 3x its idle p99 at a limit of 2, 5.6x at 4, ~14x with no limit — but a
command mostly waits for NATS, not for the CPU, and a limit of 4 halved the throughput of one-event
commands. The default (32, ``DEKSDENFLOW_MAX_COMMANDS_IN_FLIGHT``) keeps the throughput and bounds the
work in flight; the rest of the isolation has to come from elsewhere (more API processes, NATS).

Reads, the probes, ``/metrics`` and the event stream are not gated: they are cheap, or long-lived. Nor
are the console's forms (``/console/…``): each one calls a gated API route in-process.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque

from prometheus_client import Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

_UNGATED_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def admission_key(method: str, path: str) -> str:
    """What a command competes as: the first two segments of its path (``/projects/<id>``,
    ``/protocols/<id>``, ``/steps/<id>``; ``/projects`` for a creation, ``/webhooks/github``)."""
    segments = [s for s in path.split("/", 3)[1:3] if s]
    return f"{method} /{'/'.join(segments)}" if len(segments) < 2 else "/" + "/".join(segments)


class FairGate:
    """``limit`` slots, handed out round-robin over the keys that wait."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self.queued = 0

    async def acquire(self, key: str) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append(granted)
        self.queued += 1
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # the slot was handed over as the request went away: pass it on
            else:
                self._forget(key, granted)
            raise

    def release(self) -> None:
        while self._waiting:
            key, queue = next(iter(self._waiting.items()))
            granted = queue.popleft()
            if queue:
                self._waiting.move_to_end(key)  # its next command waits for the other keys' turn
            else:
                del self._waiting[key]
            self.queued -= 1
            if not granted.done():
                granted.set_result(None)
                return
        self._free += 1

    def _forget(self, key: str, granted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(key)
        if queue is not None and granted in queue:
            queue.remove(granted)
            self.queued -= 1
            if not queue:
                del self._waiting[key]


class FairAdmission:
    """ASGI middleware: commands (not reads) pass through a :class:`FairGate`."""

    def __init__(self, app: ASGIApp, *, limit: int, waiting: Gauge | None = None) -> None:
        self.app = app
        self.gate = FairGate(limit)
        self._waiting = waiting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in _UNGATED_METHODS
            # The console's forms call the API's own routes in-process, which are gated: gating the
            # form too would hold two slots per action (and could deadlock a full gate).
            or scope["path"].startswith("/console/")
        ):
            await self.app(scope, receive, send)
            return
        await self.gate.acquire(admission_key(scope["method"], scope["path"]))
        self._observe()
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.release()
            self._observe()

    def _observe(self) -> None:
        if self._waiting is not None:
            self._waiting.set(self.gate.queued)
