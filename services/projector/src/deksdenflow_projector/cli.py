"""``deksdenflow-projector run | migrate | rebuild`` (also ``python -m deksdenflow_projector``).

Exit codes: 0 ok, 1 runtime error, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import sys

import asyncpg
import uvloop
from deksdenflow_core.errors import DeksdenflowError
from deksdenflow_core.eventstore import JetStreamEventStore, connect
from deksdenflow_core.logging import configure_logging
from deksdenflow_core.settings import DatabaseSettings, EventStoreSettings, LogSettings
from pydantic import ValidationError

from deksdenflow_projector.main import main as serve
from deksdenflow_projector.main import tune_gc
from deksdenflow_projector.migrate import current_revision, head_revision, migrate
from deksdenflow_projector.rebuild import rebuild


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deksdenflow-projector", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="consume the event log into the read model (the service)")
    migrate_parser = sub.add_parser("migrate", help="bring the read-model schema to the latest migration")
    migrate_parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing: exit 0 if the schema is at this release's latest migration, else 1 "
        "(what a projector waits on while a migration Job runs)",
    )
    rebuild = sub.add_parser(
        "rebuild", help="replay the log from sequence 1 into fresh tables and swap them in"
    )
    rebuild.add_argument(
        "--no-swap", action="store_true", help="build the fresh tables but keep serving the old"
    )
    rebuild.add_argument(
        "--parts",
        type=int,
        default=None,
        help="processes that replay the log (default: one per core, up to 4, for a large log)",
    )
    return parser


async def _rebuild(no_swap: bool, parts: int | None) -> None:
    es = EventStoreSettings()
    nc = await connect(es, name="deksdenflow-projector-rebuild")
    try:
        store = JetStreamEventStore(nc, es)
        report = await rebuild(DatabaseSettings().db_url, store, swap=not no_swap, parts=parts)
    finally:
        await nc.drain()
    print(
        f"rebuilt {report.events} events up to sequence {report.checkpoint} in {report.seconds:.2f}s "
        f"({report.events_per_second:,.0f} events/s){'' if no_swap else '; swapped in'}"
    )


def _check_migrated() -> int:
    """``migrate --check``: 0 when the read model stands at this release's latest migration, else 1."""
    head = head_revision()
    try:
        current = uvloop.run(current_revision(DatabaseSettings().db_url))
    except (OSError, asyncpg.PostgresError) as exc:  # not up yet: the caller asks again
        print(f"read model not reachable ({type(exc).__name__}); this release's latest: {head}")
        return 1
    print(f"read model at {current or 'no migration'}; this release's latest: {head}")
    return 0 if current == head else 1


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.command in (None, "run"):
            sys.exit(serve())
        elif args.command == "migrate" and args.check:
            sys.exit(_check_migrated())
        elif args.command == "migrate":
            configure_logging(LogSettings(), service="projector")
            migrate(DatabaseSettings().db_url)
            print("read model migrated")
        else:
            configure_logging(LogSettings(), service="projector")
            tune_gc()  # as the service does: a replay allocates as much as a catch-up
            uvloop.run(_rebuild(args.no_swap, args.parts))  # as the service runs (through uvicorn)
    except ValidationError as exc:
        print(f"bad configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    except DeksdenflowError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
