"""Where the API is and which token to send: the environment, then the profile, then a local ``make run``.

``DEKSDENFLOW_API_URL`` / ``DEKSDENFLOW_API_TOKEN`` override everything. The profile is ``--profile``,
else ``DEKSDENFLOW_PROFILE``, else the config file's ``current``. With no profile at all the client looks
for a system started by ``make run`` (``deksdenflow run``) under ``DEKSDENFLOW_HOME`` (default
``./.deksdenflow``): the API URL it records in ``run/endpoints.json`` and the admin token it keeps in
``api-token``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deksdenflow_cli.config import Config
from deksdenflow_cli.exits import MISSING_DEPENDENCY, USAGE, CliError

DEFAULT_LOCAL_URL = "http://127.0.0.1:8010"


@dataclass(frozen=True)
class Context:
    url: str
    token: str | None
    source: str  # where the URL came from, for error messages: "environment", "profile NAME", "local"


def local_home() -> Path:
    return Path(os.environ.get("DEKSDENFLOW_HOME") or ".deksdenflow").expanduser()


def local_endpoints(home: Path) -> Path:
    """The file ``deksdenflow run`` writes (``deksdenflow_runtime.endpoints``; a test keeps the two equal)."""
    return home / "run" / "endpoints.json"


def local_token_file(home: Path) -> Path:
    return home / "api-token"


def _local() -> tuple[str | None, str | None]:
    home = local_home()
    url: str | None = None
    endpoints = local_endpoints(home)
    if endpoints.exists():
        try:
            url = json.loads(endpoints.read_text()).get("api_url")
        except (OSError, ValueError):
            url = None
        url = url or DEFAULT_LOCAL_URL
    token_file = local_token_file(home)
    token = None
    if token_file.exists():
        try:
            token = token_file.read_text().strip() or None
        except OSError:
            token = None
    return url, token


def token_from_command(command: str) -> str:
    try:
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, check=False, timeout=60)
    except FileNotFoundError as exc:
        raise CliError(MISSING_DEPENDENCY, f"token command not found: {command}") from exc
    except subprocess.TimeoutExpired as exc:
        raise CliError(USAGE, f"token command did not finish in 60 s: {command}") from exc
    if done.returncode != 0:
        raise CliError(USAGE, f"token command failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def profile_token(values: dict[str, str]) -> str | None:
    if token := values.get("token"):
        return token
    if var := values.get("token_env"):
        return os.environ.get(var) or None
    if command := values.get("token_command"):
        return token_from_command(command)
    return None


def resolve(profile: str | None = None, config: Config | None = None) -> Context:
    """The API and token this invocation uses (see the module docstring for the order)."""
    config = config or Config.load()
    env_url = os.environ.get("DEKSDENFLOW_API_URL") or None
    env_token = os.environ.get("DEKSDENFLOW_API_TOKEN") or None
    name = profile or os.environ.get("DEKSDENFLOW_PROFILE") or config.current
    if name:
        if name not in config.profiles:
            raise CliError(USAGE, f"no profile {name!r} (see `deksdenflow config list`)")
        values = config.profiles[name]
        url = env_url or values.get("url")
        if not url:
            raise CliError(USAGE, f"profile {name!r} has no url (`deksdenflow config set url URL`)")
        return Context(
            url, env_token or profile_token(values), "environment" if env_url else f"profile {name}"
        )
    local_url, local_token = _local()
    url = env_url or local_url
    if not url:
        raise CliError(
            USAGE,
            "no API to talk to: run `deksdenflow login --url URL`, set DEKSDENFLOW_API_URL, or start a "
            f"local system with `make run` (none found under {local_home()})",
        )
    return Context(url, env_token or local_token, "environment" if env_url else "local")
