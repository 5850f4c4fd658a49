"""The codex worker: takes planning, execution and QA requests from the log and appends their results.

Jobs come from one durable pull consumer over the log's ``planning_requested``, ``step_execution_requested``
and ``qa_requested`` events, shared by every replica (each request goes to one of them). A job:

1. re-reads the run from the log and drops the request if it is no longer current (duplicate, stale,
   run paused or ended) — a paused run's work is requested again when it resumes;
2. records ownership (``…started`` with this worker's id), so a redelivered job is visibly taken over;
3. works in a fresh worktree of the protocol branch from the remote (no shared disk between replicas),
   while a watcher re-reads the run and stops the agent within a second of a pause or cancel;
4. commits with a trailer naming the job and pushes (never forced). A redelivered job first looks for
   that trailer on the remote: if the work was already pushed it is reported, not redone — so a worker
   killed at any point still yields one commit;
5. appends the result; the message is acked only after that (heartbeats keep it while the agent runs).

Agent calls are budgeted, their real usage recorded, transient engine failures retried with backoff
(``step_attempt_failed`` for executions), and results failing validation retried once, then reported
as failures with the reason.

Here is only the table from request to job (``jobs/``); what jobs share is in ``kit.py`` (the run, the
watch, the branch, the log) and ``agent_calls.py`` (engines, budgets, usage, retries).
"""

from __future__ import annotations

from deksdenflow_core.aggregates import Repository
from deksdenflow_core.consumer import ConsumerSpec
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.jobs import ConsumerPool, Dispatcher, RetryNotices
from deksdenflow_git import MirrorCache

from deksdenflow_codex_worker.agent_calls import AgentCalls
from deksdenflow_codex_worker.engines.registry import EngineRegistry
from deksdenflow_codex_worker.jobs.execution import ExecutionJob
from deksdenflow_codex_worker.jobs.planning import PlanningJob
from deksdenflow_codex_worker.jobs.qa import QaJob
from deksdenflow_codex_worker.kit import SOURCE, JobKit
from deksdenflow_codex_worker.metrics import WorkerMetrics
from deksdenflow_codex_worker.settings import WorkerSettings


class CodexWorker:
    """Consumes agent work requests; see the module docstring."""

    def __init__(
        self,
        store: JetStreamEventStore,
        settings: WorkerSettings,
        engines: EngineRegistry,
        mirrors: MirrorCache,
        *,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics or WorkerMetrics()
        repo = Repository(store, cache_size=1_000)
        kit = JobKit(repo, settings, mirrors)
        calls = AgentCalls(kit, store, settings, engines, self.metrics)
        self.dispatcher = Dispatcher(
            [
                PlanningJob(kit, calls, settings).route(),
                ExecutionJob(kit, calls, settings).route(),
                QaJob(kit, calls, settings, self.metrics).route(),
            ],
            self.metrics.job_metrics,
            notices=RetryNotices(repo, source=SOURCE, worker_id=settings.worker_id),
            service="codex_worker",
        )
        self.handle = self.dispatcher.handle
        self.on_failure = self.dispatcher.on_failure
        self._pool = ConsumerPool(
            store,
            self.spec(),
            concurrency=settings.codex_worker_concurrency,
            on_failure=self.on_failure,
            on_retry=self.dispatcher.on_retry,
        )

    def spec(self) -> ConsumerSpec:
        s = self.settings
        return ConsumerSpec(
            durable=s.codex_worker_durable,
            filter_subjects=self.dispatcher.filter_subjects(self.store.subjects),
            batch=1,
            max_deliver=s.codex_worker_max_deliver,
            backoff_seconds=s.backoff(),
            ack_wait_seconds=s.codex_worker_ack_wait_seconds,
            heartbeat_seconds=s.codex_worker_heartbeat_seconds,
            max_ack_pending=max(64, s.codex_worker_concurrency * 4),
        )

    async def run(self) -> None:
        """Run ``concurrency`` consumer loops on the shared durable until ``stop()``."""
        await self._pool.run(self.handle)

    def stop(self) -> None:
        self._pool.stop()
