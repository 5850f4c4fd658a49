"""Alembic environment: migrations are schema-agnostic and run inside the schema they are given.

The target schema comes from ``config.attributes["schema"]`` (default: the live read-model schema), is
created if missing, and is put first on the ``search_path``; the version table lives in it too. A rebuild
runs the very same migrations into a fresh schema, so the rebuilt tables are the live tables' twins.
"""

from __future__ import annotations

import asyncio

from alembic import context
from deksdenflow_core.readmodel import SCHEMA
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config
schema: str = config.attributes.get("schema", SCHEMA)
url: str = config.attributes["url"]


def _run(connection: Connection) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    connection.execute(text(f'SET search_path TO "{schema}"'))
    context.configure(connection=connection, version_table_schema=schema, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


asyncio.run(_main())
