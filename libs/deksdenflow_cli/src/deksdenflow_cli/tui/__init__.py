"""``deksdenflow tui``: the command only; Textual is imported when it runs (``tui.app``), so the other
commands start without it."""

from __future__ import annotations

import click

from deksdenflow_cli.root import cli, state


@cli.command()
@click.argument("target", required=False, metavar="[PROJECT | PROTOCOL]")
def tui(target: str | None) -> None:
    """A terminal UI over the API, live from its event stream: projects, their runs, a run's steps and
    events, QA reports; every action on a key. Opens on PROJECT's runs or on PROTOCOL (PROJECT/NAME) if
    given. Inside: `?` keys and commands, `:` a command, `/` a filter, `q` or Ctrl+Q quits."""
    from deksdenflow_cli.tui.app import run  # noqa: PLC0415  # Textual loads for this command only

    run(state().client, target)
