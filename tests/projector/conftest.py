"""Projector fixtures: a fresh database with the read model migrated, over a per-test event store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from deksdenflow_projector.migrate import migrate
from deksdenflow_projector.projection import init_connection


@pytest.fixture
async def read_db(fresh_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    await asyncio.to_thread(migrate, fresh_db_url)
    pool = await asyncpg.create_pool(fresh_db_url, init=init_connection, min_size=1, max_size=4)
    yield pool
    await pool.close()
