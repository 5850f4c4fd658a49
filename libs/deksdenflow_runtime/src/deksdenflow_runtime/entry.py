"""The ``deksdenflow`` console script: ``run``, ``projector``, ``demo`` and ``sample`` are the runtime's
(``cli.py``), ``qa`` is the QA gate's (``qa.py`` hands it over to the codex worker's package), ``spec`` reads
specs on the local disk (``spec.py``), every other command the API client's (``deksdenflow_cli``).

Only the side that runs is imported: the client starts without loading the supervisor, NATS or
PostgreSQL drivers, which keeps each of its commands quick.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

LOCAL_COMMANDS = frozenset({"run", "projector", "demo", "sample"})


def main(argv: Sequence[str] | None = None) -> int:
    """Hand the command to the runtime or to the client (a bare ``deksdenflow`` and ``--help`` too, and
    the shell completion requests, which come with no arguments); returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["spec"]:
        from deksdenflow_runtime import spec  # noqa: PLC0415  # local files only: no server, no client

        return spec.main(arguments[1:])
    if arguments[:1] == ["qa"]:
        from deksdenflow_runtime import qa  # noqa: PLC0415  # nothing else is needed to hand it over

        return qa.main(arguments[1:])
    if arguments and arguments[0] in LOCAL_COMMANDS:
        from deksdenflow_runtime import cli  # noqa: PLC0415  # the runtime's imports only when it runs

        return cli.main(arguments)
    from deksdenflow_cli import app  # noqa: PLC0415  # and the client's only for its commands

    return app.main(arguments)


if __name__ == "__main__":
    sys.exit(main())
