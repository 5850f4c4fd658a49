"""The lost-work requeue: requests of every worker that no worker has and none will get, asked for again.

A worker that took a request and died after the message was settled leaves its run waiting for an answer
that never comes. Each round (``scheduler.py``), while every worker consumer named in
``requeue_consumers`` is idle (nothing pending, nothing being worked on: no worker has the request, none
will get it), each run with work in flight (planning, a PR/MR asked for, a step executing, a QA or a CI
fix pending) that has not changed for ``requeue_after_seconds`` gets ``RequeueLostWork``, and ``decide``
asks for that work again.

Where it runs: in the git/CI worker process, as a sweep of the same elected round as the forge
reconciliation (``worker.make_scheduler``). Why there: that process already holds what the requeue needs
(the read model's URL and the event store) and runs the rounds anyway, and the round's one advisory lock
keeps it to one replica at a time; a process of its own would add a deployment for a loop that is idle
almost always. It knows nothing of forges or git, so it can move to any process that has both.
"""

from __future__ import annotations

import asyncpg
from deksdenflow_core.aggregates import PROTOCOL_RUN, Repository
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.domain.protocol_run import RunStatus
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.readmodel import SCHEMA
from deksdenflow_core.readmodel.tables import PROTOCOL_RUNS
from nats.js.errors import NotFoundError

from deksdenflow_git_ci_worker.scheduler import Round, record_on_run
from deksdenflow_git_ci_worker.settings import GitCiSettings

_RUNS = f'"{SCHEMA}".{PROTOCOL_RUNS.name}'
# Runs that may have work in flight that no worker has.
_LIVE_STATUSES = [
    s.value for s in (RunStatus.PLANNING, RunStatus.PLANNED, RunStatus.RUNNING, RunStatus.BLOCKED)
]


class LostWorkRequeue:
    """The requeue sweep of a scheduler round."""

    def __init__(self, repo: Repository, store: JetStreamEventStore, settings: GitCiSettings) -> None:
        self.repo = repo
        self.store = store
        self.settings = settings

    async def sweep(self, conn: asyncpg.Connection, done: Round) -> None:
        if not await self._workers_idle():
            return
        rows = await conn.fetch(
            f"""SELECT id FROM {_RUNS}
                WHERE status = ANY($2::text[])
                  AND updated_at < now() - make_interval(secs => $1)""",
            self.settings.requeue_after_seconds,
            _LIVE_STATUSES,
        )
        for row in rows:
            run = (await self.repo.load(PROTOCOL_RUN, row["id"])).state
            in_flight = (
                run.status is RunStatus.PLANNING
                or run.pr_requested
                or run.pr_ready_requested
                or (run.merge_requested and not run.merge_scheduled)
                or any(s.executing or s.qa_pending or s.ci_fix_pending for s in run.steps)
            )
            if not in_flight:
                continue
            reason = f"no worker had this run's requests for {self.settings.requeue_after_seconds:.0f} s"
            requeue = cmd.RequeueLostWork(reason=reason)
            if await record_on_run(self.repo, self.settings.worker_id, run.protocol_run_id, requeue, done):
                done.requeued += 1

    async def _workers_idle(self) -> bool:
        """Every worker consumer exists and has nothing to deliver and nothing being worked on."""
        durables = [d for d in self.settings.requeue_consumers.split(",") if d]
        if not durables:
            return False
        js = self.store.jetstream()
        for durable in durables:
            try:
                info = await js.consumer_info(self.store.feed_stream, durable)
            except NotFoundError:
                return False
            if info.num_pending or info.num_ack_pending:
                return False
        return True
