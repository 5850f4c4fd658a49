"""A second worker process sharing a cache root with the test process.

Usage: ``python other_worker.py ROOT URL MODE [ARGS...]``. Protocol lines on stdout (``locked``,
``ready``, ``done``) tell the test where it is; log lines may appear in between.

* ``jobs PREFIX COUNT``: run COUNT jobs (worktree, commit, push), on branches PREFIX-0 …, in parallel.
* ``hold-lock``: take the project's mirror lock, print ``locked``, release it when stdin closes.
* ``hold-worktree BRANCH JOB``: open a worktree, print ``ready``, stay inside until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from deksdenflow_git import Git, GitIdentity, MirrorCache
from deksdenflow_git.locks import FileLock

PROJECT = "p1"


async def run_job(cache: MirrorCache, url: str, branch: str) -> None:
    async with cache.worktree(PROJECT, url, branch=branch, base_branch="main", job_id=branch) as wt:
        (wt.path / f"{branch}.txt").write_text(f"{branch}\n")
        await wt.commit_all(f"work of {branch}", trailers={"Deksdenflow-Job": branch})
        await wt.push()


async def main(root: Path, url: str, mode: str, args: list[str]) -> None:
    cache = MirrorCache(root, Git(identity=GitIdentity("Other Worker", "other@example.com")))
    if mode == "jobs":
        prefix, count = args[0], int(args[1])
        await asyncio.gather(*(run_job(cache, url, f"{prefix}-{i}") for i in range(count)))
        print("done", flush=True)
    elif mode == "hold-lock":
        lock = FileLock(cache.lock_path(PROJECT))
        await lock.acquire()
        print("locked", flush=True)
        await asyncio.to_thread(sys.stdin.read)
        lock.release()
    elif mode == "hold-worktree":
        branch, job_id = args
        async with cache.worktree(PROJECT, url, branch=branch, base_branch="main", job_id=job_id) as wt:
            (wt.path / "half-done.txt").write_text("interrupted\n")
            print("ready", flush=True)
            await asyncio.Event().wait()
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]))
