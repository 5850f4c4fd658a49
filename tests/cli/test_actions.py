"""The rest of the commands as processes: project tokens, webhook secret, policies and answers; run and
step actions in their order, each refusal with its exit code."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.api.conftest import System
from tests.api.helpers import create_project, planned
from tests.cli.support import cli, finish, start


async def test_project_settings_tokens_and_secrets(system: System, tmp_path: Path) -> None:
    async with system.admin() as admin:
        await create_project(admin, "demo")
    token, secret, ci, runs, answer = await asyncio.gather(
        cli(system, tmp_path, "project", "token", "create", "demo", "--label", "ci", "-o", "json"),
        cli(system, tmp_path, "project", "webhook-secret", "demo", "--field", "webhook_secret", "-o", "json"),
        cli(system, tmp_path, "project", "ci-policy", "set", "demo", "--fix-attempts", "2", "-o", "json"),
        cli(system, tmp_path, "project", "run-policy", "set", "demo", "--mode", "autopilot", "-o", "yaml"),
        cli(system, tmp_path, "project", "answer", "demo", "no_such_question=yes"),
    )
    assert token.code == 0, token.stderr
    assert token.json()["label"] == "ci"
    assert token.json()["project_token"]
    assert secret.code == 0, secret.stderr
    assert len(secret.stdout.strip()) >= 32
    assert ci.code == 0, ci.stderr
    assert runs.code == 0, runs.stderr
    assert "mode: autopilot" in runs.stdout
    assert answer.code == 2
    assert "no_such_question" in answer.stderr
    # The project token (sent as X-Project-Token) works for its own project; revoked, it does not.
    project_token = token.json()["project_token"]
    mine = await cli(system, tmp_path, "project", "get", "demo", "--field", "name", token=project_token)
    assert mine.stdout.strip() == "demo"
    revoked = await cli(system, tmp_path, "project", "token", "revoke", "demo", token.json()["token_id"])
    assert revoked.code == 0, revoked.stderr
    refused = await cli(system, tmp_path, "project", "list", token=project_token)
    assert refused.code == 4


async def test_run_and_step_actions_and_their_refusals(system: System, tmp_path: Path) -> None:
    async with system.admin() as admin:
        project = await create_project(admin, "demo")
        run_id, _, _ = await planned(admin, system.repo, project["id"], steps=2)
        other_id, other_steps, _ = await planned(admin, system.repo, project["id"], steps=2)

    async def act(*args: str) -> tuple[int, str, str]:
        result = await cli(system, tmp_path, *args, "--field", "status", "-o", "json")
        return result.code, result.stdout.strip(), result.stderr

    async def run_actions() -> None:
        assert (await act("protocol", "pause", run_id))[:2] == (0, "paused")
        assert (await act("protocol", "resume", run_id))[:2] == (0, "planned")
        rejected = await cli(system, tmp_path, "protocol", "reject-plan", run_id, "--reason", "too big")
        assert rejected.code == 0, rejected.stderr
        assert "planning" in rejected.stdout
        assert (await act("protocol", "cancel", run_id))[:2] == (0, "cancelled")
        code, _, stderr = await act("protocol", "retry", run_id)
        assert code == 5
        assert "current status: cancelled" in stderr

    async def step_actions() -> None:
        ran = await cli(
            system, tmp_path, "step", "run", other_steps[0], "--field", "step_status", "-o", "json"
        )
        assert (ran.code, ran.stdout.strip()) == (0, "running"), ran.stderr
        code, _, stderr = await act("step", "approve", other_steps[1])
        assert code == 5
        assert "current status" in stderr
        assert (await act("protocol", "approve-plan", other_id))[0] == 5

    await asyncio.gather(run_actions(), step_actions())


async def test_an_interrupted_wait_exits_130(system: System, tmp_path: Path) -> None:
    async with system.admin() as admin:
        project = await create_project(admin, "demo")
        run_id, _, _ = await planned(admin, system.repo, project["id"], steps=1)
    waiting = await start(system, tmp_path, "protocol", "wait", run_id, "--until", "completed")
    assert waiting.stderr is not None
    line = await asyncio.wait_for(waiting.stderr.readline(), 120)  # started: Ctrl-C is the CLI's to handle
    assert b"waiting for run" in line
    waiting.send_signal(signal.SIGINT)
    result = await finish(waiting)
    assert result.code == 130, result.stderr
