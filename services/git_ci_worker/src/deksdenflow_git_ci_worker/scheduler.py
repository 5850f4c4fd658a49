"""The scheduler: periodic rounds for what no message will ever ask for.

Every ``reconcile_interval_seconds`` one replica (a PostgreSQL advisory lock elects it per round) runs the
round's sweeps in order. The git/CI worker composes them (``worker.py``):

* the forge reconciliation (``jobs/forge_reconciler.py``): CI and PR/MR states GitHub and GitLab never
  told us about;
* the lost-work requeue (``requeue.py``): requests of *every* worker that no worker has and none will get.

Sweeps take their candidates from the read model; every decision is taken on the run folded from the log,
through ``decide``, so a stale row costs a look, never a wrong transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
import structlog
from deksdenflow_core.aggregates import PROTOCOL_RUN, Repository
from deksdenflow_core.domain.protocol_run import ProtocolRunCommand
from deksdenflow_core.errors import DeksdenflowError, DomainError
from deksdenflow_core.eventstore import AppendMeta

log = structlog.get_logger("deksdenflow.git_ci_worker.reconcile")
SOURCE = "git-ci-worker/reconciler"
_LOCK = "deksdenflow-reconciler"


@dataclass
class Round:
    """What one round did (for logs, metrics and tests)."""

    elected: bool = False
    ci_checked: int = 0
    ci_reported: int = 0
    prs_checked: int = 0
    prs_recorded: int = 0
    requeued: int = 0
    errors: list[str] = field(default_factory=list)


# One part of a round: looks at the read model through the connection, counts what it did in the round.
Sweep = Callable[[asyncpg.Connection, Round], Awaitable[None]]


class Scheduler:
    """Runs its sweeps every ``interval`` seconds in the replica that holds the round's advisory lock."""

    def __init__(self, db_url: str, interval: float, sweeps: Sequence[Sweep]) -> None:
        self.db_url = db_url
        self.interval = interval
        self.sweeps = list(sweeps)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                done = await self.round()
                if done.ci_reported or done.prs_recorded or done.requeued or done.errors:
                    log.info("reconciled", **{k: v for k, v in done.__dict__.items() if v})
            except Exception as exc:  # a bad round must not end the scheduler
                log.warning("reconciliation round failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def round(self) -> Round:
        done = Round()
        conn: asyncpg.Connection = await asyncpg.connect(self.db_url)
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", _LOCK):
                return done  # another replica has this round
            done.elected = True
            try:
                for sweep in self.sweeps:
                    await sweep(conn, done)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", _LOCK)
        finally:
            await conn.close()
        return done


async def record_on_run(
    repo: Repository, worker_id: str, run_id: str, command: ProtocolRunCommand, done: Round
) -> bool:
    """Execute a sweep's command on the run; whether it appended anything (a refusal is logged, any other
    error counted in ``done.errors``: the next round looks again)."""
    meta = AppendMeta(
        source=SOURCE,
        actor=f"worker:{worker_id}",
        correlation_id=run_id,
        causation_id=f"reconcile/{run_id}/{uuid.uuid4().hex[:12]}",
    )
    try:
        outcome = await repo.execute(PROTOCOL_RUN, run_id, command, meta, redecide=3)
    except DomainError as exc:
        log.info("reconciliation not taken by the run", run=run_id, reason=exc.message)
        return False
    except DeksdenflowError as exc:
        done.errors.append(f"{run_id}: {exc.message}")
        return False
    return bool(outcome.appended.events)
