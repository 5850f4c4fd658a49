"""Errors of the git plumbing, each saying whether retrying the same operation can help.

Callers decide retries from ``retryable`` alone: a network hiccup while fetching or pushing is worth
another attempt, a rejected push or a missing base branch is not (the same call would fail the same way).
Every message and field is already free of secrets (URLs are redacted before an error is built).
"""

from __future__ import annotations

from typing import Any

from deksdenflow_core.errors import DeksdenflowError


class GitError(DeksdenflowError):
    """Root of the errors raised by ``deksdenflow_git``."""

    code = "git_error"


class GitCommandError(GitError):
    """A ``git`` process failed or timed out.

    ``retryable`` is decided per failure: set when git's stderr says the network or the remote was
    unavailable (or the command timed out), left unset for everything else (bad ref, auth refused, ...).
    """

    code = "git_command_failed"

    def __init__(
        self,
        message: str,
        *,
        argv: list[str],
        exit_code: int | None,
        stderr: str,
        retryable: bool,
        **fields: Any,
    ) -> None:
        super().__init__(message, argv=argv, exit_code=exit_code, stderr=stderr, **fields)
        self.argv = argv
        self.exit_code = exit_code
        self.stderr = stderr
        self.retryable = retryable


class BranchBaseMissing(GitError):
    """The protocol branch does not exist on the remote and neither does the base to create it from."""

    code = "branch_base_missing"

    def __init__(self, message: str, *, branch: str, base_branch: str, **fields: Any) -> None:
        super().__init__(message, branch=branch, base_branch=base_branch, **fields)
        self.branch = branch
        self.base_branch = base_branch


class PushRejected(GitError):
    """The remote refused the push; we never force, so retrying the same push cannot succeed.

    ``remote_sha`` is the branch tip on the remote when it moved to commits we do not have (someone
    else pushed); it is None when the remote refused for another reason (hook, protected branch),
    given in ``reason``.
    """

    code = "push_rejected"

    def __init__(
        self,
        message: str,
        *,
        branch: str,
        local_sha: str,
        remote_sha: str | None,
        reason: str,
        **fields: Any,
    ) -> None:
        super().__init__(
            message, branch=branch, local_sha=local_sha, remote_sha=remote_sha, reason=reason, **fields
        )
        self.branch = branch
        self.local_sha = local_sha
        self.remote_sha = remote_sha
        self.reason = reason


class WorktreeBusy(GitError):
    """A live job already holds the worktree (same job id) or has the branch checked out.

    Retryable: the other job will finish or die, after which the worktree can be taken over.
    """

    retryable = True
    code = "worktree_busy"


class BranchLost(GitError):
    """The remote protocol branch lost the head the log recorded, and it cannot be put back.

    Either the commit exists nowhere we can reach (the branch was deleted and this mirror never saw
    it), or the branch was rewritten with commits of someone else's that restoring would overwrite.
    Permanent: a person has to look (``reason`` says what was found).
    """

    code = "branch_lost"

    def __init__(
        self, message: str, *, branch: str, expected_sha: str, found_sha: str | None, **fields: Any
    ) -> None:
        super().__init__(message, branch=branch, expected_sha=expected_sha, found_sha=found_sha, **fields)
        self.branch = branch
        self.expected_sha = expected_sha
        self.found_sha = found_sha
