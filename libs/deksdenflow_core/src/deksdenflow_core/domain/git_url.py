"""The one parser of git URLs (:class:`GitUrl`), and the one check of a project's ``git_url``: a clone
URL or a path, never a credential.

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
from dataclasses import dataclass
from typing import Literal
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


@dataclass(frozen=True, slots=True)
class GitUrl:
    """A git address read into its parts, whatever its form (pure; parsing never raises).

    * ``"url"``: ``scheme://[user[:password]@]host[:port]/path[?query]`` (``://`` in the text);
    * ``"scp"``: the scp-like ``[user@]host:path`` (the host has no slash; the path does not start with
      ``//``);
    * ``"path"``: anything else (a local path, or text that is neither of the above).

    ``host`` is lower-cased for URLs (as ``urlsplit`` gives it) and as written for scp-like addresses.
    ``problem`` says why a URL cannot be read: a malformed host (its other parts are then empty) or port.
    """

    text: str
    form: Literal["url", "scp", "path"]
    scheme: str = ""
    user: str | None = None
    password: str | None = None
    host: str = ""
    path: str = ""
    query: str = ""
    problem: str = ""

    @classmethod
    def parse(cls, text: str) -> GitUrl:
        """``text`` (stripped) read into its parts."""
        text = text.strip()
        if "://" in text:
            try:
                parts = urlsplit(text)
            except ValueError as exc:
                return cls(text, "url", problem=str(exc))
            problem = ""
            try:
                parts.port  # noqa: B018  (parsing the port raises on a malformed netloc)
            except ValueError as exc:
                problem = str(exc)
            return cls(
                text,
                "url",
                scheme=parts.scheme.lower(),
                user=parts.username,
                password=parts.password,
                host=parts.hostname or "",
                path=parts.path,
                query=parts.query,
                problem=problem,
            )
        scp = _SCP_LIKE.match(text)
        if scp is not None:
            return cls(text, "scp", user=scp["user"], host=scp["host"], path=text[scp.end() :])
        return cls(text, "path", path=text)

    @property
    def has_credentials(self) -> bool:
        """A password, or a user name where it is a credential (anywhere but an SSH login)."""
        if self.form == "url":
            return self.password is not None or (self.user is not None and self.scheme not in _SSH_SCHEMES)
        if self.form == "scp":
            return self.user is not None and (":" in self.user or not self.user)
        return False

    @property
    def repo_path(self) -> str:
        """The repository's path on its host, as forges name it: ``Acme/Demo.git`` -> ``Acme/Demo``."""
        return self.path.strip("/").removesuffix(".git")


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
    parsed = GitUrl.parse(url)
    if parsed.problem:
        raise InvalidCommand(f"git_url is not a valid URL: {parsed.problem}", field="git_url")
    if parsed.has_credentials:
        # Over http(s) (and anything else but ssh) the user part is a credential: a token or a login.
        raise _refused()
    if parsed.form == "path" and not url.startswith("/"):
        # Read by workers in other directories, on other machines: a relative path means nothing there.
        raise InvalidCommand(
            f"git_url {url!r} is a relative path: give an absolute path or a file:// URL", field="git_url"
        )
    if parsed.form == "url" and parsed.scheme in ("http", "https") and parsed.query:
        raise InvalidCommand(
            "git_url must not have a query string (tokens in URLs are refused); " + WHERE_CREDENTIALS_GO,
            field="git_url",
        )
    return url


def _refused() -> GitUrlHasCredentials:
    return GitUrlHasCredentials("git_url carries credentials; " + WHERE_CREDENTIALS_GO, field="git_url")
