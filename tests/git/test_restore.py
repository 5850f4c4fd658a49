"""A protocol branch that lost its recorded head on the remote is put back, or the job is refused.

The head a job expects is the last one the log recorded as pushed. Whatever happened on the remote
(branch deleted, reset to its base, rewritten by someone else), a job never silently starts over from
the base branch.
"""

from __future__ import annotations

import pytest
from deksdenflow_git import BranchLost, Git, MirrorCache

from tests.git.origin import Origin

BRANCH = "0001-plan"


async def planned(cache: MirrorCache, origin: Origin) -> str:
    """The branch as the planning job leaves it: one commit on the base, pushed from this cache."""
    async with cache.worktree("p1", origin.url, branch=BRANCH, base_branch="main", job_id="plan") as wt:
        (wt.path / ".protocols").mkdir()
        (wt.path / ".protocols" / "plan.md").write_text("# Plan\n")
        sha = await wt.commit_all("plan")
        assert sha is not None
        await wt.push()
    return sha


async def delete(git: Git, origin: Origin, branch: str = BRANCH) -> None:
    await git.run("update-ref", "-d", f"refs/heads/{branch}", cwd=origin.path)


async def test_a_deleted_branch_is_pushed_back_from_the_recorded_head(
    git: Git, cache: MirrorCache, origin: Origin
) -> None:
    head = await planned(cache, origin)
    await delete(git, origin)
    async with cache.worktree(
        "p1", origin.url, branch=BRANCH, base_branch="main", job_id="exec", expect_head=head
    ) as wt:
        assert wt.restored is not None
        assert (wt.restored.commit_sha, wt.restored.found_sha) == (head, None)
        assert wt.base_sha == head
        assert (wt.path / ".protocols" / "plan.md").is_file()
    assert await origin.tip(BRANCH) == head


async def test_a_branch_reset_to_its_base_is_fast_forwarded_back(
    git: Git, cache: MirrorCache, origin: Origin
) -> None:
    head = await planned(cache, origin)
    main = await origin.tip("main")
    assert main is not None
    await git.run("update-ref", f"refs/heads/{BRANCH}", main, cwd=origin.path)  # a force-push of the base
    async with cache.worktree(
        "p1", origin.url, branch=BRANCH, base_branch="main", job_id="exec", expect_head=head
    ) as wt:
        assert wt.restored is not None
        assert wt.restored.found_sha == main
        assert await wt.head() == head
    assert await origin.tip(BRANCH) == head


async def test_a_branch_that_moved_on_from_the_recorded_head_is_left_alone(
    cache: MirrorCache, origin: Origin
) -> None:
    head = await planned(cache, origin)
    later = await origin.commit(BRANCH, {"human.txt": "x\n"}, "a person pushed on top")
    async with cache.worktree(
        "p1", origin.url, branch=BRANCH, base_branch="main", job_id="exec", expect_head=head
    ) as wt:
        assert wt.restored is None
        assert wt.base_sha == later


async def test_a_rewritten_branch_with_foreign_commits_is_never_overwritten(
    git: Git, cache: MirrorCache, origin: Origin
) -> None:
    head = await planned(cache, origin)
    await delete(git, origin)
    foreign = await origin.commit(BRANCH, {"theirs.txt": "x\n"}, "someone else's history")
    with pytest.raises(BranchLost) as lost:
        async with cache.worktree(
            "p1", origin.url, branch=BRANCH, base_branch="main", job_id="exec", expect_head=head
        ):
            pytest.fail("no worktree for a lost branch")
    assert not lost.value.retryable
    assert "commits the log never recorded" in lost.value.message
    assert await origin.tip(BRANCH) == foreign, "the foreign commits stay"


async def test_a_head_that_exists_nowhere_is_refused(git: Git, origin: Origin) -> None:
    planner = MirrorCache(origin.path.parent / "planner", git)
    head = await planned(planner, origin)
    await delete(git, origin)
    fresh = MirrorCache(origin.path.parent / "fresh", git)  # another replica: it never saw the commit
    with pytest.raises(BranchLost) as lost:
        async with fresh.worktree(
            "p1", origin.url, branch=BRANCH, base_branch="main", job_id="exec", expect_head=head
        ):
            pytest.fail("no worktree for a lost branch")
    assert "no longer exists" in lost.value.message
    assert await origin.tip(BRANCH) is None, "nothing is rebuilt from the base"
