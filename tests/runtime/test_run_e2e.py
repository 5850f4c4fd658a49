"""``deksdenflow run`` as a real process: healthy, stopped by SIGINT, nothing left, data reused.

Always on embedded servers (that is what ``deksdenflow run`` is for), whatever the test servers are.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # no py.typed in asyncpg
import httpx
import nats
import psutil
import pytest
from deksdenflow_runtime.credentials import Credentials, credentials_file
from deksdenflow_runtime.embedded import free_port

from tests.runtime.cli_support import cli_env, deksdenflow_command
from tests.support import eventually

HEALTHY_WITHIN = 60.0
STOPPED_WITHIN = 60.0  # services get stop_timeout_seconds (10 s) to stop before SIGKILL, then the servers


@dataclass(frozen=True)
class Ports:
    nats: int
    pg: int
    api: int


@pytest.fixture
def ports() -> Ports:
    return Ports(nats=free_port(), pg=free_port(), api=free_port())


@pytest.fixture
def env(home: Path, ports: Ports) -> dict[str, str]:
    return cli_env(
        DEKSDENFLOW_HOME=str(home),
        DEKSDENFLOW_EMBEDDED_NATS_PORT=str(ports.nats),
        DEKSDENFLOW_EMBEDDED_PG_PORT=str(ports.pg),
        DEKSDENFLOW_API_PORT=str(ports.api),
        # Services with a port of their own must not collide with a developer's running system either.
        DEKSDENFLOW_PROJECTOR_PORT=str(free_port()),
    )


class Run:
    """One ``deksdenflow run`` process, its output in a file."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            [*deksdenflow_command(), "run"], env=env, cwd=cwd, stdout=self._log_file, stderr=subprocess.STDOUT
        )
        self.descendants: list[psutil.Process] = []

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_healthy(self, api_port: int) -> float:
        """Wait for the announcement and a 200 from /health; returns the seconds to the announcement."""
        started = time.monotonic()

        async def healthy() -> bool:
            assert self.proc.poll() is None, f"deksdenflow run exited early:\n{self.output()}"
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    response = await client.get(f"http://127.0.0.1:{api_port}/health")
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        def announced() -> bool:
            assert self.proc.poll() is None, f"deksdenflow run exited early:\n{self.output()}"
            return "Press Ctrl-C to stop." in self.output()

        # The supervisor announces the system once its own /health probe succeeded.
        await eventually(announced, within=HEALTHY_WITHIN, what="the supervisor to announce the system")
        elapsed = time.monotonic() - started
        await eventually(healthy, within=5, what="/health to answer 200")
        self.descendants = psutil.Process(self.proc.pid).children(recursive=True)
        return elapsed

    async def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        await eventually(lambda: self.proc.poll() is not None, within=STOPPED_WITHIN, what="run to stop")
        self._log_file.close()
        return self.proc.returncode


def _processes_of(home: Path) -> list[str]:
    """Live processes that belong to the run on ``home``: by command line or by environment."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.cmdline())
            if str(home) in cmdline or proc.environ().get("DEKSDENFLOW_HOME") == str(home):
                found.append(f"{proc.pid}: {cmdline}")
        except psutil.Error:
            continue
    return found


async def _assert_nothing_left(run: Run, home: Path) -> None:
    assert run.descendants, "the run should have had child processes"
    await eventually(
        lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in run.descendants),
        within=10,
        what="every child of the run to exit",
    )
    await eventually(
        lambda: not _processes_of(home), within=10, what=f"no process left: {_processes_of(home)}"
    )


def _pg_url(home: Path, ports: Ports) -> str:
    password = Credentials.load(credentials_file(home)).postgres["postgres"]
    return f"postgresql://postgres:{password}@127.0.0.1:{ports.pg}/deksdenflow"


def _nats_url(home: Path, ports: Ports) -> str:
    password = Credentials.load(credentials_file(home)).nats["supervisor"]
    return f"nats://supervisor:{password}@127.0.0.1:{ports.nats}"


async def _use_the_api_and_rebuild(home: Path, ports: Ports, env: dict[str, str], cwd: Path) -> None:
    # The whole system works: the generated admin token opens the API, a write is projected.
    token = (home / "api-token").read_text().strip()
    assert (home / "api-token").stat().st_mode & 0o077 == 0, "the token file is private"
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{ports.api}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as api:
        created = await api.post("/projects", json={"name": "e2e", "git_url": "file:///e2e.git"})
        assert created.status_code == 201, created.text
        seq = {"X-Min-Event-Sequence": created.headers["X-Event-Sequence"]}
        listed = await api.get("/projects", headers=seq)
        assert [p["name"] for p in listed.json()["data"]] == ["e2e"]
        # Rebuild the read model from the log next to the running system; the API keeps serving it.
        rebuild = await asyncio.create_subprocess_exec(
            *deksdenflow_command(),
            "projector",
            "rebuild",
            env=env,
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(rebuild.communicate(), 60)
        assert rebuild.returncode == 0, out.decode()
        assert "swapped in" in out.decode()
        listed = await api.get("/projects")
        assert [p["name"] for p in listed.json()["data"]] == ["e2e"]


@pytest.mark.slow
async def test_run_is_healthy_stops_on_sigint_and_reuses_its_data(
    env: dict[str, str], home: Path, ports: Ports, tmp_path: Path
) -> None:
    cwd = tmp_path  # the run must not touch the current directory: everything goes to DEKSDENFLOW_HOME
    first = Run(env, cwd, cwd / "first.log")
    try:
        seconds = await first.wait_healthy(ports.api)
        print(f"first run (initdb included) healthy after {seconds:.2f}s")
        children = {p.name() for p in first.descendants}
        assert {"nats-server", "postgres"} <= children, children
        # Leave data behind in both servers, to be found by the second run.
        conn = await asyncpg.connect(_pg_url(home, ports))
        await conn.execute("CREATE TABLE e2e_marker (v int); INSERT INTO e2e_marker VALUES (1)")
        await conn.close()
        nc = await nats.connect(_nats_url(home, ports))
        await nc.jetstream().add_stream(name="E2E_MARKER", subjects=["e2e.marker"])
        await nc.close()
        await _use_the_api_and_rebuild(home, ports, env, cwd)
    finally:
        assert await first.interrupt() == 0, first.output()
    output = first.output()
    assert f"API         http://127.0.0.1:{ports.api}" in output
    assert "SIGINT received" in output
    await _assert_nothing_left(first, home)

    second = Run(env, cwd, cwd / "second.log")
    try:
        seconds = await second.wait_healthy(ports.api)
        print(f"second run healthy after {seconds:.2f}s")
        conn = await asyncpg.connect(_pg_url(home, ports))
        assert await conn.fetchval("SELECT v FROM e2e_marker") == 1
        await conn.close()
        token = (home / "api-token").read_text().strip()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports.api}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as api:
            # The same token, and the project of the first run (log and read model both kept).
            listed = await api.get("/projects")
            assert [p["name"] for p in listed.json()["data"]] == ["e2e"]
        nc = await nats.connect(_nats_url(home, ports))
        assert (await nc.jetstream().stream_info("E2E_MARKER")).config.name == "E2E_MARKER"
        await nc.close()
    finally:
        assert await second.interrupt() == 0, second.output()
    assert "initialising PostgreSQL data directory" not in second.output()
    await _assert_nothing_left(second, home)
