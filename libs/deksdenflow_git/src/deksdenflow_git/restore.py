"""Putting a protocol branch back when the remote lost the head the log recorded.

The remote is the source of truth for code between jobs, but the log is the source of truth for what
was pushed: if the remote branch was deleted, or rewritten so that it no longer contains the last head
the log recorded (force-pushed, reset), a job must not quietly start over from the base branch (the
plan and the earlier steps would be gone). What can be put back safely is put back; nothing is ever
forced over commits someone else pushed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deksdenflow_core.logging import get_logger

from deksdenflow_git.errors import BranchLost
from deksdenflow_git.git import Git

_log = get_logger(__name__)

# How ``git push --porcelain`` says the remote moved meanwhile (not a hook or a protection refusing).
_RACED = ("(fetch first)", "(non-fast-forward)")


@dataclass(frozen=True)
class BranchRestored:
    """The remote ``branch`` was missing (``found_sha`` None) or at ``found_sha``; ``commit_sha`` is
    back on it."""

    branch: str
    commit_sha: str
    found_sha: str | None


async def ensure_head(
    git: Git, mirror: Path, git_url: str, *, branch: str, tracking: str, expected: str
) -> BranchRestored | None:
    """Make sure the remote ``branch`` contains ``expected``; None if it already does.

    The mirror has just fetched every branch (``tracking`` is ``branch``'s remote-tracking ref) and the
    caller holds its lock. A branch that is gone, or that was moved back to an ancestor of ``expected``
    (reset, force-pushed to its base), gets ``expected`` pushed back, never forced, if the mirror still
    has that commit. ``BranchLost`` if it does not, or if the remote has commits ``expected`` does not
    contain (restoring would overwrite them).
    """
    found = await _tip(git, mirror, tracking)
    has_expected = await _has_commit(git, mirror, expected)
    if found is not None and has_expected and await _is_ancestor(git, mirror, expected, found):
        return None
    what = "was deleted on the remote" if found is None else f"was rewritten on the remote (now at {found})"
    if not has_expected:
        raise BranchLost(
            f"protocol branch {branch} {what} and its last recorded head {expected} no longer exists "
            "anywhere this worker can reach: restore the branch by hand, then retry",
            branch=branch,
            expected_sha=expected,
            found_sha=found,
        )
    if found is not None and not await _is_ancestor(git, mirror, found, expected):
        raise BranchLost(
            f"protocol branch {branch} {what} with commits the log never recorded; restoring its last "
            f"recorded head {expected} would overwrite them: reconcile the branch by hand, then retry",
            branch=branch,
            expected_sha=expected,
            found_sha=found,
        )
    ref = f"refs/heads/{branch}"
    pushed = await git.execute(
        "push", "--porcelain", "--no-verify", "--", git_url, f"{expected}:{ref}", cwd=mirror
    )
    if not pushed.ok:
        error = pushed.error()
        # Someone moved the branch between our fetch and our push: look again on the next delivery.
        error.retryable = error.retryable or any(flag in pushed.stdout for flag in _RACED)
        raise error
    await git.run("update-ref", tracking, expected, cwd=mirror)
    _log.warning("protocol branch restored", branch=branch, commit=expected, found=found)
    return BranchRestored(branch=branch, commit_sha=expected, found_sha=found)


async def _tip(git: Git, mirror: Path, ref: str) -> str | None:
    result = await git.execute("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=mirror)
    return result.stdout.strip() if result.ok else None


async def _has_commit(git: Git, mirror: Path, sha: str) -> bool:
    return (await git.execute("cat-file", "-e", f"{sha}^{{commit}}", cwd=mirror)).ok


async def _is_ancestor(git: Git, mirror: Path, ancestor: str, descendant: str) -> bool:
    result = await git.execute("merge-base", "--is-ancestor", ancestor, descendant, cwd=mirror)
    if result.exit_code not in (0, 1):
        raise result.error()
    return result.exit_code == 0
