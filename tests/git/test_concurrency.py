"""Several jobs, in one process and in two, sharing one cache root and one remote."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from deksdenflow_git import Git, MirrorCache, WorktreeBusy

from tests.git.origin import ISOLATED_GIT_ENV, Origin
from tests.git.other_worker import run_job

WORKER = Path(__file__).with_name("other_worker.py")


@asynccontextmanager
async def other_worker(
    cache: MirrorCache, origin: Origin, *args: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``other_worker.py`` on the same cache root, killed on exit if still running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), str(cache.root), origin.url, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, **ISOLATED_GIT_ENV},
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def wait_for_line(proc: asyncio.subprocess.Process, wanted: str, within: float = 30) -> None:
    """Read the worker's stdout until the protocol line ``wanted`` (log lines are skipped)."""
    assert proc.stdout is not None

    async def read() -> None:
        assert proc.stdout is not None
        while (line := await proc.stdout.readline()) and line.decode().strip() != wanted:
            pass
        if not line:
            raise AssertionError(f"worker exited (code {await proc.wait()}) before printing {wanted!r}")

    await asyncio.wait_for(read(), within)


async def assert_mirror_healthy(git: Git, cache: MirrorCache) -> None:
    mirror = cache.mirror_path("p1")
    await git.run("fsck", "--no-progress", "--no-dangling", cwd=mirror)
    listing = await git.run("worktree", "list", "--porcelain", cwd=mirror)
    assert listing.count("worktree ") == 1, listing
    assert list((cache.root / "worktrees" / "p1").iterdir()) == []


async def test_parallel_jobs_share_a_fresh_mirror(git: Git, cache: MirrorCache, origin: Origin) -> None:
    branches = [f"00{i}-task" for i in range(6)]
    await asyncio.gather(*(run_job(cache, origin.url, b) for b in branches))
    for branch in branches:
        assert await origin.subjects(branch) == [f"work of {branch}", "initial commit"]
    await assert_mirror_healthy(git, cache)


async def test_two_processes_share_a_mirror(git: Git, cache: MirrorCache, origin: Origin) -> None:
    async with other_worker(cache, origin, "jobs", "child", "4") as proc:
        await asyncio.gather(*(run_job(cache, origin.url, f"parent-{i}") for i in range(4)))
        await wait_for_line(proc, "done")
        assert await proc.wait() == 0
    heads = await cache.remote_heads("p1", origin.url)
    assert sorted(heads) == sorted(["main", *(f"{who}-{i}" for who in ("child", "parent") for i in range(4))])
    await assert_mirror_healthy(git, cache)


async def test_sync_waits_for_the_lock_held_by_another_process(cache: MirrorCache, origin: Origin) -> None:
    async with other_worker(cache, origin, "hold-lock") as proc:
        await wait_for_line(proc, "locked")
        sync = asyncio.create_task(cache.sync("p1", origin.url))
        done, _ = await asyncio.wait([sync], timeout=0.5)
        assert not done, "sync must wait while another process holds the mirror lock"
        assert proc.stdin is not None
        proc.stdin.close()
        assert await asyncio.wait_for(sync, 10) == cache.mirror_path("p1")


@pytest.mark.parametrize(
    ("next_branch", "next_job"),
    [("0001-x", "j2"), ("0002-y", "j1")],
    ids=["same-branch-new-job", "same-job-new-branch"],
)
async def test_leftovers_of_a_killed_worker_are_cleared(
    git: Git, cache: MirrorCache, origin: Origin, next_branch: str, next_job: str
) -> None:
    async with other_worker(cache, origin, "hold-worktree", "0001-x", "j1") as proc:
        await wait_for_line(proc, "ready")
        with pytest.raises(WorktreeBusy):
            async with cache.worktree(
                "p1", origin.url, branch=next_branch, base_branch="main", job_id=next_job
            ):
                pytest.fail("the other worker is alive and holds it")
        proc.kill()
        await proc.wait()
    leftover = cache.root / "worktrees" / "p1" / "j1"
    assert (leftover / "half-done.txt").exists()

    async with cache.worktree(
        "p1", origin.url, branch=next_branch, base_branch="main", job_id=next_job
    ) as wt:
        assert (await git.run("branch", "--show-current", cwd=wt.path)).strip() == next_branch
        assert not (wt.path / "half-done.txt").exists()
    await assert_mirror_healthy(git, cache)


async def test_any_later_job_sweeps_the_worktrees_of_killed_workers(
    git: Git, cache: MirrorCache, origin: Origin
) -> None:
    async with other_worker(cache, origin, "hold-worktree", "0001-x", "j1") as proc:
        await wait_for_line(proc, "ready")
        proc.kill()
        await proc.wait()
    async with cache.worktree("p1", origin.url, branch="0003-z", base_branch="main", job_id="j3") as wt:
        assert sorted(p.name for p in wt.path.parent.iterdir()) == ["j3", "j3.lock"]
        listing = await git.run("worktree", "list", "--porcelain", cwd=cache.mirror_path("p1"))
        assert "/j1\n" not in listing
    await assert_mirror_healthy(git, cache)
