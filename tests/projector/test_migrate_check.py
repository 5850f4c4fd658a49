"""``deksdenflow-projector migrate --check``: what a projector waits on while the migration Job runs
(deploy/k8s). It changes nothing, says where the read model stands, and exits 0 only at the latest
migration of its release."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # no py.typed in asyncpg
from deksdenflow_core.readmodel import SCHEMA
from deksdenflow_projector.migrate import current_revision, head_revision, migrate


def _check(db_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deksdenflow_projector", "migrate", "--check"],
        env={**os.environ, "DEKSDENFLOW_DB_URL": db_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_check_says_where_the_read_model_stands_and_changes_nothing(fresh_db_url: str) -> None:
    assert await current_revision(fresh_db_url) is None
    before = await asyncio.to_thread(_check, fresh_db_url)
    assert before.returncode == 1, before.stderr
    assert f"read model at no migration; this release's latest: {head_revision()}" in before.stdout
    conn = await asyncpg.connect(fresh_db_url)
    try:  # it did not migrate anything itself
        assert await conn.fetchval("SELECT to_regnamespace($1)", SCHEMA) is None
    finally:
        await conn.close()

    await asyncio.to_thread(migrate, fresh_db_url)
    assert await current_revision(fresh_db_url) == head_revision()
    after = await asyncio.to_thread(_check, fresh_db_url)
    assert after.returncode == 0, after.stderr
    assert f"read model at {head_revision()}" in after.stdout


async def test_an_unreachable_database_is_not_ready_yet() -> None:
    # A closed port: the check answers "not yet" (1), as while PostgreSQL is still starting.
    result = await asyncio.to_thread(_check, "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 1, result.stderr
    assert "read model not reachable" in result.stdout
