"""The supervisor in process, with real servers and real child processes: restart, give-up and stop paths.

Services here are small real Python modules run with ``python -m``, as the supervisor runs every
service; the servers are the session's, except where a test is about the embedded servers themselves.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import textwrap
from pathlib import Path

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # no py.typed in asyncpg
import nats
import psutil
import pytest
from deksdenflow_core.settings import ApiSettings, DatabaseSettings, EventStoreSettings, RuntimeSettings
from deksdenflow_runtime.credentials import Credentials, credentials_file
from deksdenflow_runtime.embedded import free_port
from deksdenflow_runtime.supervisor import ServiceExited, ServiceSpec, Supervisor

from tests.support import eventually

STUBBORN = """
    import signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a service that does not stop when asked
    print("stubborn ready", flush=True)
    while True:
        time.sleep(1)
"""
CRASHER = """
    import sys
    print("crasher: something went badly wrong", flush=True)
    sys.exit(7)
"""
# Crashes on its first start only (a marker file remembers it), then runs until stopped.
FLAKY = """
    import os, sys, time
    marker = os.path.join(os.path.dirname(__file__), "flaky.started")
    if not os.path.exists(marker):
        open(marker, "w").close()
        print("flaky: first start, crashing", flush=True)
        sys.exit(3)
    print("flaky: up again", flush=True)
    while True:
        time.sleep(1)
"""


@pytest.fixture
def services_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of service modules, importable by the children (they inherit our environment)."""
    (tmp_path / "stubborn_service.py").write_text(textwrap.dedent(STUBBORN))
    (tmp_path / "crashing_service.py").write_text(textwrap.dedent(CRASHER))
    (tmp_path / "flaky_service.py").write_text(textwrap.dedent(FLAKY))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.syspath_prepend(tmp_path)  # the supervisor checks that a service is installed
    return tmp_path


def _supervisor(
    nats_url: str, db_url: str, home: Path, services: list[ServiceSpec], out: io.StringIO
) -> Supervisor:
    return Supervisor(
        # Quick restarts, and a crash loop after 3 crashes, so a test need not wait for real backoffs.
        RuntimeSettings(
            home=home, stop_timeout_seconds=1.0, restart_initial_delay_seconds=0.05, restart_max_crashes=3
        ),
        ApiSettings(),
        EventStoreSettings(nats_url=nats_url),
        DatabaseSettings(db_url=db_url),
        services=services,
        out=out,
    )


async def test_a_service_that_dies_is_started_again_and_its_death_logged(
    nats_url: str, pg_admin_url: str, tmp_path: Path, services_path: Path
) -> None:
    out = io.StringIO()
    services = [ServiceSpec("stubborn", "stubborn_service"), ServiceSpec("flaky", "flaky_service")]
    supervisor = _supervisor(nats_url, pg_admin_url, tmp_path / "home", services, out)
    running = asyncio.create_task(supervisor.run())
    await eventually(lambda: "flaky: up again" in out.getvalue(), within=30, what="the service to come back")
    text = out.getvalue()
    # What died and why, with its last lines; the other service was left alone.
    assert "flaky died (exit code 3); its last lines:\n" in text
    assert re.search(r"^deksdenflow +\|     flaky: first start, crashing$", text, re.MULTILINE)
    assert "restarting flaky in 0.05s" in text
    assert "stubborn died" not in text
    assert not running.done()
    supervisor.request_stop()
    assert await asyncio.wait_for(running, 20) == 0
    _assert_no_service_left()


async def test_a_service_that_crashes_on_every_start_is_given_up_with_a_clear_error(
    nats_url: str, pg_admin_url: str, tmp_path: Path, services_path: Path
) -> None:
    out = io.StringIO()
    services = [ServiceSpec("stubborn", "stubborn_service"), ServiceSpec("crasher", "crashing_service")]
    supervisor = _supervisor(nats_url, pg_admin_url, tmp_path / "home", services, out)
    with pytest.raises(ServiceExited) as caught:
        await asyncio.wait_for(supervisor.run(), 60)
    assert caught.value.message.startswith(
        "Service 'crasher' crashed 3 times within 60s (last: exit code 7); giving up"
    )
    assert out.getvalue().count("crasher died (exit code 7)") == 3
    assert re.search(r"^crasher +\| crasher: something went badly wrong$", out.getvalue(), re.MULTILINE)
    _assert_no_service_left()


async def test_a_stop_request_kills_a_service_that_ignores_sigterm(
    nats_url: str, pg_admin_url: str, tmp_path: Path, services_path: Path
) -> None:
    out = io.StringIO()
    services = [ServiceSpec("ghost", "no_such_service_package"), ServiceSpec("stubborn", "stubborn_service")]
    supervisor = _supervisor(nats_url, pg_admin_url, tmp_path / "home", services, out)
    running = asyncio.create_task(supervisor.run())
    await eventually(lambda: "stubborn ready" in out.getvalue(), within=20, what="the service to start")
    assert "ghost: package no_such_service_package is not installed, skipping it" in out.getvalue()
    assert "deksdenflow is running" in out.getvalue()
    supervisor.request_stop()
    # stop_timeout_seconds=1: SIGTERM is ignored, SIGKILL follows after a second.
    assert await asyncio.wait_for(running, 10) == 0
    _assert_no_service_left()


def _assert_no_service_left() -> None:
    def ours(proc: psutil.Process) -> bool:
        try:
            cmdline = " ".join(proc.cmdline())
            return proc.status() != psutil.STATUS_ZOMBIE and bool(
                re.search(r"-m (stubborn|crashing|flaky)_service", cmdline)
            )
        except psutil.Error:
            return False

    assert [p.pid for p in psutil.process_iter() if ours(p)] == []


@pytest.mark.parametrize("server", ["postgres", "nats-server"])
async def test_an_embedded_server_that_dies_comes_back_on_its_port_with_its_data(
    home: Path, server: str
) -> None:
    out = io.StringIO()
    runtime = RuntimeSettings(
        home=home,
        embedded_nats_port=free_port(),
        embedded_pg_port=free_port(),
        stop_timeout_seconds=2.0,
        restart_initial_delay_seconds=0.05,
    )
    supervisor = Supervisor(
        runtime, ApiSettings(), EventStoreSettings(), DatabaseSettings(), services=[], out=out
    )
    running = asyncio.create_task(supervisor.run())
    await eventually(
        lambda: "Press Ctrl-C to stop." in out.getvalue(), within=180, what="the servers to start"
    )
    creds = Credentials.load(credentials_file(home))
    pg_url = (
        f"postgresql://postgres:{creds.postgres['postgres']}@127.0.0.1:{runtime.embedded_pg_port}/deksdenflow"
    )
    nats_url = f"nats://supervisor:{creds.nats['supervisor']}@127.0.0.1:{runtime.embedded_nats_port}"
    conn = await asyncpg.connect(pg_url)
    await conn.execute("CREATE TABLE marker (v int); INSERT INTO marker VALUES (1)")
    await conn.close()
    victim = next(
        p for p in psutil.Process().children() if p.name() == server and str(home) in " ".join(p.cmdline())
    )
    victim.kill()
    label = "PostgreSQL" if server == "postgres" else "NATS"
    await eventually(
        lambda: f"the embedded {label} is back" in out.getvalue(), within=60, what=f"{label} to come back"
    )
    assert f"the embedded {label} died (killed by SIGKILL); last lines of " in out.getvalue()
    conn = await asyncpg.connect(pg_url)  # the same port, the same data, the same password
    assert await conn.fetchval("SELECT v FROM marker") == 1
    await conn.close()
    nc = await nats.connect(nats_url)
    assert (await nc.jetstream().stream_info("DF_EVENTS")).config.name == "DF_EVENTS"
    await nc.close()
    assert not running.done()
    supervisor.request_stop()
    assert await asyncio.wait_for(running, 30) == 0
    assert not [p for p in psutil.Process().children() if str(home) in " ".join(p.cmdline())]


@pytest.mark.parametrize("stop_after", [0.05, 0.3, 0.8])
async def test_a_stop_during_startup_leaves_nothing_running(home: Path, stop_after: float) -> None:
    def supervisor() -> Supervisor:
        return Supervisor(
            RuntimeSettings(
                home=home,
                embedded_nats_port=free_port(),
                embedded_pg_port=free_port(),
                stop_timeout_seconds=5,
            ),
            ApiSettings(),
            EventStoreSettings(),
            DatabaseSettings(),
            services=[],
            out=io.StringIO(),
        )

    running = asyncio.create_task(supervisor().run())
    await asyncio.sleep(stop_after)  # somewhere in initdb, server startup or readiness probes
    os.kill(os.getpid(), signal.SIGINT)  # what a Ctrl-C does; the supervisor's handler takes it
    assert await asyncio.wait_for(running, 30) == 0
    assert not [p for p in psutil.Process().children() if str(home) in " ".join(p.cmdline())]
    # The data directory was released and is usable.
    out = io.StringIO()
    again = supervisor()
    again.out = out
    running = asyncio.create_task(again.run())
    await eventually(lambda: "Press Ctrl-C" in out.getvalue(), within=60, what="a clean second start")
    again.request_stop()
    assert await asyncio.wait_for(running, 30) == 0
