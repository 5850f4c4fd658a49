"""Fixtures shared by every test: a real NATS and a real PostgreSQL, never mocks.

By default both are embedded servers started once per session on free ports with a temporary data
directory. Set ``DEKSDENFLOW_TEST_NATS_URL`` / ``DEKSDENFLOW_TEST_DB_URL`` to use servers that already
run instead (e.g. ``nats://127.0.0.1:4222`` and ``postgresql://postgres@127.0.0.1:5432/postgres``; the
database URL must be a superuser's, since tests create and drop databases).

Servers are only started when a test asks for them. Isolation: ``fresh_db_url`` gives each test its own
database; NATS tests isolate themselves with unique stream names and subject prefixes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # no py.typed in asyncpg
import pytest
from deksdenflow_core.aggregates import Repository
from deksdenflow_core.eventstore import JetStreamEventStore, connect
from deksdenflow_core.settings import EventStoreSettings
from deksdenflow_runtime.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from deksdenflow_runtime.embedded_pg import quote_ident
from nats.aio.client import Client as NATS

NATS_URL_ENV = "DEKSDENFLOW_TEST_NATS_URL"
DB_URL_ENV = "DEKSDENFLOW_TEST_DB_URL"


def with_database(url: str, database: str) -> str:
    """``url`` with its database (the path) replaced, keeping user, host and query parameters."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def embedded_home() -> Iterator[Path]:
    """A data directory for the session's embedded servers, removed at the end.

    Made under the system temp dir rather than pytest's tmp_path: short paths keep PostgreSQL's Unix
    socket path under its length limit, and pytest's private parent directories are left alone.
    """
    home = Path(tempfile.mkdtemp(prefix="deksdenflow-test-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
async def nats_url(embedded_home: Path) -> AsyncIterator[str]:
    """URL of a NATS server with JetStream: ``DEKSDENFLOW_TEST_NATS_URL`` or an embedded one."""
    if url := os.environ.get(NATS_URL_ENV):
        yield url
        return
    async with EmbeddedNats(embedded_home, port=free_port()) as server:
        yield server.url


@pytest.fixture(scope="session")
async def pg_admin_url(embedded_home: Path) -> AsyncIterator[str]:
    """URL of a PostgreSQL superuser connection: ``DEKSDENFLOW_TEST_DB_URL`` or an embedded server's."""
    if url := os.environ.get(DB_URL_ENV):
        yield url
        return
    # Throw-away data: no fsync. Room for the many small pools that tests open.
    server = EmbeddedPostgres(
        embedded_home, port=free_port(), durable=False, server_settings={"max_connections": "300"}
    )
    async with server:
        yield server.admin_url


@pytest.fixture
async def fresh_db_url(pg_admin_url: str) -> AsyncIterator[str]:
    """URL of a new, empty database for this test only; dropped afterwards (even if still in use)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
    finally:
        await admin.close()
    yield with_database(pg_admin_url, name)
    admin = await asyncpg.connect(pg_admin_url)
    try:
        # FORCE (PostgreSQL >= 13) disconnects pools the test left open instead of failing the drop.
        await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
    finally:
        await admin.close()


# --- the event log: a stream and subject prefix of its own for each test -------------------------------


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    client = await connect(EventStoreSettings(nats_url=nats_url), name="tests")
    yield client
    await client.drain()


@pytest.fixture
def store_settings(nats_url: str) -> EventStoreSettings:
    suffix = uuid.uuid4().hex[:10]
    return EventStoreSettings(nats_url=nats_url, stream_name=f"DF_TEST_{suffix}", subject_prefix=f"t{suffix}")


@pytest.fixture
async def store(nc: NATS, store_settings: EventStoreSettings) -> AsyncIterator[JetStreamEventStore]:
    event_store = JetStreamEventStore(nc, store_settings)
    await event_store.provision()
    yield event_store
    for stream in (event_store.stream, event_store.feed_stream):
        await nc.request(f"$JS.API.STREAM.DELETE.{stream}", b"", timeout=5)


@pytest.fixture
def repo(store: JetStreamEventStore) -> Repository:
    return Repository(store)
