"""The projector as a real process: SIGKILL in the middle of a batch loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import asyncpg
import httpx
import pytest
from deksdenflow_core.aggregates import Repository
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.readmodel import SCHEMA
from deksdenflow_core.settings import EventStoreSettings
from deksdenflow_runtime.embedded import free_port

from tests.projector.scenario import drive
from tests.projector.test_projection import assert_equals_a_rebuild, log_positions, projected_positions
from tests.support import eventually


class ProjectorProcess:
    """``python -m deksdenflow_projector`` with the test's stream, prefix and database."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = int(env["DEKSDENFLOW_PROJECTOR_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deksdenflow_projector", "run"],
            env={**self.env, **extra},
            start_new_session=True,
        )

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    async def health(self) -> dict[str, int]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{self.port}/health", timeout=2)
            response.raise_for_status()
            body: dict[str, int] = response.json()
            return body


@pytest.fixture
def projector_env(store_settings: EventStoreSettings, fresh_db_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DEKSDENFLOW_NATS_URL": store_settings.nats_url,
        "DEKSDENFLOW_STREAM_NAME": store_settings.stream_name,
        "DEKSDENFLOW_SUBJECT_PREFIX": store_settings.subject_prefix,
        "DEKSDENFLOW_DB_URL": fresh_db_url,
        "DEKSDENFLOW_PROJECTOR_PORT": str(free_port()),
        "DEKSDENFLOW_PROJECTOR_DURABLE": "projector",
        "DEKSDENFLOW_PROJECTOR_BATCH_SIZE": "40",
        "DEKSDENFLOW_PROJECTOR_ACK_WAIT_SECONDS": "2",
        "DEKSDENFLOW_LOG_JSON": "1",
    }


async def _healthy_at(proc: ProjectorProcess, seq: int) -> bool:
    try:
        health = await proc.health()
    except httpx.HTTPError:
        return False
    return health["checkpoint"] >= seq and health["lag"] == 0


async def test_sigkill_mid_batch_loses_and_duplicates_nothing(
    projector_env: dict[str, str], store: JetStreamEventStore, repo: Repository, fresh_db_url: str
) -> None:
    await drive(repo, projects=3, runs_per_project=3)
    last = await store.stream_last_seq()
    logged = await log_positions(store)
    assert len(logged) > 100
    proc = ProjectorProcess(projector_env)
    proc.start(DEKSDENFLOW_PROJECTOR_DEBUG_BATCH_DELAY_SECONDS="30")
    db = await asyncpg.connect(fresh_db_url)
    try:
        # Wait until a batch's transaction is open with its rows written, then kill the process.
        async def in_batch() -> bool:
            return bool(
                await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'deksdenflow-projector' "
                    "AND state = 'idle in transaction' AND datname = current_database()"
                )
            )

        await eventually(in_batch, within=30, what="a batch in progress")
        proc.kill()
        # Nothing of the killed batch is visible.
        assert await db.fetchval(f'SELECT count(*) FROM "{SCHEMA}".events') == 0

        proc.start()
        await eventually(lambda: _healthy_at(proc, last), within=60, what="the projector catching up")
        # uvicorn re-raises the SIGTERM it handled once shutdown is complete, so -SIGTERM is a clean stop.
        assert proc.stop() in (0, -signal.SIGTERM)
        assert await projected_positions(db) == await log_positions(store), "every event applied exactly once"
    finally:
        await db.close()
        if proc.proc and proc.proc.poll() is None:
            proc.kill()
    await assert_equals_a_rebuild(fresh_db_url, store)


async def test_a_lost_database_connection_mid_batch_is_retried_on_a_new_one(
    projector_env: dict[str, str], store: JetStreamEventStore, repo: Repository, fresh_db_url: str
) -> None:
    """The projector writes every batch on one connection it holds; when that connection dies inside a
    batch, the batch is redelivered and written on a new connection, and the process keeps running."""
    await drive(repo, projects=2, runs_per_project=2)
    last = await store.stream_last_seq()
    proc = ProjectorProcess(projector_env)
    proc.start(DEKSDENFLOW_PROJECTOR_DEBUG_BATCH_DELAY_SECONDS="0.3")
    db = await asyncpg.connect(fresh_db_url)
    try:
        writer: list[int] = []

        async def writer_in_batch() -> bool:
            writer[:] = [
                r["pid"]
                for r in await db.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'deksdenflow-projector' "
                    "AND state = 'idle in transaction' AND datname = current_database()"
                )
            ]
            return bool(writer)

        await eventually(writer_in_batch, within=30, what="a batch in progress")
        assert await db.fetchval("SELECT pg_terminate_backend($1)", writer[0])
        await eventually(lambda: _healthy_at(proc, last), within=60, what="the projector catching up")
        assert proc.proc is not None
        assert proc.proc.poll() is None, "the projector kept running"
        assert await projected_positions(db) == await log_positions(store), "every event applied exactly once"
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{proc.port}/metrics", timeout=2)).text
        failures = next(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("deksdenflow_projector_batch_failures_total ")
        )
        assert failures >= 1, "the batch on the killed connection failed and was written again"
    finally:
        await db.close()
        if proc.proc and proc.proc.poll() is None:
            assert proc.stop() in (0, -signal.SIGTERM)
