"""The whole system with its workers: API + projector (from the API tests' fixture), the codex worker and
the git/CI worker in this process, a bare git "origin" on disk and a fake GitHub speaking its REST API."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from deksdenflow_codex_worker.engines.registry import build_registry
from deksdenflow_codex_worker.settings import WorkerSettings
from deksdenflow_codex_worker.worker import CodexWorker
from deksdenflow_fakes.github import FakeGitHub
from deksdenflow_git import Git, GitIdentity, MirrorCache
from deksdenflow_git_ci_worker.settings import GitCiSettings
from deksdenflow_git_ci_worker.worker import GitCiWorker
from pydantic import SecretStr

from tests.api.conftest import System, api_overrides, system  # noqa: F401 - the fixtures are used below
from tests.engines.conftest import (  # noqa: F401 - the real agent CLIs and their fake models, as fixtures
    agent_homes,
    anthropic_api,
    claude,
    claude_bin,
    claude_config_root,
    claude_home,
    claude_test_env,
    codex,
    codex_bin,
    codex_home_root,
    responses_api,
)
from tests.git.origin import ISOLATED_GIT_ENV, Origin

FORGE_REPO = "acme/demo"
GITHUB_TOKEN = "ghp_test_token"
# Where PR bodies link the QA reports (the API as people would reach it; nothing listens there).
PUBLIC_API_URL = "https://deksdenflow.example/api"


@dataclass
class Orchestra:
    """Everything a protocol needs, and handles to look at what happened."""

    system: System
    origin: Remote
    github: FakeGitHub
    home: Path
    script: Path
    nats_url: str
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    codex: list[CodexWorker] = field(default_factory=list)
    git_worker: GitCiWorker | None = None

    def write_script(self, script: dict[str, Any]) -> None:
        self.script.write_text(json.dumps(script))

    def worker_settings(self, **overrides: Any) -> WorkerSettings:
        values: dict[str, Any] = {
            "worker_id": f"codex-test-{len(self.codex)}",
            "home": self.home / f"codex-{len(self.codex)}",
            "codex_worker_concurrency": 2,
            "codex_worker_port": 0,
            "codex_worker_watch_seconds": 0.1,
            "codex_worker_ack_wait_seconds": 10,
            "codex_worker_heartbeat_seconds": 2,
            "default_engine": "scripted",
            "scripted_script": self.script,
            "auto_qa_after_exec": True,
            "token_budget_mode": "off",
            **overrides,
        }
        return WorkerSettings(**values)

    def start_codex_worker(self, settings: WorkerSettings, **registry: Any) -> CodexWorker:
        home = settings.home.resolve()
        git = Git(identity=GitIdentity(settings.git_user, settings.git_email), env=ISOLATED_GIT_ENV)
        worker = CodexWorker(
            self.system.store,
            settings,
            build_registry(settings, codex_home_root=home / "codex-home", **registry),
            MirrorCache(home / "git", git),
        )
        self.codex.append(worker)
        self.workers.append(asyncio.create_task(worker.run()))
        return worker


class Remote(Origin):
    """The origin, with what a test reads from it."""

    async def files(self, branch: str) -> list[str]:
        out = await self._git.run("ls-tree", "-r", "--name-only", f"refs/heads/{branch}", cwd=self.path)
        return out.splitlines()

    async def show(self, branch: str, path: str) -> str:
        return await self._git.run("show", f"refs/heads/{branch}:{path}", cwd=self.path)

    async def delete(self, branch: str) -> None:
        """Delete ``branch`` as someone with push rights might."""
        await self._git.run("update-ref", "-d", f"refs/heads/{branch}", cwd=self.path)

    async def force(self, branch: str, sha: str) -> None:
        """Point ``branch`` at ``sha`` whatever it was, as a force-push does."""
        await self._git.run("update-ref", f"refs/heads/{branch}", sha, cwd=self.path)

    async def remove(self, branch: str, path: str, message: str) -> None:
        """Commit the removal of ``path`` on top of ``branch`` and push it, as a person might."""
        run = self._scratch
        await self._git.run("fetch", "--quiet", "--prune", "origin", cwd=run)
        await self._git.run("checkout", "--quiet", "--force", "-B", branch, f"origin/{branch}", cwd=run)
        await self._git.run("rm", "-r", "--quiet", "--", path, cwd=run)
        await self._git.run("commit", "--quiet", "-m", message, cwd=run)
        await self._git.run("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=run)

    async def history(self, branch: str) -> list[str]:
        """The shas of ``branch``'s commits, newest first."""
        return (await self._git.run("rev-list", f"refs/heads/{branch}", cwd=self.path)).split()

    async def count(self, branch: str, grep: str) -> int:
        out = await self._git.run(
            "log", "--format=%H", f"--grep={grep}", f"refs/heads/{branch}", cwd=self.path
        )
        return len(out.split())


@pytest.fixture
async def origin(tmp_path: Path) -> Remote:
    git = Git(identity=GitIdentity("Someone Else", "someone@example.com"), env=ISOLATED_GIT_ENV)
    remote = await Remote.create(tmp_path / "origin.git", git)
    assert isinstance(remote, Remote)
    return remote


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=GITHUB_TOKEN, repos=[FORGE_REPO]) as fake:
        yield fake


@pytest.fixture
async def orchestra(
    system: System,  # noqa: F811 - the fixture imported above
    origin: Remote,
    github: FakeGitHub,
    tmp_path: Path,
    nats_url: str,
) -> AsyncIterator[Orchestra]:
    home = tmp_path / "home"
    github.link_git(FORGE_REPO, origin.path)  # what the workers push to the origin, GitHub knows
    orchestra = Orchestra(
        system=system,
        origin=origin,
        github=github,
        home=home,
        script=tmp_path / "script.json",
        nats_url=nats_url,
    )
    git_settings = GitCiSettings(
        worker_id="git-test",
        home=home / "git-ci",
        git_ci_worker_port=0,
        github_token=SecretStr(GITHUB_TOKEN),
        github_api_url=github.api_url,
        git_ci_worker_ack_wait_seconds=10,
        public_api_url=PUBLIC_API_URL,
    )
    git = Git(identity=GitIdentity(git_settings.git_user, git_settings.git_email), env=ISOLATED_GIT_ENV)
    git_worker = GitCiWorker(
        system.store, system.store_nc, git_settings, MirrorCache(home / "git-ci" / "git", git), git
    )
    orchestra.git_worker = git_worker
    orchestra.workers.append(asyncio.create_task(git_worker.run()))
    try:
        yield orchestra
        crashed = [t for t in orchestra.workers if t.done() and not t.cancelled() and t.exception()]
        assert not crashed, f"a worker crashed: {crashed[0].exception()!r}"
    finally:
        git_worker.stop()
        for worker in orchestra.codex:
            worker.stop()
        for task in orchestra.workers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 15)
