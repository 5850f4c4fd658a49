"""A small threaded HTTP server base for the fakes: binds 127.0.0.1 on a free port, records every request.

Fakes run on their own thread so they answer no matter what the test's event loop is doing (a CLI under
test talks to them from another process). Subclasses implement ``handle(request) -> Reply``.
"""

from __future__ import annotations

import functools
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    """One request as the fake received it."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    """An answer: a status, headers and either a whole body or a stream of chunks (e.g. SSE)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterator[bytes] | None = None

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(
            status=status,
            body=json.dumps(payload).encode(),
            headers={"content-type": "application/json", **(headers or {})},
        )

    @classmethod
    def empty(cls, status: int = 204) -> Reply:
        return cls(status=status)


class FakeServer(ABC):
    """Base of every fake: ``start()``/``stop()`` (or ``with``), ``url``, ``requests`` seen so far."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._injected: list[Reply] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- to implement ---------------------------------------------------------------------------------

    @abstractmethod
    def handle(self, request: Request) -> Reply:
        """The fake's answer to ``request`` (called on a server thread)."""

    # --- lifecycle ------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the fake server is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, each answer waits ~40 ms for an ACK.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                with fake._lock:
                    fake.requests.append(request)
                    injected = fake._injected.pop(0) if fake._injected else None
                try:
                    reply = injected or fake.handle(request)
                except Exception as exc:  # a bug in a fake must show, not hang the client
                    reply = Reply.json(500, {"message": f"fake server error: {exc!r}"})
                self._write(reply)

            def _write(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunks is None:
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    return
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    for chunk in reply.chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # A short poll interval: stop() waits for the serving loop to notice, and tests stop a fake each time.
        serve = functools.partial(self._httpd.serve_forever, poll_interval=0.02)
        self._thread = threading.Thread(target=serve, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, reply: Reply, *, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``reply`` whatever they ask (an outage, a 502, a 429).

        The requests are still recorded, so a test can check what the client sent while things failed.
        """
        with self._lock:
            self._injected.extend([reply] * times)

    def requests_to(self, method: str, path_prefix: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]
