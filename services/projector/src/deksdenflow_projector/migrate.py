"""Run the read-model migrations (Alembic) into a schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from deksdenflow_core.readmodel import SCHEMA

_MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(db_url: str) -> str:
    """``postgresql://…`` (libpq style, what asyncpg takes) → the SQLAlchemy asyncpg URL."""
    for prefix in ("postgresql://", "postgres://"):
        if db_url.startswith(prefix):
            return "postgresql+asyncpg://" + db_url[len(prefix) :]
    return db_url


def migrate(db_url: str, *, schema: str = SCHEMA, revision: str = "head") -> None:
    """Bring ``schema`` to ``revision``. Blocking: call it from a thread inside an event loop."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["url"] = sqlalchemy_url(db_url)
    config.attributes["schema"] = schema
    command.upgrade(config, revision)
