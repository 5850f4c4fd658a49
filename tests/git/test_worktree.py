"""Worktrees: where they start, that they always go away, and what a job can read and commit in them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from deksdenflow_git import BranchBaseMissing, Git, MirrorCache, Worktree, WorktreeBusy, working_tree_diffs

from tests.git.origin import Origin


async def registered_worktrees(git: Git, cache: MirrorCache, project_id: str) -> list[str]:
    """Paths of the mirror's worktrees other than the bare repository itself."""
    out = await git.run("worktree", "list", "--porcelain", cwd=cache.mirror_path(project_id))
    lines = [line.removeprefix("worktree ") for line in out.splitlines() if line.startswith("worktree ")]
    return lines[1:]


async def local_branches(git: Git, cache: MirrorCache, project_id: str) -> list[str]:
    out = await git.run(
        "for-each-ref", "--format=%(refname)", "refs/heads", cwd=cache.mirror_path(project_id)
    )
    return out.splitlines()


def files_left_beside(path: Path) -> list[Path]:
    """Whatever is in the worktree's parent directory: the worktree itself, job lock files."""
    return list(path.parent.iterdir())


async def assert_cleaned_up(git: Git, cache: MirrorCache, path: Path) -> None:
    assert files_left_beside(path) == []
    assert await registered_worktrees(git, cache, "p1") == []
    assert await local_branches(git, cache, "p1") == []


async def test_new_branch_starts_from_the_remote_base(git: Git, cache: MirrorCache, origin: Origin) -> None:
    main = await origin.commit("main", {"later.txt": "x\n"}, "later on main")
    async with cache.worktree("p1", origin.url, branch="0001-new", base_branch="main", job_id="j1") as wt:
        assert wt.branch == "0001-new"
        assert wt.base_sha == main == await wt.head()
        assert (await git.run("branch", "--show-current", cwd=wt.path)).strip() == "0001-new"
        assert (await git.run("remote", "get-url", "origin", cwd=wt.path)).strip() == origin.url
        assert (wt.path / "later.txt").read_text() == "x\n"
        assert await wt.status_porcelain() == ""
    assert await origin.tip("0001-new") is None, "opening a worktree publishes nothing"
    await assert_cleaned_up(git, cache, wt.path)


async def test_existing_remote_branch_is_checked_out_with_its_commits(
    cache: MirrorCache, origin: Origin
) -> None:
    tip = await origin.commit("0002-old", {"work.txt": "done\n"}, "earlier step")
    await origin.commit("main", {"main.txt": "m\n"}, "main moved on")
    async with cache.worktree("p1", origin.url, branch="0002-old", base_branch="main", job_id="j1") as wt:
        assert wt.base_sha == tip == await wt.head()
        assert await wt.last_commit_subject() == "earlier step"
        assert (wt.path / "work.txt").exists()
        assert not (wt.path / "main.txt").exists()


async def test_missing_base_branch_is_a_clear_error(git: Git, cache: MirrorCache, origin: Origin) -> None:
    with pytest.raises(BranchBaseMissing) as caught:
        async with cache.worktree("p1", origin.url, branch="0003-x", base_branch="develop", job_id="j1"):
            pytest.fail("no worktree without a base")
    assert caught.value.fields == {"branch": "0003-x", "base_branch": "develop"}
    assert not caught.value.retryable
    assert await registered_worktrees(git, cache, "p1") == []


async def test_worktree_is_removed_after_an_exception(git: Git, cache: MirrorCache, origin: Origin) -> None:
    seen: list[Worktree] = []

    async def failing_job() -> None:
        async with cache.worktree("p1", origin.url, branch="0004-x", base_branch="main", job_id="j1") as wt:
            seen.append(wt)
            (wt.path / "junk.txt").write_text("uncommitted\n")
            raise RuntimeError("agent blew up")

    with pytest.raises(RuntimeError, match="agent blew up"):
        await failing_job()
    await assert_cleaned_up(git, cache, seen[0].path)


async def test_worktree_is_removed_when_the_job_is_cancelled(
    git: Git, cache: MirrorCache, origin: Origin
) -> None:
    entered: asyncio.Future[Worktree] = asyncio.get_running_loop().create_future()

    async def job() -> None:
        async with cache.worktree("p1", origin.url, branch="0005-x", base_branch="main", job_id="j1") as wt:
            entered.set_result(wt)
            await asyncio.Event().wait()

    task = asyncio.create_task(job())
    either: list[asyncio.Future[Any]] = [entered, task]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # the job failed before entering: show why
    wt = entered.result()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_cleaned_up(git, cache, wt.path)


async def test_leftover_directory_of_the_same_job_is_replaced(cache: MirrorCache, origin: Origin) -> None:
    leftover = cache.root / "worktrees" / "p1" / "j1"
    leftover.mkdir(parents=True)
    (leftover / "stale.txt").write_text("from a crashed run\n")
    async with cache.worktree("p1", origin.url, branch="0006-x", base_branch="main", job_id="j1") as wt:
        assert wt.path == leftover
        assert not (wt.path / "stale.txt").exists()
        assert (wt.path / "README.md").exists()


async def test_a_live_job_keeps_its_job_id_and_its_branch(cache: MirrorCache, origin: Origin) -> None:
    async with cache.worktree("p1", origin.url, branch="0007-x", base_branch="main", job_id="j1"):
        with pytest.raises(WorktreeBusy, match="job j1"):
            async with cache.worktree("p1", origin.url, branch="0007-y", base_branch="main", job_id="j1"):
                pytest.fail("same job id twice")
        with pytest.raises(WorktreeBusy, match="checked out by a live job") as caught:
            async with cache.worktree("p1", origin.url, branch="0007-x", base_branch="main", job_id="j2"):
                pytest.fail("same branch twice")
        assert caught.value.retryable
    async with cache.worktree("p1", origin.url, branch="0007-x", base_branch="main", job_id="j2"):
        pass


async def test_commit_all_records_trailers_and_skips_empty_commits(
    git: Git, cache: MirrorCache, origin: Origin
) -> None:
    async with cache.worktree("p1", origin.url, branch="0008-x", base_branch="main", job_id="j1") as wt:
        assert await wt.commit_all("nothing yet", trailers={"Job-Id": "j1"}) is None
        (wt.path / "new.txt").write_text("new\n")
        sha = await wt.commit_all("Step 1: add new.txt\n\nBody.", trailers={"Job-Id": "j1", "Step": "s1"})
        assert sha == await wt.head() != wt.base_sha
        assert await wt.last_commit_subject() == "Step 1: add new.txt"
        trailers = await git.run("log", "-1", "--format=%(trailers:only,unfold)", cwd=wt.path)
        assert trailers.split("\n")[:2] == ["Job-Id: j1", "Step: s1"]
        assert await wt.status_porcelain() == ""
        assert await wt.commit_all("again") is None
        with pytest.raises(ValueError, match="trailer key"):
            await wt.commit_all("bad", trailers={"Job Id": "x"})
        with pytest.raises(ValueError, match="trailer value"):
            await wt.commit_all("bad", trailers={"Job-Id": "two\nlines"})


async def test_changes_are_reported_against_the_base_including_uncommitted_work(
    git: Git, cache: MirrorCache, origin: Origin
) -> None:
    await origin.commit("main", {"keep.txt": "keep\n", "gone.txt": "bye\n"}, "more files")
    async with cache.worktree("p1", origin.url, branch="0009-x", base_branch="main", job_id="j1") as wt:
        (wt.path / "committed.txt").write_text("committed\n")
        first = await wt.commit_all("first")
        (wt.path / "keep.txt").write_text("changed\n")
        (wt.path / "gone.txt").unlink()
        (wt.path / "dir").mkdir()
        (wt.path / "dir" / "untracked.txt").write_text("brand new line\n")
        status_before = await wt.status_porcelain()
        assert "?? dir/untracked.txt" in status_before.splitlines()

        assert await wt.changed_files() == ["committed.txt", "dir/untracked.txt", "gone.txt", "keep.txt"]
        assert await wt.changed_files(since=first) == ["dir/untracked.txt", "gone.txt", "keep.txt"]

        diff = await wt.diff()
        assert "+brand new line" in diff
        assert "-bye" in diff
        assert "+changed" in diff
        assert "+committed" in diff
        assert "+committed" not in await wt.diff(since=first)
        assert await wt.status_porcelain() == status_before, "diff must not stage anything"
        assert await wt.last_commit_subject() == "first"


async def test_diff_is_truncated_with_a_marker(cache: MirrorCache, origin: Origin) -> None:
    async with cache.worktree("p1", origin.url, branch="0010-x", base_branch="main", job_id="j1") as wt:
        (wt.path / "big.txt").write_text("".join(f"line {i} é\n" for i in range(5000)))
        full = await wt.diff()
        cut = await wt.diff(max_bytes=1000)
        assert len(full.encode()) > 50_000
        body, _, marker = cut.rpartition("\n[diff truncated: ")
        assert len(body.encode()) <= 1000
        assert full.startswith(body)
        assert body.endswith("\n")
        assert marker.endswith(f"of {len(full.encode())} bytes omitted]\n")


async def test_an_edit_in_the_same_second_as_the_index_was_written_is_seen(
    git: Git, cache: MirrorCache, origin: Origin
) -> None:
    """Racy git: a same-size edit whose stat data still matches the index (same second, ctime not
    trusted) is told apart only by the index file's own mtime. The throwaway index of the diffs must keep
    it, or the edit is invisible to them (and so to the guardrails) while ``git status`` sees it."""
    await origin.commit("main", {"uv.lock": "version = 1\n"}, "a lock file")
    async with cache.worktree("p1", origin.url, branch="0011-x", base_branch="main", job_id="j1") as wt:
        await git.run("config", "core.trustctime", "false", cwd=wt.path)
        lock = wt.path / "uv.lock"
        then = lock.stat().st_mtime_ns - 100 * 10**9  # the file as checked out a while ago
        os.utime(lock, ns=(then, then))
        await git.run("update-index", "--refresh", cwd=wt.path)
        index = await git.run("rev-parse", "--path-format=absolute", "--git-path", "index", cwd=wt.path)
        os.utime(index.strip(), ns=(then, then))  # and the index written in that same second
        lock.write_text("version = 2\n")  # an edit of the same size, in that second too
        os.utime(lock, ns=(then, then))
        assert await wt.changed_files() == ["uv.lock"]
        (numstat,) = await working_tree_diffs(git, wt.path, wt.base_sha, ("--numstat",))
        assert numstat.split() == ["1", "1", "uv.lock"]
