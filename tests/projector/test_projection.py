"""The projector's effect on PostgreSQL, against a real nats-server and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import asyncpg
import pytest
from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, Repository
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.envelope import RecordedEvent
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.readmodel import SCHEMA
from deksdenflow_core.readmodel.tables import TABLES as READ_TABLES
from deksdenflow_core.settings import EventStoreSettings
from deksdenflow_projector.projection import (
    LiveProjection,
    PreparedBatch,
    StaleBatch,
    apply_batch,
    checkpoint,
    init_connection,
)
from deksdenflow_projector.rebuild import rebuild
from nats.aio.client import Client as NATS

from tests.projector.scenario import drive, many_ids, meta, replan

TABLES = (
    "projects",
    "project_tokens",
    "protocol_runs",
    "step_runs",
    "events",
    "usage_records",
    "ci_reports",
    "checkpoints",
)
_KEYS = {table.name: table.key for table in READ_TABLES}


async def decisions(store: JetStreamEventStore) -> list[list[RecordedEvent]]:
    """The log, one list of events per message (a decision): a batch of the projector holds whole
    messages."""
    by_seq: dict[int, list[RecordedEvent]] = {}
    for event in (await store.read(store.subjects.all)).events:
        by_seq.setdefault(event.stream_seq, []).append(event)
    return list(by_seq.values())


def flat(messages: list[list[RecordedEvent]]) -> list[RecordedEvent]:
    return [event for message in messages for event in message]


async def project_all(pool: asyncpg.Pool, store: JetStreamEventStore, page_size: int = 7) -> int:
    """Apply the whole log in small, overlapping batches of messages (as redelivery would)."""
    messages = await decisions(store)
    last = 0
    for start in range(0, len(messages), page_size):
        # overlap: already applied events are skipped
        batch = flat(messages[max(0, start - 2) : start + page_size])
        async with pool.acquire() as conn, conn.transaction():
            last = await apply_batch(conn, SCHEMA, batch)
    return last


async def commit(pool: asyncpg.Pool, live: LiveProjection, prepared: PreparedBatch) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await live.commit(conn, prepared)


async def project_pipelined(pool: asyncpg.Pool, store: JetStreamEventStore, page_size: int = 7) -> int:
    """Apply the whole log as the live projector does: each batch folded before the previous commits."""
    messages = await decisions(store)
    live = LiveProjection(pool, SCHEMA)
    last, pending = 0, None
    for start in range(0, len(messages), page_size):
        prepared = await live.prepare(flat(messages[start : start + page_size]))
        if pending is not None:
            last = await commit(pool, live, pending)
        pending = prepared
    if pending is not None:
        last = await commit(pool, live, pending)
    return last


def without_checkpoint_times(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """When the checkpoint was written is operational, not projected."""
    return {**tables, "checkpoints": [{**row, "updated_at": None} for row in tables["checkpoints"]]}


async def dump(pool: asyncpg.Pool) -> dict[str, list[dict[str, Any]]]:
    async with pool.acquire() as conn:
        return {
            t: [dict(r) for r in await conn.fetch(f'SELECT * FROM "{SCHEMA}".{t} ORDER BY {_KEYS[t]}')]
            for t in TABLES
        }


async def log_positions(store: JetStreamEventStore) -> list[int]:
    """The position of every event in the log, in order."""
    return [e.position for e in (await store.read(store.subjects.all)).events]


async def projected_positions(conn: asyncpg.Connection | asyncpg.Pool) -> list[int]:
    """The position of every event in the read model's ``events`` table, in order."""
    rows = await conn.fetch(f'SELECT position FROM "{SCHEMA}".events ORDER BY position')
    return [r["position"] for r in rows]


async def assert_equals_a_rebuild(db_url: str, store: JetStreamEventStore) -> None:
    """The live read model equals a rebuild of the log into the same database (checkpoint times aside)."""
    pool = await asyncpg.create_pool(db_url, init=init_connection, min_size=1, max_size=2)
    try:
        live = await dump(pool)
        await rebuild(db_url, store)
        rebuilt = await dump(pool)
    finally:
        await pool.close()
    for tables in (live, rebuilt):
        tables["checkpoints"] = [{**row, "updated_at": None} for row in tables["checkpoints"]]
    for table in TABLES:
        assert rebuilt[table] == live[table], table


async def dump_text(pool: asyncpg.Pool) -> dict[str, list[str]]:
    """Every row of every table as PostgreSQL writes it out (jsonb arrays in their stored order)."""
    tables: dict[str, list[str]] = {}
    async with pool.acquire() as conn:
        for t in TABLES:
            row = "row_to_json(t)::text"
            if t == "checkpoints":  # when the checkpoint was written is operational, not projected
                row = "(to_jsonb(t) - 'updated_at')::text"
            tables[t] = [r[0] for r in await conn.fetch(f'SELECT {row} FROM "{SCHEMA}".{t} t ORDER BY 1')]
    return tables


async def rebuild_in_another_process(db_url: str, settings: EventStoreSettings, hash_seed: str) -> None:
    """``deksdenflow-projector rebuild`` as an operator runs it: a process with its own string hashing."""
    env = {
        **os.environ,
        "PYTHONHASHSEED": hash_seed,
        "DEKSDENFLOW_DB_URL": db_url,
        "DEKSDENFLOW_NATS_URL": settings.nats_url,
        "DEKSDENFLOW_STREAM_NAME": settings.stream_name,
        "DEKSDENFLOW_SUBJECT_PREFIX": settings.subject_prefix,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deksdenflow_projector",
        "rebuild",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()


async def test_read_model_matches_the_aggregates(
    read_db: asyncpg.Pool, store: JetStreamEventStore, repo: Repository
) -> None:
    run_ids = await drive(repo)
    last = await project_all(read_db, store)
    assert last == await store.stream_last_seq()
    tables = await dump(read_db)
    assert [e["position"] for e in tables["events"]] == await log_positions(store), "every event exactly once"
    assert len(tables["projects"]) == 2
    for project in tables["projects"]:
        folded = (await repo.load(PROJECT, project["id"])).state
        assert project["default_models"] == folded.default_models.model_dump(mode="json")
        assert project["questions"] == [q.model_dump(mode="json") for q in folded.questions]
        assert project["answers"] == folded.answers
    assert len(tables["project_tokens"]) == 2
    for run_id in run_ids:
        state = (await repo.load(PROTOCOL_RUN, run_id)).state
        row = next(r for r in tables["protocol_runs"] if r["id"] == run_id)
        assert row["status"] == state.status.value
        assert row["protocol_name"] == state.protocol_name
        assert row["cost_micro_usd"] == 1500
        steps = sorted(
            (r for r in tables["step_runs"] if r["protocol_run_id"] == run_id), key=lambda r: r["step_index"]
        )
        assert [s["status"] for s in steps] == [s.status.value for s in state.steps]
        # jsonb columns hold JSON values (not arrays of them, not NULL)
        assert [s["changed_files"] for s in steps] == [list(s.changed_files) for s in state.steps]
        assert steps[0]["changed_files"] == ["src/app.py", "README.md"]
        assert steps[0]["last_verdict"] in ("pass", "fail")
    names = sorted(r["protocol_name"] for r in tables["protocol_runs"])
    assert names == ["0001-task-0", "0001-task-0", "0002-task-1", "0002-task-1"]
    assert {r["status"] for r in tables["ci_reports"]} == {"failure"}
    run_events = [e for e in tables["events"] if e["protocol_run_id"] == run_ids[0]]
    assert run_events[0]["type"] == "protocol_run.created"
    assert any(e["step_run_id"] for e in run_events)


async def test_redelivered_batches_are_skipped(
    read_db: asyncpg.Pool, store: JetStreamEventStore, repo: Repository
) -> None:
    await drive(repo, projects=1, runs_per_project=1)
    last = await project_all(read_db, store)
    before = await dump(read_db)
    events = (await store.read(store.subjects.all)).events
    async with read_db.acquire() as conn, conn.transaction():
        assert await apply_batch(conn, SCHEMA, events) == last
    assert await dump(read_db) == before


async def test_rebuild_equals_live(
    read_db: asyncpg.Pool,
    store: JetStreamEventStore,
    store_settings: EventStoreSettings,
    repo: Repository,
    fresh_db_url: str,
) -> None:
    await drive(repo)
    await many_ids(repo)
    await project_all(read_db, store, page_size=5)
    live = await dump(read_db)
    live_text = await dump_text(read_db)
    assert '-call-15"' in str(live_text["protocol_runs"]), "the run states carry ids kept as sets"
    for hash_seed in ("1", "2"):
        await rebuild_in_another_process(fresh_db_url, store_settings, hash_seed)
        rebuilt_text = await dump_text(read_db)
        for table in TABLES:  # every column, byte for byte
            assert rebuilt_text[table] == live_text[table], (table, f"PYTHONHASHSEED={hash_seed}")
    report = await rebuild(fresh_db_url, store)
    assert report.events == len(live["events"])
    rebuilt = await dump(read_db)
    for tables in (live, rebuilt):  # when the checkpoint was written is operational, not projected
        tables["checkpoints"] = [{**row, "updated_at": None} for row in tables["checkpoints"]]
    for table in TABLES:
        for old, new in zip(live[table], rebuilt[table], strict=True):
            assert {k: v for k, v in new.items() if old[k] != v} == {}, (table, old)
    async with read_db.acquire() as conn:
        assert await checkpoint(conn, SCHEMA) == report.checkpoint
        schemas = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
    assert "readmodel_rebuild" not in schemas
    assert "readmodel_retired" not in schemas


async def test_a_log_written_before_decisions_were_messages_rebuilds_to_the_live_read_model(
    read_db: asyncpg.Pool,
    nc: NATS,
    store: JetStreamEventStore,
    store_settings: EventStoreSettings,
    fresh_db_url: str,
) -> None:
    """A deployment upgraded in place: its log holds decisions of several events as one message per
    event (an atomic batch), then as one message each. The live projection of both shapes equals a
    rebuild, and the old part reads as it did."""
    old_shape = Repository(JetStreamEventStore(nc, store_settings, decision_bytes=0))
    await drive(old_shape, projects=2, runs_per_project=2)
    old = (await store.read(store.subjects.all)).events
    assert all(e.index == 0 for e in old), "the old shape: one message per event"
    assert len(old) == await store.stream_last_seq()
    await project_pipelined(read_db, store, page_size=5)
    before = await dump(read_db)
    assert [e["position"] for e in before["events"]] == [e.stream_seq * 1024 for e in old]
    await assert_equals_a_rebuild(fresh_db_url, store)
    await drive(Repository(store), projects=1, runs_per_project=2)  # after the upgrade
    assert any(e.index > 0 for e in (await store.read(store.subjects.all)).events), "the new shape"
    await project_pipelined(read_db, store, page_size=5)
    after = await dump(read_db)
    assert after["events"][: len(before["events"])] == before["events"], "the old part reads as it did"
    await assert_equals_a_rebuild(fresh_db_url, store)


async def test_nul_characters_from_a_worker_do_not_stop_the_projection(
    read_db: asyncpg.Pool, store: JetStreamEventStore, repo: Repository
) -> None:
    run_ids = await drive(repo, projects=1, runs_per_project=1)
    await repo.execute(
        PROTOCOL_RUN, run_ids[0], cmd.RecordBranchPushed(branch="b\x00", commit_sha="c\x00"), meta()
    )
    last = await project_all(read_db, store)
    assert last == await store.stream_last_seq()
    async with read_db.acquire() as conn:
        sha = await conn.fetchval(
            f'SELECT branch_head_sha FROM "{SCHEMA}".protocol_runs WHERE id = $1', run_ids[0]
        )
        payload = await conn.fetchval(
            f'SELECT payload FROM "{SCHEMA}".events WHERE seq = $1 ORDER BY position DESC LIMIT 1', last
        )
    assert sha == "c\ufffd"
    assert payload == {"branch": "b\ufffd", "commit_sha": "c\ufffd", "ancestors": []}


async def test_pipelined_projection_equals_a_rebuild(
    read_db: asyncpg.Pool, store: JetStreamEventStore, repo: Repository, fresh_db_url: str
) -> None:
    await drive(repo)
    replanned = await replan(repo)
    last = await project_pipelined(read_db, store, page_size=4)
    assert last == await store.stream_last_seq()
    live = await dump(read_db)
    steps = [s for s in live["step_runs"] if s["protocol_run_id"] == replanned]
    assert len(steps) == 2, "the steps of the first plan are gone"
    await rebuild(fresh_db_url, store)
    rebuilt = await dump(read_db)
    assert without_checkpoint_times(rebuilt) == without_checkpoint_times(live)


async def test_a_batch_folded_before_a_rebuild_is_folded_again_after_it(
    read_db: asyncpg.Pool, store: JetStreamEventStore, repo: Repository, fresh_db_url: str
) -> None:
    run_id = (await drive(repo, projects=1, runs_per_project=1))[0]
    live = LiveProjection(read_db, SCHEMA)
    await commit(read_db, live, await live.prepare((await store.read(store.subjects.all)).events))
    # A rebuild swaps in a read model at the very same checkpoint; the run's state carried over in
    # memory belongs to the retired one.
    await rebuild(fresh_db_url, store)
    await repo.execute(PROTOCOL_RUN, run_id, cmd.PauseProtocolRun(), meta())
    events = (await store.read(store.subjects.all)).events
    with pytest.raises(StaleBatch):
        await commit(read_db, live, await live.prepare(events))
    live.discard()
    assert await commit(read_db, live, await live.prepare(events)) == events[-1].stream_seq
    projected = await dump(read_db)
    await rebuild(fresh_db_url, store)
    assert without_checkpoint_times(await dump(read_db)) == without_checkpoint_times(projected)
