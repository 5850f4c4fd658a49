"""Steps of a parallel group work on one branch at once, from one worker's mirror: each in a worktree on
a branch of its own job (no ``WorktreeBusy``), each pushing to the protocol branch — the later one rebased
onto the earlier's commit, or refused with the files when both changed the same lines."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import pytest
from deksdenflow_git import GitCommandError, MirrorCache, PushRejected, Worktree, WorktreeBusy

from tests.git.origin import Origin

BRANCH = "0001-parallel"


def shared(cache: MirrorCache, origin: Origin, job_id: str) -> AbstractAsyncContextManager[Worktree]:
    """A worktree of ``BRANCH`` for one step of a parallel group."""
    return cache.worktree("p1", origin.url, branch=BRANCH, base_branch="main", job_id=job_id, shared=True)


async def test_two_shared_worktrees_of_one_branch_both_land_the_later_rebased(
    cache: MirrorCache, origin: Origin
) -> None:
    await origin.commit(BRANCH, {"plan.md": "plan\n"}, "plan")
    async with shared(cache, origin, "step-1") as first, shared(cache, origin, "step-2") as second:
        assert first.base_sha == second.base_sha
        (first.path / "a.txt").write_text("a\n")
        (second.path / "b.txt").write_text("b\n")
        mine = await first.commit_all("step 1")
        await second.commit_all("step 2")
        assert (await first.push()).sha == mine
        with pytest.raises(PushRejected):
            await second.push()  # the branch moved: step 1 pushed first
        rebased = await second.rebase_onto_remote()
        assert (await second.push()).sha == rebased
    assert await origin.subjects(BRANCH) == ["step 2", "step 1", "plan", "initial commit"]
    # the jobs' own branches went with their worktrees; a plain job may take the branch again
    async with cache.worktree("p1", origin.url, branch=BRANCH, base_branch="main", job_id="after") as wt:
        assert (wt.path / "a.txt").is_file()
        assert (wt.path / "b.txt").is_file()


async def test_changes_to_the_same_lines_are_refused_with_the_file_and_nothing_half_done(
    cache: MirrorCache, origin: Origin
) -> None:
    await origin.commit(BRANCH, {"shared.txt": "one\n"}, "plan")
    async with shared(cache, origin, "step-1") as first, shared(cache, origin, "step-2") as second:
        (first.path / "shared.txt").write_text("first\n")
        (second.path / "shared.txt").write_text("second\n")
        await first.commit_all("step 1")
        ours = await second.commit_all("step 2")
        await first.push()
        with pytest.raises(PushRejected) as refused:
            await second.rebase_onto_remote()
        assert "shared.txt" in refused.value.message
        assert await second.head() == ours, "the rebase was aborted: the step's commit is as it was"
        assert not await second.status_porcelain()


async def test_without_shared_a_second_live_job_on_the_branch_is_busy(
    cache: MirrorCache, origin: Origin
) -> None:
    await origin.commit(BRANCH, {"plan.md": "plan\n"}, "plan")
    async with cache.worktree("p1", origin.url, branch=BRANCH, base_branch="main", job_id="j1"):
        with pytest.raises(WorktreeBusy):
            async with cache.worktree("p1", origin.url, branch=BRANCH, base_branch="main", job_id="j2"):
                pass


async def test_rebasing_onto_a_branch_the_remote_lost_is_a_retryable_error(
    cache: MirrorCache, origin: Origin
) -> None:
    await origin.commit(BRANCH, {"plan.md": "plan\n"}, "plan")
    async with shared(cache, origin, "j1") as wt:
        await wt.git.run("update-ref", "-d", f"refs/heads/{BRANCH}", cwd=origin.path)
        with pytest.raises(GitCommandError) as lost:
            await wt.rebase_onto_remote()
        assert lost.value.retryable
