"""The one check of a project's ``git_url``: a clone URL or a path, never a credential.

A URL is recorded in the event log, which is immutable and kept forever, copied into the read model,
shown in API answers (to project tokens too) and written into the git worker's mirror config. So a
password, or a token given as the user name (``https://<token>@github.com/...``, ``https://oauth2:<token>@...``),
must never get in: it is refused here, by the rule that registers a project, and by the API's schema
through this same function.

Accepted: ``https://host/owner/repo.git`` (no user), ``ssh://git@host/owner/repo.git`` and the scp-like
``git@host:owner/repo.git`` (a user name without a password: the SSH key authenticates), ``file://``
URLs and local paths.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from deksdenflow_core.errors import InvalidCommand

# Where credentials go instead; the git worker runs git with no credential helper and no prompt.
WHERE_CREDENTIALS_GO = (
    "put no credentials in git_url: use an SSH URL (ssh://git@host/owner/repo.git or "
    "git@host:owner/repo.git) authenticated by the git worker's SSH key (its ~/.ssh, ssh-agent or "
    "GIT_SSH_COMMAND), or a public https URL; forge API tokens go in the git worker's "
    "DEKSDENFLOW_GITHUB_TOKEN / DEKSDENFLOW_GITLAB_TOKEN (or *_TOKEN_FILE)"
)

# Schemes whose user is an SSH login name, not a credential.
_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})
# scp-like syntax: [user@]host:path, where the host has no slash and the path does not start with "//".
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/]*)@)?(?P<host>[^@/:\[\]]+|\[[^\]]+\]):(?!//)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class GitUrlHasCredentials(InvalidCommand):
    """A ``git_url`` that carries a password or a token."""

    code = "git_url_has_credentials"


def check_git_url(url: str) -> str:
    """``url`` stripped, or ``InvalidCommand`` if it is empty or carries credentials."""
    url = url.strip()
    if not url:
        raise InvalidCommand("git_url must not be empty", field="git_url")
    if _CONTROL.search(url):
        raise InvalidCommand("git_url must not contain control characters", field="git_url")
    if "://" in url:
        _check_url(url)
    elif (
        (scp := _SCP_LIKE.match(url)) is not None
        and scp["user"] is not None
        and (":" in scp["user"] or not scp["user"])
    ):
        raise _refused()
    return url


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (parsing the port raises on a malformed netloc)
    except ValueError as exc:
        raise InvalidCommand(f"git_url is not a valid URL: {exc}", field="git_url") from exc
    scheme = parts.scheme.lower()
    if parts.password is not None:
        raise _refused()
    if parts.username is not None and scheme not in _SSH_SCHEMES:
        # Over http(s) (and anything else) the user part is a credential: a token or a login.
        raise _refused()
    if scheme in ("http", "https") and parts.query:
        raise InvalidCommand(
            "git_url must not have a query string (tokens in URLs are refused); " + WHERE_CREDENTIALS_GO,
            field="git_url",
        )


def _refused() -> GitUrlHasCredentials:
    return GitUrlHasCredentials("git_url carries credentials; " + WHERE_CREDENTIALS_GO, field="git_url")
