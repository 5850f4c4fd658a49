"""Pure ASGI middleware: request ids, Prometheus request metrics, and Idempotency-Key replay."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from deksdenflow_core.errors import DeksdenflowError
from deksdenflow_core.logging import bind_ids, get_logger
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from deksdenflow_api.errors import HttpError, error_response
from deksdenflow_api.idempotency import IdempotencyStore, StoredResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = get_logger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class ApiMetrics:
    """The API's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "deksdenflow_api_requests", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "deksdenflow_api_request_seconds",
            "HTTP request latency",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.commands_waiting = Gauge(
            "deksdenflow_api_commands_waiting",
            "Commands waiting for their turn to run (see admission.py)",
            registry=self.registry,
        )
        self.appends = Counter(
            "deksdenflow_api_appends", "Appends to the event log", ["aggregate"], registry=self.registry
        )
        self.events = Counter(
            "deksdenflow_api_events_appended", "Events appended", ["aggregate"], registry=self.registry
        )
        self.conflicts = Counter(
            "deksdenflow_api_conflicts",
            "Appends refused because another writer was first",
            ["aggregate"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "deksdenflow_webhooks",
            "Webhook deliveries by provider (the forge) and outcome (accepted, ignored, duplicate; refused: "
            "unauthorized, too_large, invalid)",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.sse_clients = Gauge(
            "deksdenflow_api_sse_clients", "Event stream clients connected", registry=self.registry
        )
        self.sse_feed_reads = Counter(
            "deksdenflow_api_sse_feed_reads",
            "Reads of the event feed for live stream clients (one per checkpoint advance, for all of them)",
            registry=self.registry,
        )
        self.sse_cut_off = Counter(
            "deksdenflow_api_sse_cut_off",
            "Event stream clients disconnected for falling too far behind",
            registry=self.registry,
        )
        self.own_write_waits = Counter(
            "deksdenflow_api_own_write_waits",
            "Reads that waited for this process's own writes, by outcome (caught_up, timed_out, skipped: "
            "the read model has not moved since the last wait timed out)",
            ["outcome"],
            registry=self.registry,
        )
        self.idempotent_replays = Counter(
            "deksdenflow_api_idempotent_replays",
            "POSTs answered from a stored Idempotency-Key response",
            registry=self.registry,
        )


class RequestContext:
    """``X-Request-ID`` taken (if well-formed) or generated, echoed, bound to logs; request metrics."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # The metrics' children by label values: ``labels()`` validates and locks on every call, a
        # measurable share of a read's CPU. The keys are bounded (route templates, methods, statuses).
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = header(scope, b"x-request-id")
        # 128 random bits as hex: as unique as a uuid4, without building a UUID object on every request.
        request_id = given if given and _REQUEST_ID.match(given) else os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            with bind_ids(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self._observe(route, method, status, time.perf_counter() - started)

    def _observe(self, route: str, method: str, status: int, seconds: float) -> None:
        counted = self._counted.get((route, method, status))
        if counted is None:
            counted = self.metrics.requests.labels(route, method, status)
            self._counted[route, method, status] = counted
        timed = self._timed.get((route, method))
        if timed is None:
            timed = self._timed[route, method] = self.metrics.latency.labels(route, method)
        counted.inc()
        timed.observe(seconds)


class Idempotency:
    """Replays the stored response of a POST whose ``Idempotency-Key`` was answered before."""

    def __init__(
        self, app: ASGIApp, store: IdempotencyStore, nats: Callable[[], Any], metrics: ApiMetrics
    ) -> None:
        self.app = app
        self.store = store
        self.nats = nats
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Webhooks have their own durable deduplication (by delivery id; GitLab even sends its own
        # Idempotency-Key) and no credential to scope a stored answer by.
        given = (
            header(scope, b"idempotency-key")
            if scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope["path"].startswith("/webhooks/")
            else None
        )
        if given is None:
            await self.app(scope, receive, send)
            return
        if not _IDEMPOTENCY_KEY.match(given):
            bad = HttpError(
                422, "invalid_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters"
            )
            await error_response(bad)(scope, receive, send)
            return
        body = await _read_body(receive)
        credential = header(scope, b"authorization") or header(scope, b"x-project-token") or ""
        principal = hashlib.sha256(credential.encode()).hexdigest()
        key = self.store.key_for(principal, "POST", scope["path"], given)
        fingerprint = hashlib.sha256(body + b"\n" + scope.get("query_string", b"")).hexdigest()
        try:
            nc = self.nats()
            stored = await self.store.claim(nc, key, fingerprint)
        except DeksdenflowError as exc:
            await error_response(exc)(scope, receive, send)
            return
        if isinstance(stored, StoredResponse):
            self.metrics.idempotent_replays.inc()
            await _replay(stored, send)
            return
        claim = stored
        captured: dict[str, Any] = {"status": 500, "headers": {}, "body": b""}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = {
                    k.decode("latin-1"): v.decode("latin-1")
                    for k, v in message.get("headers", [])
                    if k.lower() in (b"content-type", b"x-event-sequence", b"location")
                }
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, _replay_body(body), capture)
        finally:
            response = StoredResponse(captured["status"], captured["body"], captured["headers"])
            # Keep what a retry would get again anyway; let conflicts, auth failures and server errors
            # be retried for real.
            try:
                if response.status < 400 or response.status in (400, 404, 422):
                    await self.store.complete(nc, claim, fingerprint, response)
                else:
                    await self.store.release(nc, claim)
            except DeksdenflowError as exc:
                # The answer is already sent; the claim stays pending until its age lets a retry take it.
                _log.warning("could not record the Idempotency-Key outcome", error=exc.message)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay_body(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _replay(stored: StoredResponse, send: Send) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.headers.items()]
    headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body})
