"""One job's checkout of a protocol branch, and the safe operations a job performs in it.

A ``Worktree`` is handed out by ``MirrorCache.worktree()`` and lives only inside that context. Its
remote operations go straight to the real remote URL: pushes never force, and a push whose commits
are already on the remote is a no-op, so a redelivered job can repeat its last step safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deksdenflow_git.errors import GitCommandError, PushRejected
from deksdenflow_git.git import Git, GitResult
from deksdenflow_git.restore import BranchRestored

# Fetches one branch of the remote into ``refs/remotes/origin/<branch>`` (under the mirror's lock)
# and returns its tip, or None if the remote has no such branch.
BranchFetcher = Callable[[str], Awaitable[str | None]]

_TRAILER_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_FIELD_SEP, _VALUE_SEP, _RECORD_SEP = "\x1f", "\x1e", "\x1d"
_NOT_FAST_FORWARD = ("(fetch first)", "(non-fast-forward)")


@dataclass(frozen=True)
class PushResult:
    """Outcome of ``Worktree.push``: ``sha`` (our HEAD) is on the remote ``branch`` either way."""

    status: Literal["pushed", "up_to_date"]
    sha: str
    branch: str


class Worktree:
    """A checkout of ``branch`` at ``path`` that started at ``base_sha``.

    Valid only inside ``MirrorCache.worktree()``. ``git`` is the runner it uses, for any other command
    (pass ``cwd=path``).
    """

    def __init__(
        self,
        *,
        path: Path,
        branch: str,
        base_sha: str,
        git: Git,
        git_url: str,
        fetch_branch: BranchFetcher,
        restored: BranchRestored | None = None,
    ) -> None:
        self.path = path
        # Set when the remote branch had lost its recorded head and it was pushed back first.
        self.restored = restored
        self.branch = branch
        self.base_sha = base_sha
        self.git = git
        self._git_url = git_url
        self._fetch_branch = fetch_branch

    def __repr__(self) -> str:
        return f"Worktree(path={self.path!s}, branch={self.branch!r}, base_sha={self.base_sha!r})"

    async def _run(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None) -> str:
        return await self.git.run(*args, cwd=self.path, input=input, env=env)

    async def _execute(self, *args: str) -> GitResult:
        return await self.git.execute(*args, cwd=self.path)

    async def head(self) -> str:
        """The sha HEAD points at."""
        return (await self._run("rev-parse", "--verify", "HEAD^{commit}")).strip()

    async def ancestors(self, sha: str, count: int) -> tuple[str, ...]:
        """Up to ``count`` first-parent ancestors of ``sha``, nearest first (not ``sha`` itself)."""
        out = await self._run("rev-list", "--first-parent", f"--max-count={count + 1}", sha, "--")
        return tuple(out.split()[1:])

    async def status_porcelain(self) -> str:
        """``git status --porcelain`` (v1, every untracked file listed): empty when the tree is clean."""
        return await self._run("status", "--porcelain=v1", "--untracked-files=all")

    async def changed_files(self, since: str | None = None) -> list[str]:
        """Paths that differ from ``since`` (default ``base_sha``): see ``changed_paths``."""
        return await changed_paths(self.git, self.path, since or self.base_sha)

    async def commit_all(self, message: str, *, trailers: Mapping[str, str] | None = None) -> str | None:
        """Stage everything and commit it with ``Key: value`` trailers; None if there was nothing to commit.

        Trailers are how a redelivered job recognises its own earlier commit (``find_commit_with_trailer``).
        Hooks do not run (see ``git.py``): the agent's work is committed as it is and judged by QA and CI.
        """
        if not message.strip():
            raise ValueError("a commit needs a non-empty message")
        trailer_args = [
            arg for key, value in (trailers or {}).items() for arg in ("--trailer", _trailer(key, value))
        ]
        await self._run("add", "--all")
        staged = await self._execute("diff", "--cached", "--quiet")
        if staged.exit_code == 0:
            return None
        if staged.exit_code != 1:
            raise staged.error()
        await self._run("commit", "--quiet", "--no-verify", "--file=-", *trailer_args, input=message.encode())
        return await self.head()

    async def find_commit_with_trailer(self, key: str, value: str, *, since: str | None = None) -> str | None:
        """The newest commit on the remote branch carrying trailer ``key: value``, or None.

        Fetches the branch first: the commit that matters is one an earlier delivery of the job pushed,
        possibly from another machine. ``since`` limits the search to commits after it.
        """
        wanted = _trailer(key, value).partition(": ")[2]
        tip = await self._fetch_branch(self.branch)
        if tip is None:
            return None
        log = await self._run(
            "log",
            f"--format=%H{_FIELD_SEP}%(trailers:key={key},valueonly,separator=%x1e){_RECORD_SEP}",
            "--fixed-strings",
            f"--grep={wanted}",
            "--end-of-options",
            f"{since}..{tip}" if since else tip,
            "--",
        )
        for record in log.split(_RECORD_SEP):
            sha, _, values = record.strip().partition(_FIELD_SEP)
            if sha and wanted in (v.strip() for v in values.split(_VALUE_SEP)):
                return sha
        return None

    async def last_commit_subject(self) -> str:
        """The subject line of the HEAD commit."""
        return (await self._run("log", "-1", "--format=%s", "HEAD")).rstrip("\n")

    async def diff(self, since: str | None = None, *, max_bytes: int = 200_000) -> str:
        """The working tree's diff against ``since`` (default base_sha): see ``working_tree_diff``."""
        return await working_tree_diff(self.git, self.path, since or self.base_sha, max_bytes=max_bytes)

    async def push(self) -> PushResult:
        """Publish HEAD to the remote branch, never forcing.

        Already there (or contained in the remote tip) -> ``up_to_date``. The remote moved to commits we
        do not have -> ``PushRejected`` (we never overwrite them). Network failures raise a retryable
        ``GitCommandError``.
        """
        sha = await self.head()
        ref = f"refs/heads/{self.branch}"
        result = await self.git.execute(
            "push", "--porcelain", "--no-verify", "--", self._git_url, f"{sha}:{ref}", cwd=self.path
        )
        line = _porcelain_line(result.stdout, ref)
        if line is None:
            raise result.error()
        flag, summary = line
        if flag == "=":
            return PushResult(status="up_to_date", sha=sha, branch=self.branch)
        if flag != "!":
            return PushResult(status="pushed", sha=sha, branch=self.branch)
        if not summary.endswith(_NOT_FAST_FORWARD):
            raise PushRejected(
                f"the remote refused the push to {self.branch}: {summary}",
                branch=self.branch,
                local_sha=sha,
                remote_sha=None,
                reason=summary,
            )
        return await self._settle_rejection(sha)

    async def rebase_onto_remote(self) -> str:
        """Replay this job's commits onto the remote branch as it is now (it moved: another job of a
        parallel group pushed first) and return the new HEAD. A conflict leaves nothing half done (the
        rebase is aborted) and raises ``PushRejected`` naming the conflicting files."""
        tip = await self._fetch_branch(self.branch)
        if tip is None:
            raise GitCommandError(
                f"the remote branch {self.branch} disappeared while rebasing onto it",
                argv=[],
                exit_code=None,
                stderr="",
                retryable=True,
            )
        rebased = await self._execute("rebase", "--no-autostash", "--empty=drop", tip)
        if rebased.ok:
            return await self.head()
        conflicted = await self._run("diff", "--name-only", "--diff-filter=U")
        await self._execute("rebase", "--abort")
        files = ", ".join(conflicted.split()) or "unknown files"
        raise PushRejected(
            f"this step's change conflicts with what another step pushed to {self.branch} meanwhile "
            f"(in {files})",
            branch=self.branch,
            local_sha=await self.head(),
            remote_sha=tip,
            reason="conflict with a parallel step",
        )

    async def _settle_rejection(self, sha: str) -> PushResult:
        """After a non-fast-forward rejection: up to date if the remote tip contains ``sha``, else reject."""
        tip = await self._fetch_branch(self.branch)
        if tip is None:
            raise GitCommandError(
                f"the remote branch {self.branch} disappeared while pushing to it",
                argv=[],
                exit_code=None,
                stderr="",
                retryable=True,
            )
        contained = await self._execute("merge-base", "--is-ancestor", sha, tip)
        if contained.exit_code == 0:
            return PushResult(status="up_to_date", sha=sha, branch=self.branch)
        if contained.exit_code != 1:
            raise contained.error()
        raise PushRejected(
            f"the remote branch {self.branch} is at {tip}, which does not contain {sha}; "
            "refusing to overwrite commits we do not have",
            branch=self.branch,
            local_sha=sha,
            remote_sha=tip,
            reason="remote has commits this worktree does not have",
        )


async def changed_paths(git: Git, path: Path, since: str) -> list[str]:
    """Paths of the checkout at ``path`` that differ from ``since``: committed, staged, unstaged, untracked.

    Renames count as a deletion plus an addition, so both paths are listed.
    """
    tracked, untracked = await asyncio.gather(
        git.run("diff", "--name-only", "-z", "--no-renames", "--end-of-options", since, "--", cwd=path),
        git.run("ls-files", "--others", "--exclude-standard", "-z", cwd=path),
    )
    return sorted({p for p in (tracked + untracked).split("\0") if p})


async def working_tree_diff(git: Git, path: Path, since: str, *, max_bytes: int = 200_000) -> str:
    """Unified diff of the checkout at ``path``, untracked files included, against ``since``.

    Output beyond ``max_bytes`` is cut at a line end and followed by a marker saying how much was left
    out (see ``working_tree_diffs``).
    """
    (text,) = await working_tree_diffs(git, path, since, ())
    return _truncate(text, max_bytes)


async def working_tree_diffs(git: Git, path: Path, since: str, *variants: Sequence[str]) -> list[str]:
    """``git diff --cached <variant> since`` for each variant (e.g. ``("--numstat",)``), untracked files
    included: they are staged into a throwaway copy of the index, so the checkout's real index, and what
    ``git status`` shows, stay untouched."""
    index = Path(
        (await git.run("rev-parse", "--path-format=absolute", "--git-path", "index", cwd=path)).strip()
    )
    scratch = index.with_name(f"index.diff-{uuid.uuid4().hex}")
    try:
        # With its mtime (copy2): git tells an edit made in the second the index was written from an
        # unchanged file by comparing the file's mtime with the index's ("racy git"); a copy stamped now
        # would take such an edit of the same size for no change at all.
        await asyncio.to_thread(shutil.copy2, index, scratch)
        env = {"GIT_INDEX_FILE": str(scratch)}
        await git.run("add", "--all", cwd=path, env=env)
        return [
            await git.run(
                "diff",
                "--cached",
                "--no-ext-diff",
                *variant,
                "--end-of-options",
                since,
                "--",
                cwd=path,
                env=env,
            )
            for variant in variants
        ]
    finally:
        with contextlib.suppress(FileNotFoundError):
            scratch.unlink()


def _trailer(key: str, value: str) -> str:
    """``Key: value``, after checking that neither part can break the trailer block or a format string."""
    if not _TRAILER_KEY.fullmatch(key):
        raise ValueError(f"trailer key {key!r} must be letters, digits and '-'")
    if not value.strip() or "\n" in value or "\r" in value:
        raise ValueError(f"trailer value {value!r} must be one non-empty line")
    return f"{key}: {value.strip()}"


def _porcelain_line(stdout: str, ref: str) -> tuple[str, str] | None:
    """(flag, summary) of ``git push --porcelain``'s line for ``ref``, or None if there is none."""
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].endswith(f":{ref}"):
            return parts[0], parts[2]
    return None


def _truncate(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 at a line end, with a marker if anything was cut."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    head = data[:max_bytes].decode("utf-8", errors="ignore")
    if "\n" in head:
        head = head[: head.rindex("\n") + 1]
    omitted = len(data) - len(head.encode())
    return f"{head}\n[diff truncated: {omitted} of {len(data)} bytes omitted]\n"
