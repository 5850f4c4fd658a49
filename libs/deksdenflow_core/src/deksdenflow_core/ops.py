"""The operations endpoint of a background service: ``GET /health`` and ``GET /metrics`` on a small port.

Workers have no HTTP API, but Kubernetes probes and Prometheus need both. This is a deliberately tiny
HTTP/1.1 responder on asyncio streams (one request per connection), so workers need no web framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

HealthCheck = Callable[[], Awaitable[dict[str, str]]]
_MAX_REQUEST_LINE = 8192


class OpsServer:
    """Serves ``/health`` (200 when every check says "ok", else 503 naming what is down) and ``/metrics``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        health: HealthCheck,
        metrics: Callable[[], bytes],
        metrics_content_type: str = "text/plain; version=0.0.4; charset=utf-8",
    ) -> None:
        self.host, self.port = host, port
        self._health, self._metrics, self._metrics_type = health, metrics, metrics_content_type
        self._server: asyncio.Server | None = None

    @property
    def bound_port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the ops server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass  # headers are not needed
            parts = line.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 and len(line) < _MAX_REQUEST_LINE else ""
            if parts[:1] != ["GET"]:
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            elif path == "/health":
                checks = await self._health()
                ok = all(v == "ok" for v in checks.values())
                status, ctype = (200 if ok else 503), "application/json"
                body = json.dumps({"status": "ok" if ok else "degraded", "checks": checks}).encode()
            elif path == "/metrics":
                status, ctype, body = 200, self._metrics_type, self._metrics()
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[
                status
            ]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n"
                "connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
