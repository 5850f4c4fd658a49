"""Git plumbing shared by the workers: mirror cache, worktrees, safe pushes, forge (GitHub/GitLab) clients."""

from deksdenflow_git.errors import (
    BranchBaseMissing,
    BranchLost,
    GitCommandError,
    GitError,
    PushRejected,
    WorktreeBusy,
)
from deksdenflow_git.git import Git, GitIdentity, GitResult, redact
from deksdenflow_git.mirror import MirrorCache
from deksdenflow_git.restore import BranchRestored
from deksdenflow_git.worktree import (
    PushResult,
    Worktree,
    changed_paths,
    working_tree_diff,
    working_tree_diffs,
)

__all__ = [
    "BranchBaseMissing",
    "BranchLost",
    "BranchRestored",
    "Git",
    "GitCommandError",
    "GitError",
    "GitIdentity",
    "GitResult",
    "MirrorCache",
    "PushRejected",
    "PushResult",
    "Worktree",
    "WorktreeBusy",
    "changed_paths",
    "redact",
    "working_tree_diff",
    "working_tree_diffs",
]
