"""The embedded NATS and PostgreSQL: start, stop, reuse their data, and fail clearly."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # no py.typed in asyncpg
import nats
import psutil
import pytest
from deksdenflow_core.errors import ConfigurationError, MissingDependency
from deksdenflow_runtime.embedded import EmbeddedNats, EmbeddedPostgres, free_port

from tests.support import eventually


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
    """A port that is taken: something listens on it (and never answers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def _port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


async def _gone(pid: int) -> None:
    await eventually(lambda: not psutil.pid_exists(pid), within=10, what=f"process {pid} to exit")


async def test_servers_start_stop_and_keep_their_data_across_restarts(home: Path) -> None:
    nats_server = EmbeddedNats(home, port=free_port())
    pg = EmbeddedPostgres(home, port=free_port(), durable=False)
    async with nats_server, pg:
        assert pg.url.endswith("/deksdenflow")
        nc = await nats.connect(nats_server.url)
        await nc.jetstream().add_stream(name="KEEP", subjects=["keep.>"])
        await nc.jetstream().publish("keep.one", b"1")
        await nc.close()
        conn = await asyncpg.connect(pg.url)
        await conn.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
        await conn.close()
        pids = [nats_server.pid, pg.pid]
    for pid in pids:
        assert pid is not None
        await _gone(pid)

    # Same data directory, other ports: the stream and the table are still there, no initdb again.
    nats_server = EmbeddedNats(home, port=free_port())
    pg = EmbeddedPostgres(home, port=free_port(), durable=False)
    async with nats_server, pg:
        nc = await nats.connect(nats_server.url)
        info = await nc.jetstream().stream_info("KEEP")
        await nc.close()
        assert info.state.messages == 1
        conn = await asyncpg.connect(pg.url)
        assert await conn.fetchval("SELECT v FROM kept") == 42
        await conn.close()
    assert (home / "logs" / "postgres.log").stat().st_size > 0
    assert (home / "logs" / "nats.log").stat().st_size > 0


async def test_taken_nats_port_is_a_clear_configuration_error(
    home: Path, listening_socket: socket.socket
) -> None:
    port = _port(listening_socket)
    with pytest.raises(ConfigurationError) as caught:
        await EmbeddedNats(home, port=port).start()
    message = caught.value.message
    assert f"Port {port}" in message
    assert "DEKSDENFLOW_EMBEDDED_NATS_PORT" in message
    assert "DEKSDENFLOW_NATS_URL" in message
    # Nothing was left holding the data directory: a start on a free port works.
    async with EmbeddedNats(home, port=free_port()):
        pass


async def test_taken_postgres_port_is_a_clear_configuration_error(
    home: Path, listening_socket: socket.socket
) -> None:
    port = _port(listening_socket)
    with pytest.raises(ConfigurationError) as caught:
        await EmbeddedPostgres(home, port=port, durable=False).start()
    assert f"Port {port}" in caught.value.message
    assert "DEKSDENFLOW_EMBEDDED_PG_PORT" in caught.value.message
    assert "DEKSDENFLOW_DB_URL" in caught.value.message


async def test_a_data_directory_serves_one_server_at_a_time(home: Path) -> None:
    async with EmbeddedPostgres(home, port=free_port(), durable=False):
        with pytest.raises(ConfigurationError, match="already in use"):
            await EmbeddedPostgres(home, port=free_port(), durable=False).start()
    async with EmbeddedNats(home, port=free_port()):
        with pytest.raises(ConfigurationError, match="already in use"):
            await EmbeddedNats(home, port=free_port()).start()


async def test_postgres_starts_after_a_crash(home: Path) -> None:
    pg = EmbeddedPostgres(home, port=free_port(), durable=False)
    await pg.start()
    pid = pg.pid
    assert pid is not None
    # A crash: the whole server dies at once, leaving postmaster.pid and an unclean shutdown behind.
    os.killpg(pid, signal.SIGKILL)
    await pg.stop()  # reaps the dead server (it is our child) and releases the data directory
    await _gone(pid)
    assert (pg.pgdata / "postmaster.pid").exists()

    async with EmbeddedPostgres(home, port=free_port(), durable=False) as again:
        conn = await asyncpg.connect(again.url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()


async def test_postgres_ignores_a_stale_pid_file_naming_a_live_unrelated_process(home: Path) -> None:
    async with EmbeddedPostgres(home, port=free_port(), durable=False):
        pass
    # After a crash and a reboot the recorded pid may belong to anything, here: this test process.
    pid_file = home / "postgres" / "postmaster.pid"
    pid_file.write_text(f"{os.getpid()}\n{home / 'postgres'}\n0\n1\n\n\n\n")
    async with EmbeddedPostgres(home, port=free_port(), durable=False) as pg:
        assert pg.pid is not None


async def test_servers_left_running_by_a_crashed_run_are_replaced(home: Path) -> None:
    orphan_nats = EmbeddedNats(home, port=free_port())
    orphan_pg = EmbeddedPostgres(home, port=free_port(), durable=False)
    await orphan_nats.start()
    await orphan_pg.start()
    pids = [orphan_nats.pid, orphan_pg.pid]
    # Simulate the supervisor dying without stopping them: the servers run on, the locks are gone.
    orphan_nats._lock.release()
    orphan_pg._lock.release()
    try:
        async with (
            EmbeddedNats(home, port=free_port()),
            EmbeddedPostgres(home, port=free_port(), durable=False),
        ):
            for pid in pids:
                assert pid is not None
                assert not psutil.pid_exists(pid)
    finally:
        await orphan_nats.stop()
        await orphan_pg.stop()


async def test_missing_nats_binary_is_a_missing_dependency(home: Path) -> None:
    with pytest.raises(MissingDependency, match="nats-server"):
        await EmbeddedNats(home, port=free_port(), binary=home / "no-such-nats-server").start()
