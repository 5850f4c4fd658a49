"""A worker's cache of each project's repository, and the per-job worktrees made from it.

Layout under ``root``::

    mirrors/<project_id>.git      bare repository; remote branches live in refs/remotes/origin/*
    locks/<project_id>.lock       flock held around every change to that repository (fetch, worktrees)
    worktrees/<project_id>/<job>  one job's checkout; <job>.lock is held by the live job

The cache is only a cache: the remote is the source of truth, so everything here can be deleted
between jobs. Several asyncio tasks and several processes may share one ``root``: tasks of a process
queue on an ``asyncio.Lock``, processes on the lock file, which the kernel releases if a worker dies.

Remote branches are kept as ``refs/remotes/origin/*`` rather than mirrored onto ``refs/heads/*``,
so a fetch never has to move a branch a worktree has checked out. Fetches and pushes name the URL
they are given on every call (a rotated token takes effect at once); ``remote.origin.url`` is also
set so that ``git`` run by hand or by an agent inside a worktree reaches the real remote.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from deksdenflow_core.logging import get_logger

from deksdenflow_git.errors import BranchBaseMissing, GitError, WorktreeBusy
from deksdenflow_git.git import Git, redact
from deksdenflow_git.locks import FileLock
from deksdenflow_git.names import check_branch_name, check_path_component
from deksdenflow_git.restore import ensure_head
from deksdenflow_git.worktree import Worktree

_log = get_logger(__name__)

_TRACKING = "refs/remotes/origin"
_SHA = re.compile(r"[0-9a-f]{7,64}")
_ALL_BRANCHES = f"+refs/heads/*:{_TRACKING}/*"
# How ``git worktree add`` says another worktree has the branch (wording differs between versions).
_CHECKED_OUT = re.compile(r"already checked out at|already used by worktree at")
_STALE_REGISTRATION = re.compile(r"missing but already registered worktree|already exists")


class MirrorCache:
    """Per-project bare mirrors and per-job worktrees under ``root``, safe to share between processes."""

    def __init__(self, root: Path, git: Git) -> None:
        self.root = root.resolve()
        self._git = git
        self._task_locks: dict[str, asyncio.Lock] = {}
        # remote.origin.url this process last wrote per project, to skip rewriting the config file.
        self._configured_urls: dict[str, str] = {}
        for sub in ("mirrors", "locks", "worktrees"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def mirror_path(self, project_id: str) -> Path:
        """Where the project's bare mirror lives (it may not exist yet)."""
        return self.root / "mirrors" / f"{check_path_component('project id', project_id)}.git"

    def lock_path(self, project_id: str) -> Path:
        """The file every process flocks before changing the project's mirror or its worktrees."""
        return self.root / "locks" / f"{check_path_component('project id', project_id)}.lock"

    async def sync(self, project_id: str, git_url: str) -> Path:
        """Bring the mirror up to date with the remote (creating it the first time); return its path."""
        async with self._locked(project_id):
            return await self._fetch_all(project_id, git_url)

    async def remote_heads(self, project_id: str, git_url: str) -> dict[str, str]:
        """Branch name -> sha, asked of the remote itself (the mirror may be behind)."""
        check_path_component("project id", project_id)
        out = await self._git.run("ls-remote", "--heads", "--", git_url, cwd=self.root)
        heads: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref.startswith("refs/heads/"):
                heads[ref.removeprefix("refs/heads/")] = sha
        return heads

    async def delete_remote_branch(self, project_id: str, git_url: str, branch: str) -> bool:
        """Delete ``branch`` on the remote; False if it was not there, so a repeated cleanup is harmless."""
        check_path_component("project id", project_id)
        check_branch_name(branch)
        ref = f"refs/heads/{branch}"
        listed = await self._git.run("ls-remote", "--heads", "--", git_url, ref, cwd=self.root)
        if not any(line.partition("\t")[2] == ref for line in listed.splitlines()):
            return False
        async with self._locked(project_id):
            mirror = await self._ensure_mirror(project_id, git_url)
        # Pushing needs a repository to run in, not its objects: a deletion sends none.
        result = await self._git.execute(
            "push", "--porcelain", "--no-verify", "--", git_url, f":{ref}", cwd=mirror
        )
        if not result.ok:
            if "remote ref does not exist" in result.stderr:
                return False
            raise result.error()
        async with self._locked(project_id):
            await self._git.run("update-ref", "-d", f"{_TRACKING}/{branch}", cwd=mirror)
        return True

    async def diff(
        self,
        project_id: str,
        git_url: str,
        *,
        commit: str | None = None,
        base_branch: str | None = None,
        head: str | None = None,
        max_bytes: int = 1_000_000,
    ) -> tuple[str, str, bool]:
        """``(patch, subject, truncated)``: one commit's change against its first parent, or ``head``
        against its merge base with ``origin/<base_branch>``. The mirror is fetched first when it lacks
        what is asked (a push by the other worker it has not seen yet)."""
        wanted = commit or head
        if wanted is None or not _SHA.fullmatch(wanted) or (commit is None and base_branch is None):
            raise GitError("a diff needs a commit sha, or a head sha and a base branch")
        if base_branch is not None:
            check_branch_name(base_branch)
        async with self._locked(project_id):
            mirror = await self._ensure_mirror(project_id, git_url)
            known = await self._git.execute("cat-file", "-e", f"{wanted}^{{commit}}", cwd=mirror)
            if not known.ok or base_branch is not None:
                await self._fetch_all(project_id, git_url)
        if commit is not None:
            out = await self._git.run(
                "show", "--no-color", "--no-ext-diff", "--format=%s", "--patch", commit, "--", cwd=mirror
            )
            subject, _, patch = out.partition("\n")
            patch = patch.lstrip("\n")
        else:
            subject = ""
            patch = await self._git.run(
                "diff", "--no-color", "--no-ext-diff", f"{_TRACKING}/{base_branch}...{head}", "--", cwd=mirror
            )
        data = patch.encode()
        if len(data) > max_bytes:
            return data[:max_bytes].decode(errors="ignore"), subject, True
        return patch, subject, False

    @asynccontextmanager
    async def worktree(
        self,
        project_id: str,
        git_url: str,
        *,
        branch: str,
        base_branch: str,
        job_id: str,
        expect_head: str | None = None,
        shared: bool = False,
    ) -> AsyncIterator[Worktree]:
        """A fresh checkout of ``branch`` for one job, removed on exit (also on error or cancellation).

        The branch starts at ``origin/<branch>`` if the remote has it, else at ``origin/<base_branch>``
        (``BranchBaseMissing`` if neither exists). Worktrees of dead jobs of the project (crashed
        workers, this job id's earlier run) are cleared first; a live job holding this job id or this
        branch raises ``WorktreeBusy``.

        ``expect_head`` is the branch head the caller knows was pushed (the log recorded it): a remote
        branch that no longer contains it is restored first (``Worktree.restored`` says so) or, when
        that is not safe or not possible, ``BranchLost`` is raised (see ``restore.ensure_head``). Without
        it a missing branch starts from the base, as the first job of a protocol wants.

        ``shared``: other live jobs may work on ``branch`` at the same time (steps of a parallel group).
        The checkout is then on a branch of the job's own (``deksdenflow/jobs/<job id>``), so no job is
        ``WorktreeBusy`` for another; its pushes still go to ``branch`` (see ``Worktree.push`` and
        ``Worktree.rebase_onto_remote``).
        """
        check_branch_name(branch)
        check_branch_name(base_branch)
        local = f"deksdenflow/jobs/{check_path_component('job id', job_id)}" if shared else branch
        jobs_dir = self.root / "worktrees" / check_path_component("project id", project_id)
        path = jobs_dir / check_path_component("job id", job_id)
        job_lock = FileLock(jobs_dir / f"{job_id}.lock")
        async with self._locked(project_id):
            mirror = await self._fetch_all(project_id, git_url)
            restored = None
            if expect_head:
                restored = await ensure_head(
                    self._git,
                    mirror,
                    git_url,
                    branch=branch,
                    tracking=f"{_TRACKING}/{branch}",
                    expected=expect_head,
                )
            start = await self._start_point(mirror, branch, base_branch)
            jobs_dir.mkdir(exist_ok=True)
            if not job_lock.try_acquire():
                raise WorktreeBusy(f"job {job_id} already has a live worktree", job_id=job_id, branch=branch)
            try:
                await self._add_worktree(mirror, path, local, start)
            except BaseException:
                job_lock.release(unlink=True)
                raise
        _log.debug("worktree added", project_id=project_id, job_id=job_id, branch=branch, base_sha=start)
        try:
            yield Worktree(
                path=path,
                branch=branch,
                base_sha=start,
                git=self._git,
                git_url=git_url,
                fetch_branch=lambda name: self._fetch_branch(project_id, git_url, name),
                restored=restored,
            )
        finally:
            await self._discard_worktree(project_id, mirror, path, local, job_lock)

    @asynccontextmanager
    async def _locked(self, project_id: str) -> AsyncIterator[None]:
        task_lock = self._task_locks.setdefault(project_id, asyncio.Lock())
        async with task_lock:
            file_lock = FileLock(self.lock_path(project_id))
            await file_lock.acquire()
            try:
                yield
            finally:
                file_lock.release()

    async def _ensure_mirror(self, project_id: str, git_url: str) -> Path:
        """The mirror's path, creating an empty one if needed. Caller holds the lock."""
        mirror = self.mirror_path(project_id)
        if not mirror.is_dir():
            # Built aside and renamed into place: a crash half way never leaves a broken mirror.
            partial = mirror.with_name(f"{mirror.name}.partial")
            await asyncio.to_thread(shutil.rmtree, partial, ignore_errors=True)
            await self._git.run("init", "--bare", "--quiet", str(partial))
            await self._git.run("config", "--", "remote.origin.fetch", _ALL_BRANCHES, cwd=partial)
            partial.rename(mirror)
            self._configured_urls.pop(project_id, None)
            _log.info("mirror created", project_id=project_id, url=redact(git_url))
        if self._configured_urls.get(project_id) != git_url:
            await self._git.run("config", "--", "remote.origin.url", git_url, cwd=mirror)
            self._configured_urls[project_id] = git_url
        return mirror

    async def _fetch_all(self, project_id: str, git_url: str) -> Path:
        """Fetch every branch, pruning deleted ones. Caller holds the lock."""
        mirror = await self._ensure_mirror(project_id, git_url)
        await self._git.run(
            "fetch", "--prune", "--no-write-fetch-head", "--quiet", "--", git_url, _ALL_BRANCHES, cwd=mirror
        )
        return mirror

    async def _fetch_branch(self, project_id: str, git_url: str, branch: str) -> str | None:
        """Fetch one branch into ``origin/<branch>`` and return its tip, or None if the remote lacks it."""
        tracking = f"{_TRACKING}/{branch}"
        async with self._locked(project_id):
            mirror = await self._ensure_mirror(project_id, git_url)
            refspec = f"+refs/heads/{branch}:{tracking}"
            result = await self._git.execute(
                "fetch", "--no-write-fetch-head", "--quiet", "--", git_url, refspec, cwd=mirror
            )
            if not result.ok:
                if "couldn't find remote ref" not in result.stderr:
                    raise result.error()
                await self._git.run("update-ref", "-d", tracking, cwd=mirror)
                return None
            return (
                await self._git.run("rev-parse", "--verify", f"{tracking}^{{commit}}", cwd=mirror)
            ).strip()

    async def _start_point(self, mirror: Path, branch: str, base_branch: str) -> str:
        """The sha a job's worktree starts at: the remote branch if it exists, else the remote base."""
        wanted = (f"{_TRACKING}/{branch}", f"{_TRACKING}/{base_branch}")
        out = await self._git.run("for-each-ref", "--format=%(refname) %(objectname)", *wanted, cwd=mirror)
        tips = {ref: sha for ref, _, sha in (line.partition(" ") for line in out.splitlines())}
        for ref in wanted:
            if ref in tips:
                return tips[ref]
        raise BranchBaseMissing(
            f"branch {branch} is not on the remote and its base {base_branch} is not there either",
            branch=branch,
            base_branch=base_branch,
        )

    async def _add_worktree(self, mirror: Path, path: Path, branch: str, start: str) -> None:
        """Check ``branch`` out at ``start`` in ``path`` after clearing what dead jobs left behind.

        Caller holds the mirror lock and ``path``'s job lock, so nothing alive uses ``path``. In the
        common case (nothing dead around) this costs one git call.
        """
        if await asyncio.to_thread(_clear_dead_jobs, path):
            await self._git.run("worktree", "prune", cwd=mirror)
        add = ("worktree", "add", "--quiet", "--no-track", "-B", branch, str(path), start)
        result = await self._git.execute(*add, cwd=mirror)
        if result.ok:
            return
        if _CHECKED_OUT.search(result.stderr):
            raise WorktreeBusy(
                f"branch {branch} is checked out by a live job: {result.error().message}", branch=branch
            )
        if not _STALE_REGISTRATION.search(result.stderr):
            raise result.error()
        # Registered but deleted by hand (or a removal that failed half way): forget it and retry.
        await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
        await self._git.run("worktree", "prune", cwd=mirror)
        await self._git.run(*add, cwd=mirror)

    async def _discard_worktree(
        self, project_id: str, mirror: Path, path: Path, branch: str, job_lock: FileLock
    ) -> None:
        """Remove a job's worktree and its local branch, then free the job id.

        A failure here is logged, not raised: the job's outcome matters more than the cache, and the
        next job meeting the leftovers clears them (its lock shows this job is gone).
        """
        try:
            async with self._locked(project_id):
                removed = await self._git.execute("worktree", "remove", "--force", str(path), cwd=mirror)
                if not removed.ok:
                    await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
                    await self._git.run("worktree", "prune", cwd=mirror)
                await self._git.run("update-ref", "-d", f"refs/heads/{branch}", cwd=mirror)
                job_lock.release(unlink=True)
        except (GitError, OSError) as exc:
            _log.warning("could not remove a worktree", path=str(path), error=str(exc))
        finally:
            job_lock.release()


def _clear_dead_jobs(path: Path) -> bool:
    """Delete the worktree directories of dead jobs beside ``path`` and ``path`` itself if it exists.

    A job is dead when its lock can be taken: the kernel released it when the job's process ended.
    Runs under the mirror lock (see ``FileLock.release``). True if a directory was deleted, so that
    git's registrations of it have to be pruned.
    """
    deleted = False
    for name in {entry.name.removesuffix(".lock") for entry in path.parent.iterdir()} - {path.name}:
        lock = FileLock(path.parent / f"{name}.lock")
        if not lock.try_acquire():
            continue
        try:
            if (path.parent / name).exists():
                shutil.rmtree(path.parent / name, ignore_errors=True)
                deleted = True
                _log.warning("removed the worktree of a dead job", path=str(path.parent / name))
        finally:
            lock.release(unlink=True)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
        deleted = True
    return deleted
