"""The embedded NATS and PostgreSQL of ``deksdenflow run`` require credentials, and each login may do only
what its service does. Real servers, started by the real supervisor (no service processes needed).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # no py.typed in asyncpg
import nats
import pytest
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.eventstore import AppendMeta, JetStreamEventStore, Position
from deksdenflow_core.redact import redact_url
from deksdenflow_core.settings import ApiSettings, DatabaseSettings, EventStoreSettings, RuntimeSettings
from deksdenflow_runtime.credentials import Credentials, credentials_file
from deksdenflow_runtime.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from deksdenflow_runtime.endpoints import endpoints_file, read_endpoints
from deksdenflow_runtime.supervisor import Supervisor
from nats.aio.client import Client as NATS

from tests.support import eventually

STREAM = "DF_EVENTS"


@dataclass(frozen=True)
class System:
    home: Path
    nats_port: int
    pg_port: int
    out: io.StringIO
    creds: Credentials

    def nats_url(self, user: str | None = None, password: str | None = None) -> str:
        if user is None:
            return f"nats://127.0.0.1:{self.nats_port}"
        return f"nats://{user}:{password or self.creds.nats[user]}@127.0.0.1:{self.nats_port}"

    def pg_url(self, role: str = "postgres") -> str:
        return f"postgresql://{role}:{self.creds.postgres[role]}@127.0.0.1:{self.pg_port}/deksdenflow"


@asynccontextmanager
async def running(home: Path) -> AsyncIterator[System]:
    """``deksdenflow run``'s supervisor with its embedded servers and no services, until the block ends."""
    nats_port, pg_port = free_port(), free_port()
    out = io.StringIO()
    runtime = RuntimeSettings(home=home, embedded_nats_port=nats_port, embedded_pg_port=pg_port)
    supervisor = Supervisor(
        runtime, ApiSettings(), EventStoreSettings(), DatabaseSettings(), services=[], out=out
    )
    task = asyncio.create_task(supervisor.run())
    try:
        await eventually(
            lambda: "Press Ctrl-C to stop." in out.getvalue() or task.done(), within=90, what="start"
        )
        assert not task.done(), out.getvalue()
        yield System(home, nats_port, pg_port, out, Credentials.load(credentials_file(home)))
    finally:
        supervisor.request_stop()
        assert await asyncio.wait_for(task, 60) == 0


async def _connect(url: str) -> tuple[NATS, list[str]]:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False, max_reconnect_attempts=1)
    return nc, errors


async def _refused(url: str) -> str:
    with pytest.raises(nats.errors.Error) as caught:
        await _connect(url)
    return str(caught.value)


async def test_the_embedded_servers_refuse_anyone_without_credentials_and_keep_them_private(
    home: Path,
) -> None:
    async with running(home) as system:
        assert "Authorization Violation" in await _refused(system.nats_url())
        assert "Authorization Violation" in await _refused(system.nats_url("api", "not-the-password"))
        for dsn in (  # over TCP and over the Unix socket, as the superuser and as the reader
            f"postgresql://postgres@127.0.0.1:{system.pg_port}/deksdenflow",
            f"postgresql://deksdenflow_reader@127.0.0.1:{system.pg_port}/deksdenflow",
        ):
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(dsn, password="")
        socket_dir = home / "run" / "pgsocket"
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(
                host=str(socket_dir), port=system.pg_port, user="postgres", password="wrong"
            )
        # Files holding or naming secrets are the owner's only; the tools' endpoints hold no password.
        for name in ("credentials.json", "run/nats.conf", "run/endpoints.json"):
            assert (home / name).stat().st_mode & 0o777 == 0o600, name
        secrets = [*system.creds.nats.values(), *system.creds.postgres.values()]
        assert not any(s in (home / "run/endpoints.json").read_text() for s in secrets)
        assert not any(s in (home / "run/nats.conf").read_text() for s in secrets)  # bcrypt hashes only
        nats_url, db_url = read_endpoints(endpoints_file(home))
        assert nats_url == system.nats_url("tools")
        assert db_url == system.pg_url("postgres")
        # Nothing it printed or logged holds a password.
        logs = system.out.getvalue() + "".join(p.read_text() for p in (home / "logs").iterdir())
        assert not any(s in logs for s in secrets)


async def test_each_service_login_may_do_only_what_its_service_does(home: Path) -> None:
    async with running(home) as system:
        settings = EventStoreSettings()
        # The API appends, reads, and owns its key-value bucket.
        nc, errors = await _connect(system.nats_url("api"))
        store = JetStreamEventStore(nc, settings)
        await store.provision()  # finds the stream the supervisor made: nothing to change
        meta = AppendMeta(source="tests", actor="user:test", correlation_id="c", causation_id="c")
        await store.append(
            project_id="p1",
            aggregate_type="protocol_run",
            aggregate_id="r1",
            events=[ev.ProtocolRunPaused()],
            expected=Position(),
            meta=meta,
        )
        assert len((await store.load("protocol_run", "r1")).events) == 1
        kv = await nc.jetstream().create_key_value(bucket=f"{STREAM}_IDEMPOTENCY")
        await kv.put("k", b"v")
        assert (await kv.get("k")).value == b"v"
        assert errors == []
        await nc.close()

        # The projector consumes and acknowledges on its own durable, but cannot append, nor change or
        # delete the stream, nor pull from another service's consumer.
        nc, errors = await _connect(system.nats_url("projector"))
        js = nc.jetstream()
        sub = await js.pull_subscribe("df.evt.>", durable="projector", stream=STREAM)
        (msg,) = await sub.fetch(1, timeout=10)
        await msg.ack_sync(timeout=10)
        with pytest.raises(TimeoutError):
            await nc.request("df.evt.p2.project.p2.created", b"{}", timeout=1)
        with pytest.raises(Exception):  # noqa: B017,PT011 (a timeout or a permission error)
            await js.delete_stream(STREAM)
        with pytest.raises(Exception):  # noqa: B017,PT011 (a timeout or a permission error)
            await js.pull_subscribe("df.evt.>", durable="codex_worker", stream=STREAM)
        await eventually(lambda: len(errors) >= 3, within=10, what="permission violations reported")
        assert all("permissions violation" in e.lower() for e in errors), errors
        await nc.close()

        # The codex worker appends protocol_run events only; the tools only read.
        for user, subject in (
            ("codex-worker", "df.evt.p3.project.p3.created"),
            ("tools", "df.evt.p3.protocol_run.r3.created"),
        ):
            nc, errors = await _connect(system.nats_url(user))
            with pytest.raises(TimeoutError):
                await nc.request(subject, b"{}", timeout=1)
            await eventually(lambda e=errors: bool(e), within=10, what=f"{user}'s publish refused")
            await nc.close()
        nc, _ = await _connect(system.nats_url("supervisor"))
        info = await nc.jetstream().stream_info(STREAM)
        assert info.state.last_seq == 1, "only the API's event is in the log"
        await nc.close()

        # The API's PostgreSQL role reads what the owner makes, and writes nothing.
        owner = await asyncpg.connect(system.pg_url("postgres"))
        await owner.execute(
            "CREATE SCHEMA readmodel; CREATE TABLE readmodel.t (v int); INSERT INTO readmodel.t VALUES (1)"
        )
        await owner.close()
        reader = await asyncpg.connect(system.pg_url("deksdenflow_reader"))
        assert await reader.fetchval("SELECT v FROM readmodel.t") == 1
        for statement in (
            "INSERT INTO readmodel.t VALUES (2)",
            "DROP TABLE readmodel.t",
            "CREATE TABLE readmodel.u (v int)",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.execute(statement)
        await reader.close()


async def test_a_data_directory_of_an_earlier_version_is_secured_without_losing_data(home: Path) -> None:
    # What an earlier version left: servers without any authentication, holding data.
    nats_port, pg_port = free_port(), free_port()
    async with EmbeddedNats(home, port=nats_port) as server:
        nc = await nats.connect(server.url)
        await nc.jetstream().add_stream(name="OLD_MARKER", subjects=["old.marker"])
        await nc.close()
    async with EmbeddedPostgres(home, port=pg_port) as pg:
        conn = await asyncpg.connect(pg.url)
        await conn.execute("CREATE TABLE old_marker (v int); INSERT INTO old_marker VALUES (1)")
        await conn.close()
    assert not credentials_file(home).exists()

    out = io.StringIO()
    runtime = RuntimeSettings(home=home, embedded_nats_port=nats_port, embedded_pg_port=pg_port)
    supervisor = Supervisor(
        runtime, ApiSettings(), EventStoreSettings(), DatabaseSettings(), services=[], out=out
    )
    task = asyncio.create_task(supervisor.run())
    try:
        await eventually(
            lambda: "Press Ctrl-C to stop." in out.getvalue() or task.done(), within=90, what="start"
        )
        assert not task.done(), out.getvalue()
        creds = Credentials.load(credentials_file(home))
        conn = await asyncpg.connect(
            f"postgresql://postgres:{creds.postgres['postgres']}@127.0.0.1:{pg_port}/deksdenflow"
        )
        assert await conn.fetchval("SELECT v FROM old_marker") == 1
        await conn.close()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{pg_port}/postgres", password="")
        assert "Authorization Violation" in await _refused(f"nats://127.0.0.1:{nats_port}")
        nc = await nats.connect(f"nats://supervisor:{creds.nats['supervisor']}@127.0.0.1:{nats_port}")
        assert (await nc.jetstream().stream_info("OLD_MARKER")).config.name == "OLD_MARKER"
        await nc.close()
        assert json.loads(credentials_file(home).read_text())["postgres"]["postgres"]
    finally:
        supervisor.request_stop()
        assert await asyncio.wait_for(task, 60) == 0


def test_a_url_with_credentials_is_shown_without_its_password() -> None:
    assert (
        redact_url("nats://api:s3cret@h:1,nats://api:s3cret@h:2") == "nats://api:***@h:1,nats://api:***@h:2"
    )
    assert redact_url("nats://t0ken@h:1") == "nats://***@h:1"
    assert redact_url("postgresql://postgres:s3cret@h/db") == "postgresql://postgres:***@h/db"
