"""``login`` and ``config``: named profiles of API URL and token source (``config.py`` has the file)."""

from __future__ import annotations

import sys

import click

from deksdenflow_cli.client import Client
from deksdenflow_cli.config import PROFILE_KEYS, Config, config_file, file_key
from deksdenflow_cli.context import Context, profile_token, resolve
from deksdenflow_cli.exits import USAGE, CliError
from deksdenflow_cli.output import render
from deksdenflow_cli.root import cli, note, output_options, state


@cli.command()
@click.option("--url", required=True, help="The API's base URL, e.g. http://127.0.0.1:8010.")
@click.option("--profile", "name", default="default", show_default=True, help="The profile to write.")
@click.option("--token-env", metavar="VAR", help="Read the token from this environment variable each time.")
@click.option("--token-command", metavar="CMD", help="Run this command (no shell) for the token each time.")
def login(url: str, name: str, token_env: str | None, token_command: str | None) -> None:
    """Save a profile and make it the current one; the token is checked against the API.

    Without --token-env or --token-command the token is read from stdin and stored in the config file
    (mode 0600).
    """
    if token_env and token_command:
        raise CliError(USAGE, "give --token-env or --token-command, not both")
    values = {"url": url.rstrip("/")}
    if token_env:
        values["token_env"] = token_env
    elif token_command:
        values["token_command"] = token_command
    else:
        if sys.stdin.isatty():
            token = click.prompt("API token", hide_input=True, err=True)
        else:
            token = sys.stdin.read()
        token = token.strip()
        if not token:
            raise CliError(USAGE, "no token on stdin (or give --token-env VAR / --token-command CMD)")
        values["token"] = token
    client = Client(Context(values["url"], profile_token(values), f"profile {name}"))
    try:
        client.call("project.list", params={"limit": 1})
    finally:
        client.close()
    config = Config.load()
    config.profiles[name] = values
    config.current = name
    path = config.save()
    note(f"logged in to {values['url']}; profile {name!r} saved in {path} and made current")


@cli.group()
def config() -> None:
    """Profiles in $XDG_CONFIG_HOME/deksdenflow/config.toml (default ~/.config)."""


def _profile_name(config: Config, given: str | None) -> str:
    name = given or state().profile or config.current
    if not name:
        raise CliError(USAGE, "no current profile: `deksdenflow login` or `deksdenflow config use-profile`")
    return name


@config.command("get")
@click.argument("key", type=click.Choice(PROFILE_KEYS))
@click.option("--profile", "name", help="The profile (default: the current one).")
def config_get(key: str, name: str | None) -> None:
    """Print one setting of a profile."""
    cfg = Config.load()
    profile = _profile_name(cfg, name)
    value = cfg.profiles.get(profile, {}).get(file_key(key))
    if value is None:
        raise CliError(USAGE, f"{key} is not set in profile {profile!r}")
    click.echo(value)


@config.command("set")
@click.argument("key", type=click.Choice(PROFILE_KEYS))
@click.argument("value")
@click.option("--profile", "name", help="The profile (default: the current one; created if new).")
def config_set(key: str, value: str, name: str | None) -> None:
    """Set one setting of a profile (a token is only ever stored by `login` from stdin)."""
    cfg = Config.load()
    profile = _profile_name(cfg, name)
    values = cfg.profiles.setdefault(profile, {})
    values[file_key(key)] = value
    if key in ("token-env", "token-command"):  # one token source at a time
        for other in ("token", "token_env", "token_command"):
            if other != file_key(key):
                values.pop(other, None)
    cfg.current = cfg.current or profile
    cfg.save()


@config.command("use-profile")
@click.argument("name")
def config_use_profile(name: str) -> None:
    """Make a profile the current one."""
    cfg = Config.load()
    if name not in cfg.profiles:
        raise CliError(USAGE, f"no profile {name!r} (profiles: {', '.join(sorted(cfg.profiles)) or 'none'})")
    cfg.current = name
    cfg.save()


@config.command("list")
@output_options
def config_list(output: str, fields: tuple[str, ...]) -> None:
    """The profiles (tokens are never printed), and what this shell would use now."""
    cfg = Config.load()
    rows = [
        {
            "name": name,
            "current": name == cfg.current,
            "url": values.get("url"),
            "token": "stored"
            if "token" in values
            else f"${values['token_env']}"
            if "token_env" in values
            else f"$({values['token_command']})"
            if "token_command" in values
            else None,
        }
        for name, values in sorted(cfg.profiles.items())
    ]
    render(rows, output, columns=("name", "current", "url", "token"), fields=fields, many=True)
    if output == "table":
        try:
            active = resolve(state().profile, cfg)
            note(f"config: {config_file()}; in use: {active.url} ({active.source})")
        except CliError as exc:
            note(f"config: {config_file()}; {exc.message}")
