"""The credentials of the embedded NATS and PostgreSQL, made on the first ``deksdenflow run`` and kept.

They live in one file, ``<home>/credentials.json`` (mode 0600, like ``api-token``)::

    {"nats": {"supervisor": "...", "api": "...", "projector": "...", "codex-worker": "...",
              "git-ci-worker": "...", "tools": "..."},
     "postgres": {"postgres": "...", "deksdenflow_reader": "..."}}

A user or role missing from the file (an older version made it, or none was made yet) gets a fresh random
password; existing ones are never changed, so the servers and the file stay in step across restarts.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

FILE_NAME = "credentials.json"
PRIVATE = 0o600


def credentials_file(home: Path) -> Path:
    """Where ``deksdenflow run`` keeps the credentials of its embedded servers."""
    return home / FILE_NAME


@dataclass(frozen=True)
class Credentials:
    """Passwords by NATS user and by PostgreSQL role."""

    nats: dict[str, str]
    postgres: dict[str, str]

    @classmethod
    def load(cls, file: Path) -> Credentials:
        """Read the file (as written by :func:`ensure_credentials`)."""
        data = json.loads(file.read_text())
        return cls(nats=dict(data.get("nats", {})), postgres=dict(data.get("postgres", {})))


def write_private(file: Path, text: str) -> None:
    """Write ``text`` to ``file`` readable by the owner only, from the first byte on (no window where a
    freshly created file has the umask's mode), replacing any older content atomically."""
    file.parent.mkdir(parents=True, exist_ok=True)
    staging = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(staging, PRIVATE)  # O_CREAT's mode does not apply to a file that already existed
        os.replace(staging, file)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def ensure_credentials(home: Path, *, nats_users: Iterable[str], pg_roles: Iterable[str]) -> Credentials:
    """The credentials in ``<home>/credentials.json``, completed with a password for every user and role
    that has none yet; the file is (re)written only when something was added, and is always 0600."""
    file = credentials_file(home)
    current = Credentials.load(file) if file.exists() else Credentials(nats={}, postgres={})
    nats = {**{u: secrets.token_urlsafe(32) for u in nats_users}, **current.nats}
    postgres = {**{r: secrets.token_urlsafe(32) for r in pg_roles}, **current.postgres}
    if nats != current.nats or postgres != current.postgres:
        write_private(file, json.dumps({"nats": nats, "postgres": postgres}, indent=2) + "\n")
    file.chmod(PRIVATE)
    return Credentials(nats=nats, postgres=postgres)


def with_userinfo(url: str, user: str, password: str) -> str:
    """``url`` with ``user:password@`` (percent-encoded) in place of any user part it had."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def kept_secret(configured: str, file: Path) -> str:
    """``configured`` if set; else a random secret made once in ``file`` (owner-only) and reused."""
    if configured:
        return configured
    if not file.exists():
        write_private(file, secrets.token_urlsafe(32) + "\n")
    file.chmod(PRIVATE)
    return file.read_text().strip()
