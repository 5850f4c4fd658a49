"""``deksdenflow run`` as a real process heals itself: a SIGKILLed service or embedded server comes back,
and the system serves writes and reads again. Its agent processes never see a credential.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from pathlib import Path

import httpx
import psutil
import pytest
from deksdenflow_fakes.github import FakeGitHub
from deksdenflow_runtime import demo
from deksdenflow_runtime.credentials import Credentials, credentials_file
from deksdenflow_runtime.embedded import free_port

from tests.runtime.run_support import Ports, Run, assert_nothing_left
from tests.support import eventually

BACK_WITHIN = 90.0


def _victim(run: Run, kind: str) -> psutil.Process:
    """The live process of ``kind`` (a service package or a server binary) under ``run``."""
    for proc in psutil.Process(run.proc.pid).children(recursive=True):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = proc.cmdline()
            if kind in ("postgres", "nats-server"):
                # The postmaster is the server's own child of the supervisor; its backends are its children.
                if proc.name() == kind and proc.ppid() == run.proc.pid:
                    return proc
            elif cmdline[1:3] == ["-m", kind]:
                return proc
        except psutil.Error:
            continue
    raise AssertionError(f"no {kind} process under the run")


async def _write_then_read(api: str, token: str) -> None:
    """Create a project (retried with one Idempotency-Key until the system answers) and read it back."""
    name = f"p-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {token}"}
    created: dict[str, str] = {}

    async def write() -> bool:
        async with httpx.AsyncClient(base_url=api, headers=headers, timeout=10) as client:
            try:
                answer = await client.post(
                    "/projects",
                    json={"name": name, "git_url": "https://example.com/r.git"},
                    headers={"Idempotency-Key": name},
                )
            except httpx.HTTPError:
                return False
        if answer.status_code != 201:
            return False
        created.update(seq=answer.headers["X-Event-Sequence"], id=answer.json()["id"])
        return True

    await eventually(write, within=BACK_WITHIN, what="a write to be accepted")

    async def read() -> bool:
        async with httpx.AsyncClient(base_url=api, headers=headers, timeout=10) as client:
            try:
                answer = await client.get(
                    f"/projects/{created['id']}", headers={"X-Min-Event-Sequence": created["seq"]}
                )
            except httpx.HTTPError:
                return False
        return answer.status_code == 200 and answer.json()["name"] == name

    await eventually(read, within=BACK_WITHIN, what="the write to be readable")


@pytest.mark.slow
async def test_a_killed_service_or_server_comes_back_and_the_system_serves_again(
    env: dict[str, str], home: Path, ports: Ports, tmp_path: Path
) -> None:
    env = {**env, "DEKSDENFLOW_RESTART_INITIAL_DELAY_SECONDS": "0.2"}
    run = Run(env, tmp_path, tmp_path / "run.log")
    try:
        await run.wait_healthy(ports.api)
        api = f"http://127.0.0.1:{ports.api}"
        token = (home / "api-token").read_text().strip()
        await _write_then_read(api, token)
        victims = {
            "deksdenflow_projector": "projector died (killed by SIGKILL)",
            "deksdenflow_codex_worker": "codex-worker died (killed by SIGKILL)",
            "nats-server": "the embedded NATS died (killed by SIGKILL)",
            "postgres": "the embedded PostgreSQL died (killed by SIGKILL)",
        }
        for kind, logged in victims.items():
            victim = _victim(run, kind)
            victim.send_signal(signal.SIGKILL)
            await eventually(
                lambda logged=logged: logged in run.output(), within=30, what=f"{kind}'s death logged"
            )
            await eventually(
                lambda kind=kind, pid=victim.pid: _victim_pid(run, kind) not in (None, pid),
                within=BACK_WITHIN,
                what=f"{kind} to run again",
            )
            assert run.proc.poll() is None, run.output()
            await _write_then_read(api, token)
    finally:
        assert await run.interrupt() == 0, run.output()
    await assert_nothing_left(run, home)


def _victim_pid(run: Run, kind: str) -> int | None:
    try:
        pid: int = _victim(run, kind).pid
    except AssertionError:
        return None
    return pid


DUMP_ENV = """#!{python}
import json, os, sys
with open({path!r}, "w") as out:
    json.dump(dict(os.environ), out)
sys.exit(1)
"""


@pytest.mark.slow
async def test_an_agent_process_gets_no_credential_of_the_system(home: Path, tmp_path: Path) -> None:
    dump = tmp_path / "agent-env.json"
    agent = tmp_path / "codex"
    agent.write_text(DUMP_ENV.format(python=sys.executable, path=str(dump)))
    agent.chmod(0o755)
    origin = demo.make_sample_repo(tmp_path)
    with FakeGitHub(token=f"ghp-{uuid.uuid4().hex}", repos=[demo.FORGE_REPO]) as forge:
        api_port = free_port()
        env = demo.system_env(home, api_port, forge, "codex")
        env = {**env, "DEKSDENFLOW_CODEX_BIN": str(agent), "OPENAI_API_KEY": "sk-the-agents-own-key"}
        env.pop("DEKSDENFLOW_API_TOKEN")  # the run makes and keeps one, as `make run` does
        run = Run(env, tmp_path, tmp_path / "run.log")
        try:
            await run.wait_healthy(api_port)
            api = demo.Api(f"http://127.0.0.1:{api_port}", (home / "api-token").read_text().strip())
            project = api.call(
                "POST",
                "/projects",
                {
                    "name": "sample",
                    "git_url": str(origin),
                    "ci_provider": "github",
                    "forge_repo": demo.FORGE_REPO,
                },
            )
            api.wait(f"/projects/{project['id']}", lambda p: p["status"] == "ready", "onboarding", 120)
            protocol = api.call(
                "POST", f"/projects/{project['id']}/protocols", {"task_name": "Add a greeting"}
            )
            api.call("POST", f"/protocols/{protocol['id']}/actions/start")
            await eventually(dump.exists, within=120, what="the agent to run")
            secrets = [
                *Credentials.load(credentials_file(home)).nats.values(),
                *Credentials.load(credentials_file(home)).postgres.values(),
                (home / "api-token").read_text().strip(),
                (home / "webhook-token").read_text().strip(),
                forge.token,
            ]
        finally:
            assert await run.interrupt() == 0, run.output()
    seen = json.loads(dump.read_text())
    assert seen.get("OPENAI_API_KEY") == "sk-the-agents-own-key", "the agent's own credential is passed"
    assert [k for k in seen if k.startswith("DEKSDENFLOW_")] == []
    leaks = [k for k, v in seen.items() if any(s in v for s in secrets) or ("://" in v and "@" in v)]
    assert leaks == [], leaks
    assert not any(v.startswith(("nats://", "postgresql://")) for v in seen.values())
    assert os.environ.get("PATH") is None or "PATH" in seen
