"""The ``deksdenflow`` client's entry point: every command, run with the exit-code contract of ``exits.py``.

An API error becomes its exit code with the API's message on stderr, a usage error 2, Ctrl-C 130; data
alone goes to stdout.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from deksdenflow_cli import contexts, evaluations, exits, projects, protocols, tui, usage
from deksdenflow_cli.exits import CliError
from deksdenflow_cli.root import PROG, cli, note

# Imported for their commands, which they add to `cli`.
COMMAND_MODULES = (contexts, projects, protocols, usage, evaluations, tui)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (the contract in ``exits.py``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name=PROG, standalone_mode=False)
    except CliError as exc:
        note(f"{PROG}: error: {exc.message}")
        return exc.code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:  # usage errors and bad parameters: 2
        exc.show()
        return exits.USAGE if exc.exit_code == 2 else exc.exit_code
    except (KeyboardInterrupt, click.Abort):
        note(f"{PROG}: interrupted")
        return exits.INTERRUPTED
    except BrokenPipeError:  # `deksdenflow … | head`: the reader is gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exits.OK
    return exits.OK
