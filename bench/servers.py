"""Servers for benchmarks: existing ones from the environment, or embedded ones in a temp dir."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from deksdenflow_runtime.embedded import EmbeddedNats, EmbeddedPostgres, free_port


@dataclass(frozen=True)
class Servers:
    nats_url: str
    db_url: str
    where: str
    # The embedded servers' processes (the postmaster for PostgreSQL); None for existing servers.
    nats_pid: int | None = None
    pg_pid: int | None = None


@asynccontextmanager
async def servers() -> AsyncIterator[Servers]:
    """NATS + a fresh database: ``DEKSDENFLOW_BENCH_NATS_URL``/``_DB_URL`` (admin) or embedded."""
    home = Path(tempfile.mkdtemp(prefix="deksdenflow-bench-"))
    try:
        nats_url = os.environ.get("DEKSDENFLOW_BENCH_NATS_URL")
        admin_url = os.environ.get("DEKSDENFLOW_BENCH_DB_URL")
        async with _maybe_nats(home, nats_url) as (nurl, npid), _maybe_pg(home, admin_url) as (aurl, ppid):
            name = f"bench_{uuid.uuid4().hex[:10]}"
            admin = await asyncpg.connect(aurl)
            await admin.execute(f'CREATE DATABASE "{name}"')
            await admin.close()
            db_url = aurl.rsplit("/", 1)[0] + f"/{name}"
            where = "existing servers" if nats_url or admin_url else "embedded servers"
            try:
                yield Servers(nats_url=nurl, db_url=db_url, where=where, nats_pid=npid, pg_pid=ppid)
            finally:
                admin = await asyncpg.connect(aurl)
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                await admin.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@asynccontextmanager
async def _maybe_nats(home: Path, url: str | None) -> AsyncIterator[tuple[str, int | None]]:
    if url:
        yield url, None
        return
    async with EmbeddedNats(home, port=free_port()) as server:
        yield server.url, server.pid


@asynccontextmanager
async def _maybe_pg(home: Path, url: str | None) -> AsyncIterator[tuple[str, int | None]]:
    if url:
        yield url, None
        return
    # Durable (fsync on), as in production: the figures include the cost of commits.
    async with EmbeddedPostgres(home, port=free_port(), server_settings={"max_connections": "200"}) as server:
        yield server.admin_url, server.pid
