"""The runtime's commands of ``deksdenflow``: ``run``, ``projector``, ``demo`` and ``sample`` (the local
system); every other command is the API client's (``deksdenflow_cli``, which talks to the public API
only), chosen by ``entry.py``.

Exit codes: 0 ok, 1 runtime error, 2 bad configuration or usage, 3 missing dependency (the client's full
contract: ``deksdenflow help exit-codes``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from deksdenflow_core.errors import ConfigurationError, DeksdenflowError, MissingDependency
from deksdenflow_core.logging import configure_logging, get_logger
from deksdenflow_core.settings import (
    ApiSettings,
    DatabaseSettings,
    EventStoreSettings,
    LogSettings,
    RuntimeSettings,
)
from pydantic import ValidationError

from deksdenflow_runtime import demo
from deksdenflow_runtime.endpoints import endpoints_file, read_endpoints
from deksdenflow_runtime.supervisor import Supervisor

EXIT_OK = 0
EXIT_RUNTIME_ERROR = 1
EXIT_BAD_CONFIGURATION = 2
EXIT_MISSING_DEPENDENCY = 3


def _error(message: str) -> None:
    print(f"deksdenflow: error: {message}", file=sys.stderr)


def _run(_: argparse.Namespace) -> int:
    """``deksdenflow run``: the whole system in the foreground until Ctrl-C."""
    try:
        runtime, api = RuntimeSettings(), ApiSettings()
        event_store, database, log_settings = EventStoreSettings(), DatabaseSettings(), LogSettings()
    except ValidationError as exc:
        _error(f"invalid configuration (DEKSDENFLOW_* environment variables):\n{exc}")
        return EXIT_BAD_CONFIGURATION
    configure_logging(log_settings, service="supervisor")
    try:
        return asyncio.run(Supervisor(runtime, api, event_store, database).run())
    except ConfigurationError as exc:
        _error(exc.message)
        return EXIT_BAD_CONFIGURATION
    except MissingDependency as exc:
        _error(exc.message)
        return EXIT_MISSING_DEPENDENCY
    except DeksdenflowError as exc:
        _error(exc.message)
        return EXIT_RUNTIME_ERROR
    except KeyboardInterrupt:  # only before the supervisor's own signal handlers are installed
        return EXIT_OK
    except Exception:
        get_logger(__name__).exception("unexpected failure")
        _error("unexpected failure (traceback above)")
        return EXIT_RUNTIME_ERROR


def _demo(_: argparse.Namespace) -> int:
    """``deksdenflow demo``: see ``deksdenflow_runtime.demo``."""
    return demo.main()


def _sample(args: argparse.Namespace) -> int:
    """``deksdenflow sample PATH``: a sample repository to register, runnable with no model."""
    origin = Path(args.path).expanduser().resolve()
    if origin.exists() and any(origin.iterdir()):
        _error(f"{origin} exists and is not empty: choose another path")
        return EXIT_BAD_CONFIGURATION
    try:
        demo.create_sample_repo(origin, with_script=True)
    except FileNotFoundError:
        _error("git is not installed")
        return EXIT_MISSING_DEPENDENCY
    except subprocess.CalledProcessError as exc:
        _error(f"git failed: {exc.stderr.decode(errors='replace').strip() if exc.stderr else exc}")
        return EXIT_RUNTIME_ERROR
    print(f"a sample repository is at {origin} (branch main; the scripted engine's answers in .deksdenflow/)")
    print(f"next: deksdenflow project create hello --git-url {origin} --engine scripted --pr-open never")
    return EXIT_OK


def _projector(args: argparse.Namespace) -> int:
    """``deksdenflow projector …``: the projector's own commands, next to a running system.

    Runs ``python -m deksdenflow_projector`` (services are not imported, only run) with the NATS and
    PostgreSQL of the system started by ``deksdenflow run`` in ``DEKSDENFLOW_HOME`` (as its ``tools`` NATS
    user, which may only read the log, and the PostgreSQL owner of the read model), unless
    ``DEKSDENFLOW_NATS_URL`` / ``DEKSDENFLOW_DB_URL`` say otherwise.
    """
    env = dict(os.environ)
    if not ("DEKSDENFLOW_NATS_URL" in env and "DEKSDENFLOW_DB_URL" in env):
        try:
            runtime = RuntimeSettings()
        except ValidationError as exc:
            _error(f"invalid configuration:\n{exc}")
            return EXIT_BAD_CONFIGURATION
        path = endpoints_file(runtime.home.expanduser().resolve())
        if not path.exists():
            _error(
                f"no running system found ({path} is missing): start it with `make run`, "
                "or set DEKSDENFLOW_NATS_URL and DEKSDENFLOW_DB_URL"
            )
            return EXIT_BAD_CONFIGURATION
        try:
            nats_url, db_url = read_endpoints(path)
        except PermissionError:
            _error(
                f"{path} (or the credentials it names) is not readable: run as the user that runs the system"
            )
            return EXIT_BAD_CONFIGURATION
        env.setdefault("DEKSDENFLOW_NATS_URL", nats_url)
        env.setdefault("DEKSDENFLOW_DB_URL", db_url)
    return subprocess.call([sys.executable, "-m", "deksdenflow_projector", *args.projector_args], env=env)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every subcommand sets ``handler``."""
    parser = argparse.ArgumentParser(
        prog="deksdenflow",
        description="deksdenflow: an event-sourced orchestrator of AI coding agents. "
        "Configuration comes from DEKSDENFLOW_* environment variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run NATS, PostgreSQL and every service in the foreground (Ctrl-C stops everything)",
        description="Start embedded NATS and PostgreSQL (unless DEKSDENFLOW_NATS_URL / DEKSDENFLOW_DB_URL "
        "are set) with their data under DEKSDENFLOW_HOME (default .deksdenflow/), then the API, the "
        "projector and the workers. Ctrl-C or SIGTERM stops everything.",
    )
    run.set_defaults(handler=_run)
    projector = commands.add_parser(
        "projector",
        help="read-model commands: migrate, rebuild [--no-swap] (against the running system)",
        description="Run a projector command (migrate | rebuild [--no-swap]) against the system started "
        "by `deksdenflow run`, or against DEKSDENFLOW_NATS_URL / DEKSDENFLOW_DB_URL.",
    )
    projector.add_argument("projector_args", nargs=argparse.REMAINDER, metavar="migrate|rebuild ...")
    projector.set_defaults(handler=_projector)
    demo = commands.add_parser(
        "demo",
        help="run one whole protocol on a sample repository and print its timeline (about a minute)",
        description="Start the system on free ports under DEKSDENFLOW_HOME/demo, register a sample git "
        "repository, run a protocol through planning, steps, QA and a draft PR with the scripted engine "
        "(DEKSDENFLOW_DEMO_ENGINE=codex for the real Codex CLI), print the timeline, and stop.",
    )
    demo.set_defaults(handler=_demo)
    sample = commands.add_parser(
        "sample",
        help="make a sample git repository to register (a bare origin; runs with --engine scripted)",
        description="Create a bare git repository at PATH whose main branch holds a tiny Python project and "
        "the scripted engine's answers for the task 'Add a greeting', so a first protocol runs with no model "
        "and no credentials (see the README's first session).",
    )
    sample.add_argument("path", metavar="PATH", help="where to create it (must not exist, or be empty)")
    sample.set_defaults(handler=_sample)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``run``, ``projector`` or ``demo``; returns the exit code (argparse exits 2 itself)."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
