"""The mirror cache against a real local remote: sync, remote heads, branch deletion, name checks."""

from __future__ import annotations

import pytest
from deksdenflow_git import Git, MirrorCache
from deksdenflow_git.errors import GitError

from tests.git.origin import Origin


async def tracking_refs(git: Git, cache: MirrorCache, project_id: str) -> dict[str, str]:
    out = await git.run(
        "for-each-ref", "--format=%(refname:lstrip=3) %(objectname)", "refs/remotes/origin",
        cwd=cache.mirror_path(project_id),
    )  # fmt: skip
    return dict(line.split(" ") for line in out.splitlines())


async def test_first_sync_clones_and_the_next_fetches_new_commits(
    git: Git, cache: MirrorCache, origin: Origin
) -> None:
    mirror = await cache.sync("p1", origin.url)
    assert mirror == cache.mirror_path("p1")
    assert await tracking_refs(git, cache, "p1") == {"main": await origin.tip("main")}

    new_main = await origin.commit("main", {"a.txt": "a\n"}, "second")
    feature = await origin.commit("feature", {"b.txt": "b\n"}, "feature work")
    assert await cache.sync("p1", origin.url) == mirror
    assert await tracking_refs(git, cache, "p1") == {"main": new_main, "feature": feature}


async def test_sync_prunes_branches_deleted_on_the_remote(
    git: Git, cache: MirrorCache, origin: Origin
) -> None:
    await origin.commit("gone", {"g.txt": "g\n"}, "soon deleted")
    await cache.sync("p1", origin.url)
    await git.run("update-ref", "-d", "refs/heads/gone", cwd=origin.path)
    await cache.sync("p1", origin.url)
    assert set(await tracking_refs(git, cache, "p1")) == {"main"}


async def test_sync_points_the_mirror_origin_at_the_latest_url(
    git: Git, cache: MirrorCache, origin: Origin
) -> None:
    await cache.sync("p1", origin.url)
    file_url = origin.path.as_uri()
    mirror = await cache.sync("p1", file_url)
    assert (await git.run("remote", "get-url", "origin", cwd=mirror)).strip() == file_url


async def test_remote_heads_asks_the_remote(cache: MirrorCache, origin: Origin) -> None:
    feature = await origin.commit("0001-feature", {"f.txt": "f\n"}, "feature")
    assert await cache.remote_heads("p1", origin.url) == {
        "main": await origin.tip("main"),
        "0001-feature": feature,
    }


async def test_delete_remote_branch_is_idempotent(git: Git, cache: MirrorCache, origin: Origin) -> None:
    await origin.commit("0002-old", {"o.txt": "o\n"}, "old work")
    await cache.sync("p1", origin.url)

    assert await cache.delete_remote_branch("p1", origin.url, "0002-old") is True
    assert await origin.tip("0002-old") is None
    assert "0002-old" not in await tracking_refs(git, cache, "p1")
    assert await cache.delete_remote_branch("p1", origin.url, "0002-old") is False
    assert await cache.delete_remote_branch("p1", origin.url, "never-existed") is False
    assert await origin.tip("main") is not None


@pytest.mark.parametrize("project_id", ["../escape", "a/b", "", ".hidden", "x.lock"])
async def test_unsafe_project_ids_are_refused(cache: MirrorCache, origin: Origin, project_id: str) -> None:
    with pytest.raises(ValueError, match="directory name"):
        await cache.sync(project_id, origin.url)


@pytest.mark.parametrize("branch", ["-f", "+main", "a..b", "a b", "x.lock", "a/", "@", "a:b", "a@{1}"])
async def test_invalid_branch_names_are_refused(cache: MirrorCache, origin: Origin, branch: str) -> None:
    with pytest.raises(ValueError, match="branch name"):
        await cache.delete_remote_branch("p1", origin.url, branch)
    with pytest.raises(ValueError, match="branch name"):
        async with cache.worktree("p1", origin.url, branch=branch, base_branch="main", job_id="j"):
            pass


async def test_diff_of_a_commit_and_of_a_head_against_its_base(cache: MirrorCache, origin: Origin) -> None:
    first = await origin.commit("0003-work", {"w.txt": "one\n"}, "first step")
    second = await origin.commit("0003-work", {"w.txt": "one\ntwo\n", "x.txt": "x\n"}, "second step")
    # Not synced before: the mirror fetches what it lacks.
    patch, subject, truncated = await cache.diff("p1", origin.url, commit=second)
    assert subject == "second step"
    assert not truncated
    assert "+two" in patch
    assert "+one" not in patch
    assert "x.txt" in patch
    patch, subject, _ = await cache.diff("p1", origin.url, base_branch="main", head=second)
    assert subject == ""
    assert "+one" in patch
    assert "+two" in patch
    cut, _, truncated = await cache.diff("p1", origin.url, commit=first, max_bytes=20)
    assert truncated
    assert len(cut.encode()) <= 20
    with pytest.raises(GitError):
        await cache.diff("p1", origin.url, commit="not-a-sha")
