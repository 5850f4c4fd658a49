"""Pushing safely and finding a redelivered job's earlier commit."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from deksdenflow_git import Git, MirrorCache, PushRejected, PushResult

from tests.git.origin import Origin


@pytest.fixture
def other_machine(tmp_path: Path, git: Git) -> MirrorCache:
    """A second worker's cache: shares nothing with ``cache`` but the remote."""
    return MirrorCache(tmp_path / "other-cache", git)


async def test_push_publishes_then_is_a_no_op(cache: MirrorCache, origin: Origin) -> None:
    async with cache.worktree("p1", origin.url, branch="0001-x", base_branch="main", job_id="j1") as wt:
        (wt.path / "a.txt").write_text("a\n")
        sha = await wt.commit_all("step 1")
        assert sha is not None
        assert await wt.push() == PushResult(status="pushed", sha=sha, branch="0001-x")
        assert await origin.tip("0001-x") == sha
        assert await wt.push() == PushResult(status="up_to_date", sha=sha, branch="0001-x")

        (wt.path / "b.txt").write_text("b\n")
        second = await wt.commit_all("step 2")
        assert (await wt.push()).status == "pushed"
        assert await origin.tip("0001-x") == second


async def test_push_of_commits_the_remote_already_contains_is_up_to_date(
    cache: MirrorCache, other_machine: MirrorCache, origin: Origin
) -> None:
    async with cache.worktree("p1", origin.url, branch="0002-x", base_branch="main", job_id="j1") as first:
        (first.path / "a.txt").write_text("a\n")
        ours = await first.commit_all("step 1")
        await first.push()
        async with other_machine.worktree(
            "p1", origin.url, branch="0002-x", base_branch="main", job_id="j2"
        ) as second:
            (second.path / "b.txt").write_text("b\n")
            later = await second.commit_all("step 2")
            await second.push()
        assert await first.push() == PushResult(status="up_to_date", sha=ours or "", branch="0002-x")
        assert await origin.tip("0002-x") == later


async def test_foreign_commits_on_the_remote_reject_the_push_and_stay(
    cache: MirrorCache, origin: Origin
) -> None:
    async with cache.worktree("p1", origin.url, branch="0003-x", base_branch="main", job_id="j1") as wt:
        (wt.path / "a.txt").write_text("a\n")
        await wt.commit_all("step 1")
        await wt.push()
        foreign = await origin.commit("0003-x", {"human.txt": "hand edit\n"}, "a human pushed")
        (wt.path / "b.txt").write_text("b\n")
        ours = await wt.commit_all("step 2")

        with pytest.raises(PushRejected) as caught:
            await wt.push()
        err = caught.value
        assert not err.retryable
        assert (err.local_sha, err.remote_sha) == (ours, foreign)
        assert foreign in err.message
        assert ours is not None
        assert ours in err.message
        assert await origin.tip("0003-x") == foreign


async def test_a_remote_refusal_is_a_non_retryable_rejection(cache: MirrorCache, origin: Origin) -> None:
    hook = origin.path / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    async with cache.worktree("p1", origin.url, branch="0004-x", base_branch="main", job_id="j1") as wt:
        (wt.path / "a.txt").write_text("a\n")
        await wt.commit_all("step 1")
        with pytest.raises(PushRejected) as caught:
            await wt.push()
    assert caught.value.remote_sha is None
    assert "pre-receive hook declined" in caught.value.reason
    assert not caught.value.retryable
    assert await origin.tip("0004-x") is None


async def test_redelivered_job_finds_the_commit_its_crashed_delivery_pushed(
    cache: MirrorCache, other_machine: MirrorCache, origin: Origin
) -> None:
    commits: list[str | None] = []

    async def first_delivery() -> None:
        async with cache.worktree("p1", origin.url, branch="0005-x", base_branch="main", job_id="j1") as wt:
            (wt.path / "a.txt").write_text("a\n")
            commits.append(await wt.commit_all("step 1", trailers={"Deksdenflow-Job": "job-7", "Step": "s1"}))
            await wt.push()
            raise RuntimeError("worker died before recording the result")

    with pytest.raises(RuntimeError, match="worker died"):
        await first_delivery()
    pushed = commits[0]

    async with other_machine.worktree(
        "p1", origin.url, branch="0005-x", base_branch="main", job_id="j2"
    ) as wt:
        assert await wt.find_commit_with_trailer("Deksdenflow-Job", "job-7") == pushed
        assert await wt.find_commit_with_trailer("deksdenflow-job", "job-7") == pushed, "keys ignore case"
        assert await wt.find_commit_with_trailer("Deksdenflow-Job", "job-70") is None
        assert await wt.find_commit_with_trailer("Deksdenflow-Job", "job") is None
        assert await wt.find_commit_with_trailer("Step", "job-7") is None
        assert pushed is not None
        assert await wt.find_commit_with_trailer("Deksdenflow-Job", "job-7", since=pushed) is None
        assert (
            await wt.find_commit_with_trailer("Deksdenflow-Job", "job-7", since=wt.base_sha + "~1") == pushed
        )


async def test_trailer_search_sees_commits_pushed_after_the_worktree_opened(
    cache: MirrorCache, other_machine: MirrorCache, origin: Origin
) -> None:
    async with cache.worktree("p1", origin.url, branch="0006-x", base_branch="main", job_id="j1") as wt:
        assert await wt.find_commit_with_trailer("Deksdenflow-Job", "job-8") is None, (
            "branch not on remote yet"
        )
        async with other_machine.worktree(
            "p1", origin.url, branch="0006-x", base_branch="main", job_id="j2"
        ) as other:
            (other.path / "a.txt").write_text("a\n")
            pushed = await other.commit_all("step", trailers={"Deksdenflow-Job": "job-8"})
            await other.push()
        assert await wt.find_commit_with_trailer("Deksdenflow-Job", "job-8") == pushed
