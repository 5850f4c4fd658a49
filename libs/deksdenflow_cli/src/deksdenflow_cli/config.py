"""Profiles in ``$XDG_CONFIG_HOME/deksdenflow/config.toml`` (default ``~/.config``), kept with mode 0600.

One profile names an API URL and where its token comes from: an environment variable (``token_env``),
a command that prints it (``token_command``, run without a shell), or the token itself (``token``, only
when ``login`` read it from stdin). ``current`` names the profile used when neither ``--profile`` nor
``DEKSDENFLOW_PROFILE`` says otherwise::

    current = "prod"

    [profiles.prod]
    url = "https://deksdenflow.example.com"
    token_env = "DEKSDENFLOW_PROD_TOKEN"
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from deksdenflow_cli.exits import USAGE, CliError

# The keys a profile may hold, as `config get/set` spell them (dashes) and as the file does (underscores).
PROFILE_KEYS = ("url", "token-env", "token-command")


def config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "deksdenflow" / "config.toml"


@dataclass
class Config:
    """The whole file: profiles by name and the current one."""

    current: str | None = None
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        path = path or config_file()
        if not path.exists():
            return cls()
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CliError(USAGE, f"cannot read {path}: {exc}") from exc
        profiles = data.get("profiles", {})
        if not isinstance(profiles, dict):
            raise CliError(USAGE, f"{path}: [profiles] must be a table")
        current = data.get("current")
        return cls(
            current=str(current) if current else None,
            profiles={str(k): {str(a): str(b) for a, b in v.items()} for k, v in profiles.items()},
        )

    def save(self, path: Path | None = None) -> Path:
        """Write the file readable by its owner only (it may hold a token)."""
        path = path or config_file()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lines = []
        if self.current:
            lines.append(f"current = {_toml_string(self.current)}")
        for name, values in sorted(self.profiles.items()):
            lines += ["", f"[profiles.{_toml_string(name)}]"]
            lines += [f"{key} = {_toml_string(value)}" for key, value in sorted(values.items())]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines) + "\n")
        path.chmod(0o600)  # an older file may have been made with wider permissions
        return path


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's string escapes (with non-ASCII as \\uXXXX) are valid TOML."""
    return json.dumps(value)


def file_key(key: str) -> str:
    """``token-env`` → ``token_env``; refuses keys a profile does not have."""
    if key not in PROFILE_KEYS:
        raise CliError(USAGE, f"unknown key {key!r} (keys: {', '.join(PROFILE_KEYS)})")
    return key.replace("-", "_")
