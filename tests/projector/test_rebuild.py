"""The rebuild's bulk path: parts in processes of their own, indexes built after the replay."""

from __future__ import annotations

import asyncio

import asyncpg
from deksdenflow_core.aggregates import Repository
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.readmodel import REBUILD_SCHEMA, SCHEMA
from deksdenflow_projector.migrate import migrate
from deksdenflow_projector.parts import part_of
from deksdenflow_projector.rebuild import rebuild

from tests.projector.scenario import drive, many_ids, replan
from tests.projector.test_projection import dump, project_pipelined, without_checkpoint_times

_INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname"


async def indexes(pool: asyncpg.Pool, schema: str) -> dict[str, str]:
    """Each index of ``schema`` and its definition, the schema's name taken out."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(_INDEXES, schema)
    return {r["indexname"]: r["indexdef"].replace(f" {schema}.", " S.") for r in rows}


async def test_a_rebuild_in_parts_equals_the_live_read_model(
    read_db: asyncpg.Pool, store: JetStreamEventStore, repo: Repository, fresh_db_url: str
) -> None:
    await drive(repo, projects=3, runs_per_project=2)
    await many_ids(repo)
    await replan(repo)
    last = await project_pipelined(read_db, store, page_size=5)
    live = await dump(read_db)
    for parts in (3, 2):
        report = await rebuild(fresh_db_url, store, parts=parts)
        assert report.checkpoint == last
        assert report.events == len(live["events"])
        rebuilt = await dump(read_db)
        assert without_checkpoint_times(rebuilt) == without_checkpoint_times(live), parts
        assert [row["name"] for row in rebuilt["checkpoints"]] == ["projector"], "the parts' rows are gone"


async def test_a_rebuild_has_the_indexes_the_migrations_make(
    read_db: asyncpg.Pool, store: JetStreamEventStore, repo: Repository, fresh_db_url: str
) -> None:
    """The rebuild drops the secondary indexes of its fresh schema and builds them after the replay:
    the swapped-in schema has every index the migrations made, with the same definition."""
    await drive(repo, projects=1, runs_per_project=1)
    migrated = await indexes(read_db, SCHEMA)
    assert "events_by_project" in migrated
    await rebuild(fresh_db_url, store)
    assert await indexes(read_db, SCHEMA) == migrated
    await rebuild(fresh_db_url, store, parts=2)
    assert await indexes(read_db, SCHEMA) == migrated
    await asyncio.to_thread(migrate, fresh_db_url, schema=REBUILD_SCHEMA)  # a schema migrated afresh
    assert await indexes(read_db, REBUILD_SCHEMA) == migrated


def test_the_decisions_of_an_aggregate_are_in_one_part() -> None:
    def headers(subject: str) -> bytes:
        return f"NATS/1.0\r\nNats-Stream: S\r\nNats-Subject: {subject}\r\nNats-Sequence: 7\r\n\r\n".encode()

    run = "0b5c9a7e-6f2d-4c1b-9a8e-3d2f1e0c9b8a"
    parts = {part_of(headers(f"df.evt.p1.protocol_run.{run}.{name}"), 4) for name in ("created", "paused")}
    assert len(parts) == 1
    spread = {part_of(headers(f"df.evt.p1.protocol_run.{n}.created"), 4) for n in range(64)}
    assert spread == {0, 1, 2, 3}, "aggregates spread over the parts"
    assert part_of(None, 4) == 0
