"""The supervisor in process, with real servers and real child processes: failure and stop paths.

Services here are small real Python modules run with ``python -m``, as the supervisor runs every
service; the servers are the session's (so no embedded server is started by the supervisor itself).
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import textwrap
from pathlib import Path

import psutil
import pytest
from deksdenflow_core.settings import ApiSettings, DatabaseSettings, EventStoreSettings, RuntimeSettings
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


@pytest.fixture
def services_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of service modules, importable by the children (they inherit our environment)."""
    (tmp_path / "stubborn_service.py").write_text(textwrap.dedent(STUBBORN))
    (tmp_path / "crashing_service.py").write_text(textwrap.dedent(CRASHER))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.syspath_prepend(tmp_path)  # the supervisor checks that a service is installed
    return tmp_path


def _supervisor(
    nats_url: str, db_url: str, home: Path, services: list[ServiceSpec], out: io.StringIO
) -> Supervisor:
    return Supervisor(
        RuntimeSettings(home=home, stop_timeout_seconds=1.0),
        ApiSettings(),
        EventStoreSettings(nats_url=nats_url),
        DatabaseSettings(db_url=db_url),
        services=services,
        out=out,
    )


async def test_a_service_that_dies_stops_everything_with_a_clear_error(
    nats_url: str, pg_admin_url: str, tmp_path: Path, services_path: Path
) -> None:
    out = io.StringIO()
    services = [ServiceSpec("stubborn", "stubborn_service"), ServiceSpec("crasher", "crashing_service")]
    supervisor = _supervisor(nats_url, pg_admin_url, tmp_path / "home", services, out)
    with pytest.raises(ServiceExited) as caught:
        await asyncio.wait_for(supervisor.run(), 30)
    assert "'crasher' exited unexpectedly with code 7" in caught.value.message
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
                re.search(r"-m (stubborn|crashing)_service", cmdline)
            )
        except psutil.Error:
            return False

    assert [p.pid for p in psutil.process_iter() if ours(p)] == []


async def test_an_embedded_server_that_dies_stops_everything(home: Path) -> None:
    out = io.StringIO()
    supervisor = Supervisor(
        RuntimeSettings(
            home=home, embedded_nats_port=free_port(), embedded_pg_port=free_port(), stop_timeout_seconds=2.0
        ),
        ApiSettings(),
        EventStoreSettings(),
        DatabaseSettings(),
        services=[],
        out=out,
    )
    running = asyncio.create_task(supervisor.run())
    await eventually(
        lambda: "Press Ctrl-C to stop." in out.getvalue(), within=60, what="the servers to start"
    )
    postmaster = next(
        p
        for p in psutil.Process().children()
        if p.name() == "postgres" and str(home) in " ".join(p.cmdline())
    )
    postmaster.kill()
    with pytest.raises(ServiceExited, match="embedded PostgreSQL exited unexpectedly with code -9"):
        await asyncio.wait_for(running, 30)
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
