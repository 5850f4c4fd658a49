"""What every forge client offers (the ``Forge`` protocol), the values it returns and the errors it raises.

The git/CI worker codes against ``Forge`` only; whether a REST client or the gh/glab CLI sits behind it
is decided once, in ``make_forge``. Errors say whether a retry can help: a bad token or a missing
repository will not fix itself, a 502 or a timeout may.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from deksdenflow_core.domain.git_url import GitUrl
from deksdenflow_core.domain.provider import PROVIDER_NAMES, ProviderName
from deksdenflow_core.errors import ConfigurationError, DeksdenflowError, InfrastructureError

PullRequestState = Literal["open", "closed", "merged"]
CiState = Literal["success", "failure", "running", "none"]
MergeMethod = Literal["merge", "squash", "rebase"]

# How the configuration usually names each forge's token; errors name it, never show the token itself.
DEFAULT_TOKEN_NAMES: dict[str, str] = {"github": "GITHUB_TOKEN", "gitlab": "GITLAB_TOKEN"}
GITHUB_TOKEN_NAME = DEFAULT_TOKEN_NAMES["github"]
GITLAB_TOKEN_NAME = DEFAULT_TOKEN_NAMES["gitlab"]


# --- values -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoRef:
    """Where a repository lives: the forge, its host and the path (``owner/repo``, ``group/sub/project``)."""

    provider: ProviderName
    host: str
    path: str


@dataclass(frozen=True)
class PullRequest:
    """A GitHub pull request or GitLab merge request (``number`` is the MR's iid on GitLab)."""

    number: int
    url: str
    state: PullRequestState
    head_branch: str
    head_sha: str
    draft: bool
    reused: bool = False


@dataclass(frozen=True)
class CiStatus:
    """The latest CI verdict for a commit; ``raw_state`` keeps the forge's own word for it."""

    state: CiState
    raw_state: str
    url: str
    head_sha: str


@dataclass(frozen=True)
class CiFailure:
    """Enough of a failed CI run to tell an agent what broke: where, which job, the end of its log."""

    run_url: str
    job_name: str
    log_excerpt: str


@dataclass(frozen=True)
class MergeResult:
    """What a merge request to the forge achieved.

    ``merged``: merged now (or already before: merging is idempotent). ``scheduled``: not merged yet, but the
    forge will merge by itself when the pipeline succeeds (GitLab auto-merge). Neither: nothing happened,
    ask again later (GitHub with ``when_pipeline_succeeds`` while the commit's CI is not green).
    """

    merged: bool
    scheduled: bool
    merge_commit_sha: str  # "" unless merged
    url: str  # the PR/MR's web page


@dataclass(frozen=True)
class Reviews:
    """Where the reviews of a PR/MR stand.

    GitHub: each user's latest approving or change-requesting review counts (a comment changes nothing, a
    dismissal clears it); ``approvals_required`` is 0 because branch protection is not read. GitLab: the
    approvers, no change requests (GitLab has none), and the approvals still missing (``approvals_left``).
    """

    approved_by: tuple[str, ...]
    changes_requested_by: tuple[str, ...]
    approvals_required: int  # approvals still needed before the forge allows a merge


@dataclass(frozen=True)
class Comment:
    """A comment on a PR/MR's conversation (GitHub issue comment, GitLab note) and where it is shown."""

    body: str
    url: str


@dataclass(frozen=True)
class LineComment:
    """A review's comment on a line of the diff (``line`` 0 when the forge names none)."""

    path: str
    line: int
    body: str
    url: str


class Forge(Protocol):
    """Pull requests and CI of one repository on GitHub or GitLab."""

    provider: str

    async def find_open_pull_request(self, branch: str) -> PullRequest | None:
        """The open PR/MR whose head is ``branch``, if any."""
        ...

    async def open_draft_pull_request(self, *, branch: str, base: str, title: str, body: str) -> PullRequest:
        """Open a draft PR/MR, or return the open one for ``branch`` (``reused=True``)."""
        ...

    async def get_pull_request(self, number: int) -> PullRequest:
        """One PR/MR by number (GitLab: iid), whatever its state."""
        ...

    async def trigger_ci(self, *, ref: str, workflow: str | None = None) -> str:
        """Start CI on ``ref``; returns where to watch it (a URL or a one-line description)."""
        ...

    async def ci_status(self, sha: str) -> CiStatus:
        """The latest CI state of commit ``sha``."""
        ...

    async def ci_failure(self, sha: str, *, max_lines: int = 80) -> CiFailure | None:
        """The failed job of the latest failed CI run of ``sha`` and its last log lines; None if none."""
        ...

    async def mark_ready(self, number: int) -> PullRequest:
        """Take a draft PR/MR out of draft (ready for review); one already ready is returned as is."""
        ...

    async def request_reviewers(self, number: int, reviewers: Sequence[str]) -> None:
        """Ask these users (logins/usernames) for a review, in addition to those already asked."""
        ...

    async def update_pull_request_body(self, number: int, body: str) -> None:
        """Replace the PR's body (the MR's description)."""
        ...

    async def comment(self, number: int, body: str) -> str:
        """Post a top-level comment on the PR/MR; returns the comment's web URL.

        Not idempotent: posting twice shows two comments. A caller that may run twice looks for its
        comment with :meth:`comments` first.
        """
        ...

    async def comments(self, number: int) -> list[Comment]:
        """The PR/MR's conversation comments (GitLab: its notes), oldest first, every page of them."""
        ...

    async def review_comments(self, number: int, review_id: str) -> list[LineComment]:
        """The line comments of one review (GitHub: a review groups them). GitLab has no such grouping —
        each note comes as its own webhook delivery — so there it is always empty."""
        ...

    async def merge(
        self, number: int, *, method: MergeMethod, sha: str, when_pipeline_succeeds: bool = False
    ) -> MergeResult:
        """Merge the PR/MR if its head is still ``sha``; a PR/MR merged already is reported as merged.

        ``when_pipeline_succeeds``: GitLab schedules the merge (``scheduled``) until the pipeline succeeds;
        GitHub's REST API cannot schedule, so GitHub merges only if the commit's CI is green and otherwise
        reports neither merged nor scheduled. On GitLab ``method`` only chooses whether to squash: merge
        commit or fast-forward is the project's setting. A refusal (draft, conflicts, checks, a head that
        moved) raises ``ForgeError`` with the forge's reason.
        """
        ...

    async def reviews(self, number: int) -> Reviews:
        """Who approved and who asked for changes, and how many approvals are still missing."""
        ...

    async def aclose(self) -> None:
        """Release connections (and nothing else: a forge client owns no other resource)."""
        ...


# --- errors -------------------------------------------------------------------------------------------


class InvalidRepoUrl(ConfigurationError, ValueError):
    """A git URL we cannot map to a forge repository (also a ValueError: it is a bad argument)."""

    code = "invalid_repo_url"


class ForgeError(DeksdenflowError):
    """The forge understood the request and refused it; sending it again will be refused again."""

    code = "forge_error"


class ForgeAuthError(ForgeError, ConfigurationError):
    """The token is missing, wrong, expired or lacks a permission: a person has to fix the configuration."""

    code = "forge_auth"


class ForgeNotFound(ForgeError):
    """The repository (or a PR, a job) does not exist, or the credentials cannot see it."""

    code = "forge_not_found"


class ForgeUnavailable(InfrastructureError):
    """The forge did not answer, answered 5xx or rate-limited us: retrying later may succeed."""

    code = "forge_unavailable"


# --- parsing ------------------------------------------------------------------------------------------

_SCP_USER = re.compile(r"[\w.+-]+")
_SCP_HOST = re.compile(r"[\w.-]+")
_SCP_PATH = re.compile(r"(?!/)[^:]+")


def parse_repo(git_url: str, provider: str) -> RepoRef:
    """The forge repository behind a clone URL.

    Accepts ``https://host[:port]/owner/repo(.git)``, ``ssh://git@host[:port]/owner/repo(.git)`` and the
    scp-like ``git@host:owner/repo.git``. GitLab paths may have subgroups; GitHub paths are exactly
    ``owner/repo``. Anything else raises ``InvalidRepoUrl`` naming the URL and what was expected.
    """
    if provider not in PROVIDER_NAMES:
        raise InvalidRepoUrl(
            f"unknown forge provider {provider!r}; expected one of {', '.join(PROVIDER_NAMES)}",
            provider=provider,
        )
    url = git_url.strip()
    host, raw_path = _split_url(url)
    path = raw_path.strip("/").removesuffix(".git").strip("/")
    segments = path.split("/") if path else []
    if not host or not segments or any(not s or s in {".", ".."} for s in segments):
        raise InvalidRepoUrl(
            f"cannot read a repository from git URL {git_url!r}: expected https://host/owner/repo, "
            "ssh://git@host/owner/repo or git@host:owner/repo.git",
            git_url=git_url,
        )
    if provider == "github" and len(segments) != 2:
        raise InvalidRepoUrl(
            f"a GitHub repository URL names exactly owner/repo; {git_url!r} has {len(segments)} path parts",
            git_url=git_url,
        )
    if provider == "gitlab" and len(segments) < 2:
        raise InvalidRepoUrl(
            f"a GitLab project URL names at least group/project; {git_url!r} names only {path!r}",
            git_url=git_url,
        )
    return RepoRef(provider=provider, host=host, path="/".join(segments))


def _split_url(url: str) -> tuple[str, str]:
    """(host, path) of a URL or scp-like address; ("", "") when it is neither."""
    parsed = GitUrl.parse(url)
    if parsed.form == "url":
        if parsed.scheme not in {"https", "http", "ssh", "git"} or not parsed.host:
            return "", ""
        # The port of an ssh URL is the ssh port, useless for the web API: the host alone names the forge.
        return parsed.host, parsed.path
    # Forges name stricter scp-like addresses than git accepts: a plain user, host and path.
    if (
        parsed.form != "scp"
        or (parsed.user is not None and _SCP_USER.fullmatch(parsed.user) is None)
        or _SCP_HOST.fullmatch(parsed.host) is None
        or _SCP_PATH.fullmatch(parsed.path) is None
    ):
        return "", ""
    return parsed.host, parsed.path


# --- shared helpers -----------------------------------------------------------------------------------

# CSI sequences (colours, cursor moves) and GitLab's collapsible-section markers clutter raw CI logs.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_GITLAB_SECTION = re.compile(r"section_(?:start|end):\d+:[\w.-]+(?:\[[^\]]*\])?\r?")


def log_tail(text: str, max_lines: int) -> str:
    """The last ``max_lines`` lines of a CI log, without terminal escape codes or section markers."""
    clean = _GITLAB_SECTION.sub("", _ANSI.sub("", text)).replace("\r\n", "\n")
    lines = [line.split("\r")[-1] for line in clean.rstrip("\n").split("\n")]
    return "\n".join(lines[-max_lines:]) if max_lines > 0 else ""


def api_message(payload: Any) -> str:
    """The human part of an error body (GitHub ``message``/``errors``, GitLab ``message``/``error``)."""
    if not isinstance(payload, dict):
        return str(payload)[:500] if payload else ""
    parts: list[str] = []
    for key in ("message", "error"):
        value = payload.get(key)
        if isinstance(value, list):
            parts.extend(str(v) for v in value)
        elif isinstance(value, dict):
            parts.extend(f"{k}: {v}" for k, v in value.items())
        elif value:
            parts.append(str(value))
    for error in payload.get("errors") or []:
        if isinstance(error, dict):
            parts.append(str(error.get("message") or error.get("code") or error))
        else:
            parts.append(str(error))
    return "; ".join(parts)
