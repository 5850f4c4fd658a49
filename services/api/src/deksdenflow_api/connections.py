"""The API's connections to NATS and PostgreSQL, opened robustly so the API starts before its servers.

Neither connection is required at startup: NATS connects in the background and reconnects forever,
and the asyncpg pool opens connections on demand. ``/health`` says which one is not there yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # no py.typed in asyncpg
import nats
from deksdenflow_core.aio import cancel_and_wait
from deksdenflow_core.errors import InfrastructureError
from deksdenflow_core.logging import get_logger

_log = get_logger(__name__)


class NatsConnection:
    """A nats-py client that keeps trying to connect (and later to reconnect) in the background."""

    def __init__(self, servers: str, *, name: str, connect_timeout: float) -> None:
        self.servers = [server.strip() for server in servers.split(",") if server.strip()]
        self.name = name
        self.connect_timeout = connect_timeout
        self.last_error: str | None = None
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def client(self) -> Any:
        """The connected nats-py client, or None until the first connection succeeded."""
        return self._client

    def start(self) -> None:
        """Start connecting in the background; returns immediately."""
        self._task = asyncio.create_task(self._connect(), name="nats-connect")

    async def _connect(self) -> None:
        async def on_error(exc: Exception) -> None:
            message = f"{type(exc).__name__}: {exc}"
            if message != self.last_error:  # a down server would otherwise log every retry
                _log.warning("NATS connection problem", error=message)
            self.last_error = message

        async def on_disconnected() -> None:
            if not self._closing:  # draining disconnects on purpose
                _log.warning("NATS disconnected, reconnecting")

        async def on_reconnected() -> None:
            self.last_error = None
            _log.info("NATS reconnected")

        # max_reconnect_attempts=-1: never give up, neither on the first connect nor later.
        self._client = await nats.connect(
            self.servers,
            name=self.name,
            connect_timeout=self.connect_timeout,
            reconnect_time_wait=1,
            max_reconnect_attempts=-1,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
        self.last_error = None
        _log.info("NATS connected", servers=self.servers)

    async def check(self) -> None:
        """Raise unless the server answers a JetStream request on this connection."""
        client = self._client
        if client is None:
            raise InfrastructureError(f"not connected yet ({self.last_error or 'connecting'})")
        if not client.is_connected:
            raise InfrastructureError(f"disconnected ({self.last_error or 'reconnecting'})")
        # Account info is a real request/reply through JetStream, which every write of the API needs.
        await client.jetstream().account_info()

    async def close(self, grace: float) -> None:
        """Drain (deliver what is pending, then close) within ``grace`` s; stop trying if never connected."""
        self._closing = True
        if self._task is not None:
            await cancel_and_wait(self._task, grace)
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await asyncio.wait_for(client.drain(), grace)
        except Exception as exc:  # a drain that fails or hangs must not block shutdown
            _log.warning("NATS drain failed, closing", error=repr(exc))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), grace)


async def _json_codecs(conn: asyncpg.Connection) -> None:
    """jsonb/json columns arrive as Python objects."""
    for name in ("jsonb", "json"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class PostgresPool:
    """An asyncpg pool with ``min_size=0``: creating it never connects, so PostgreSQL may come up later."""

    def __init__(self, dsn: str, *, max_size: int = 10) -> None:
        self.dsn = dsn
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool (after ``start``)."""
        if self._pool is None:
            raise InfrastructureError("the PostgreSQL pool is not started")
        return self._pool

    async def start(self) -> None:
        """Create the pool; no connection is opened until one is needed."""
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=0, max_size=self.max_size, init=_json_codecs, reset=_keep_session
        )

    async def check(self) -> None:
        """Raise unless PostgreSQL answers ``SELECT 1``."""
        async with self.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def close(self, grace: float) -> None:
        """Close the pool gracefully within ``grace`` seconds, then forcibly."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), grace)
        except Exception:  # connections stuck in queries: terminate rather than hang the shutdown
            pool.terminate()


@dataclass(frozen=True)
class Connections:
    """Everything the request handlers reach the outside world through."""

    nats: NatsConnection
    postgres: PostgresPool
    health_timeout: float


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """What a connection needs back in the pool beyond asyncpg's own minimum (an open transaction
    rolled back, listeners dropped): nothing. The API sets no session state, takes no session-level lock
    and LISTENs only on its own dedicated connection, so the default reset (``RESET ALL``, ``UNLISTEN
    *``, ``pg_advisory_unlock_all()`` …: one more round trip per query) buys nothing."""
