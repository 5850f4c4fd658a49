"""``deksdenflow run`` as a real process: healthy, stopped by SIGINT, nothing left, data reused.

Always on embedded servers (that is what ``deksdenflow run`` is for), whatever the test servers are.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # no py.typed in asyncpg
import httpx
import nats
import pytest
from deksdenflow_runtime.credentials import Credentials, credentials_file

from tests.runtime.cli_support import deksdenflow_command
from tests.runtime.run_support import Ports, Run, assert_nothing_left
from tests.support import eventually


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


async def _a_start_is_queued_and_admitted(api: httpx.AsyncClient, project_id: str) -> None:
    created = await api.post(f"/projects/{project_id}/protocols", json={"task_name": "queued"})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    started = await api.post(f"/protocols/{run_id}/actions/start")
    assert started.json()["events"] == ["protocol_run.queued"], started.text

    async def admitted() -> bool:
        events = await api.get(f"/protocols/{run_id}/events")
        if events.status_code != 200:  # not in the read model yet
            return False
        return "protocol_run.admitted" in [e["type"] for e in events.json()["data"]]

    await eventually(admitted, within=60, what="the queued run admitted")


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
    await assert_nothing_left(first, home)

    # The second run has run limits: a start queues, and the git worker's admission (its own consumer,
    # under the NATS permissions of the supervised system) admits the run.
    second = Run({**env, "DEKSDENFLOW_MAX_ACTIVE_RUNS": "1"}, cwd, cwd / "second.log")
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
            await _a_start_is_queued_and_admitted(api, listed.json()["data"][0]["id"])
        # The CLI finds the running system by itself: the API URL it recorded and its admin token.
        client_env = {
            k: v for k, v in env.items() if k not in ("DEKSDENFLOW_API_URL", "DEKSDENFLOW_API_TOKEN")
        }
        found = await asyncio.to_thread(
            subprocess.run,
            [*deksdenflow_command(), "project", "list", "--field", "name"],
            env={**client_env, "XDG_CONFIG_HOME": str(tmp_path / "no-config")},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (found.returncode, found.stdout) == (0, "e2e\n"), found.stderr
        nc = await nats.connect(_nats_url(home, ports))
        assert (await nc.jetstream().stream_info("E2E_MARKER")).config.name == "E2E_MARKER"
        await nc.close()
    finally:
        assert await second.interrupt() == 0, second.output()
    assert "initialising PostgreSQL data directory" not in second.output()
    await assert_nothing_left(second, home)
