"""The root command group, its options and what every command shares (click: nested groups, usage
errors exit 2, completion for bash, zsh and fish). The commands live in ``contexts``, ``projects`` and
``protocols``; ``app`` gathers them and runs them with the exit-code contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.shell_completion import get_completion_class

from deksdenflow_cli import exits
from deksdenflow_cli.client import Client
from deksdenflow_cli.context import resolve
from deksdenflow_cli.output import FORMATS

F = TypeVar("F", bound=Callable[..., Any])
PROG = "deksdenflow"


class State:
    """What the root group's options leave for the commands: the profile, and a client made on demand."""

    def __init__(self, profile: str | None) -> None:
        self.profile = profile
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(resolve(self.profile))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def output_options(func: F) -> F:
    func = click.option(
        "--field",
        "fields",
        multiple=True,
        metavar="PATH",
        help="Print only this dotted field (repeatable), e.g. --field status --field usage.cost_micro_usd.",
    )(func)
    return click.option(
        "-o",
        "--output",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format.",
    )(func)


def state() -> State:
    return click.get_current_context().ensure_object(State)


def note(message: str) -> None:
    """A line for people, on stderr."""
    click.echo(message, err=True)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    epilog="Also: `deksdenflow run | projector | demo | sample` (the local system), `deksdenflow qa` (the QA "
    "gate on a local checkout, no server: `deksdenflow qa --help`), `deksdenflow spec validate PATH` (a "
    "spec-kit feature folder, an OpenSpec change or a JSON plan, checked on the local disk, or --server), "
    "`deksdenflow spec show PROTOCOL | audit` (a run's stored plan; the spec audit). "
    "Exit codes: `deksdenflow help exit-codes`.",
)
@click.option(
    "--profile",
    envvar="DEKSDENFLOW_PROFILE",
    help="Profile of the config file to use (default: its current one) [env: DEKSDENFLOW_PROFILE].",
)
@click.pass_context
def cli(ctx: click.Context, profile: str | None) -> None:
    """deksdenflow: the terminal client of the deksdenflow API.

    The API and token come from DEKSDENFLOW_API_URL / DEKSDENFLOW_API_TOKEN, else the profile (see
    `deksdenflow login`), else a local `make run` found under DEKSDENFLOW_HOME (default ./.deksdenflow).
    """
    ctx.obj = State(profile)
    ctx.call_on_close(ctx.obj.close)


# --- help --------------------------------------------------------------------------------------------


@cli.command("help")
@click.argument("topic", required=False, type=click.Choice(["exit-codes"]))
@click.pass_context
def help_(ctx: click.Context, topic: str | None) -> None:
    """Help on a topic: exit-codes."""
    if topic == "exit-codes":
        click.echo(exits.exit_codes_text())
    else:
        assert ctx.parent is not None  # noqa: S101  # a subcommand always has its group
        click.echo(ctx.parent.get_help())


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: eval "$(deksdenflow completion bash)"."""
    cls = get_completion_class(shell)
    assert cls is not None  # noqa: S101  # the three shells click supports
    click.echo(cls(cli, {}, PROG, "_DEKSDENFLOW_COMPLETE").source())
