"""Where the CLI finds the API and its token: ``login`` profiles (0600, a token stored only from stdin),
``config``, ``DEKSDENFLOW_PROFILE``, environment overrides, and a local ``make run`` found by itself."""

from __future__ import annotations

import asyncio
import json
import stat
import tomllib
from pathlib import Path

from deksdenflow_cli.context import local_endpoints, local_token_file
from deksdenflow_runtime.endpoints import endpoints_file

from tests.api.conftest import ADMIN_TOKEN, System
from tests.cli.support import cli


def _config(home: Path) -> dict[str, object]:
    return tomllib.loads((home / "config" / "deksdenflow" / "config.toml").read_text())


async def test_login_keeps_a_token_from_stdin_in_a_private_file(system: System, tmp_path: Path) -> None:
    logged_in = await cli(
        None,
        tmp_path,
        "login",
        "--url",
        system.base_url,
        "--profile",
        "ci",
        token=None,
        stdin=ADMIN_TOKEN + "\n",
    )
    assert logged_in.code == 0, logged_in.stderr
    path = tmp_path / "config" / "deksdenflow" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _config(tmp_path) == {
        "current": "ci",
        "profiles": {"ci": {"url": system.base_url, "token": ADMIN_TOKEN}},
    }
    listed, url, profiles = await asyncio.gather(
        cli(None, tmp_path, "project", "list", "-o", "json", token=None),
        cli(None, tmp_path, "config", "get", "url", token=None),
        cli(None, tmp_path, "config", "list", "-o", "json", token=None),
    )
    assert (listed.code, listed.json()) == (0, [])
    assert url.stdout.strip() == system.base_url
    assert profiles.json() == [{"name": "ci", "current": True, "url": system.base_url, "token": "stored"}]
    assert ADMIN_TOKEN not in profiles.stdout + profiles.stderr


async def test_a_token_from_the_environment_is_never_written(system: System, tmp_path: Path) -> None:
    env = {"MY_TOKEN": ADMIN_TOKEN}
    ok = await cli(
        None, tmp_path, "login", "--url", system.base_url, "--token-env", "MY_TOKEN", token=None, **env
    )
    assert ok.code == 0, ok.stderr
    assert ADMIN_TOKEN not in (tmp_path / "config" / "deksdenflow" / "config.toml").read_text()
    refused = await cli(
        None, tmp_path, "login", "--url", system.base_url, "--profile", "bad", "--token-env", "MY_TOKEN",
        token=None, MY_TOKEN="wrong",
    )  # fmt: skip
    assert refused.code == 4
    assert "bad" not in _config(tmp_path)["profiles"]  # type: ignore[operator]
    # The profile is chosen by DEKSDENFLOW_PROFILE (an unknown one is a configuration error), and the
    # environment overrides its URL.
    by_env, unknown, overridden = await asyncio.gather(
        cli(None, tmp_path, "project", "list", token=None, DEKSDENFLOW_PROFILE="default", **env),
        cli(None, tmp_path, "project", "list", token=None, DEKSDENFLOW_PROFILE="nope", **env),
        cli(None, tmp_path, "project", "list", token=None, DEKSDENFLOW_API_URL="http://127.0.0.1:9", **env),
    )
    assert by_env.code == 0, by_env.stderr
    assert unknown.code == 2
    assert overridden.code == 7


async def test_a_local_make_run_is_found_by_itself(system: System, tmp_path: Path) -> None:
    home = tmp_path / "local"
    local_endpoints(home).parent.mkdir(parents=True)
    local_endpoints(home).write_text(json.dumps({"api_url": system.base_url}))
    local_token_file(home).write_text(ADMIN_TOKEN + "\n")
    found = await cli(None, tmp_path, "project", "list", "-o", "json", token=None)
    assert (found.code, found.json()) == (0, []), found.stderr


def test_the_client_reads_the_endpoints_file_the_runtime_writes(tmp_path: Path) -> None:
    assert local_endpoints(tmp_path) == endpoints_file(tmp_path)


async def test_completion_scripts_are_printed_for_each_shell(tmp_path: Path) -> None:
    bash, zsh, fish, completed = await asyncio.gather(
        *(cli(None, tmp_path, "completion", shell) for shell in ("bash", "zsh", "fish")),
        # What the bash script asks the command for when `deksdenflow protocol w<TAB>` is typed.
        cli(
            None,
            tmp_path,
            _DEKSDENFLOW_COMPLETE="bash_complete",
            COMP_WORDS="deksdenflow protocol w",
            COMP_CWORD="2",
        ),
    )
    assert completed.stdout.split() == ["plain,wait", "plain,watch"]
    assert "_DEKSDENFLOW_COMPLETE=bash_complete" in bash.stdout
    assert "compdef" in zsh.stdout
    assert "complete --no-files --command deksdenflow" in fish.stdout
