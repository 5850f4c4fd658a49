"""Run the read-model migrations (Alembic) into a schema."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from deksdenflow_core.readmodel import SCHEMA

_MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(db_url: str) -> str:
    """``postgresql://…`` (libpq style, what asyncpg takes) → the SQLAlchemy asyncpg URL."""
    for prefix in ("postgresql://", "postgres://"):
        if db_url.startswith(prefix):
            return "postgresql+asyncpg://" + db_url[len(prefix) :]
    return db_url


def _config(db_url: str, schema: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["url"] = sqlalchemy_url(db_url)
    config.attributes["schema"] = schema
    return config


def migrate(db_url: str, *, schema: str = SCHEMA, revision: str = "head") -> None:
    """Bring ``schema`` to ``revision``. Blocking: call it from a thread inside an event loop."""
    command.upgrade(_config(db_url, schema), revision)


def head_revision() -> str:
    """The newest migration this release ships."""
    head = ScriptDirectory.from_config(_config("", SCHEMA)).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError("no read-model migration found")
    return head


async def current_revision(db_url: str, *, schema: str = SCHEMA) -> str | None:
    """The migration ``schema`` stands at (None: never migrated), read without changing anything."""
    conn = await asyncpg.connect(db_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".alembic_version')
        if exists is None:
            return None
        revision: str | None = await conn.fetchval(f'SELECT version_num FROM "{schema}".alembic_version')
        return revision
    finally:
        await conn.close()
