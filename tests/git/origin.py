"""A bare "origin" repository on local disk and a way to commit to it the way another person would."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from deksdenflow_git import Git

# Tests must not depend on (or write to) the machine's git configuration.
ISOLATED_GIT_ENV = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


class Origin:
    """A bare repository standing in for GitHub; ``commit`` pushes from a separate clone."""

    def __init__(self, path: Path, git: Git) -> None:
        self.path = path
        self.url = str(path)
        self._git = git
        self._scratch = path.with_name(f"{path.name}.scratch")

    @classmethod
    async def create(cls, path: Path, git: Git) -> Origin:
        """A bare repository whose ``main`` has one commit (a README)."""
        await git.run("init", "--bare", "--quiet", "--initial-branch=main", str(path))
        origin = cls(path, git)
        await git.run("clone", "--quiet", str(path), str(origin._scratch))
        await origin.commit("main", {"README.md": "hello\n"}, "initial commit")
        return origin

    async def commit(
        self, branch: str, files: Mapping[str, str], message: str, *, parent: str = "main"
    ) -> str:
        """Commit ``files`` on ``branch`` (created from ``parent`` if new), push it, return the sha."""
        run = self._scratch
        await self._git.run("fetch", "--quiet", "--prune", "origin", cwd=run)
        if await self.tip(branch):
            await self._git.run("checkout", "--quiet", "--force", "-B", branch, f"origin/{branch}", cwd=run)
        elif await self.tip(parent):
            await self._git.run("checkout", "--quiet", "--force", "-B", branch, f"origin/{parent}", cwd=run)
        else:  # the very first commit of the repository
            await self._git.run("checkout", "--quiet", "--orphan", branch, cwd=run)
        for name, content in files.items():
            (run / name).parent.mkdir(parents=True, exist_ok=True)
            (run / name).write_text(content)
        await self._git.run("add", "--all", cwd=run)
        await self._git.run("commit", "--quiet", "-m", message, cwd=run)
        await self._git.run("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=run)
        return (await self._git.run("rev-parse", "HEAD", cwd=run)).strip()

    async def tip(self, branch: str) -> str | None:
        """The sha ``branch`` points at in the origin, or None."""
        result = await self._git.execute(
            "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=self.path
        )
        return result.stdout.strip() if result.ok else None

    async def subjects(self, branch: str) -> list[str]:
        """Commit subjects of ``branch``, newest first."""
        out = await self._git.run("log", "--format=%s", f"refs/heads/{branch}", cwd=self.path)
        return out.splitlines()
