"""The admission: queued protocol runs are admitted in order while the run limits allow.

With ``DEKSDENFLOW_MAX_ACTIVE_RUNS`` or ``DEKSDENFLOW_MAX_ACTIVE_RUNS_PER_PROJECT`` set, the API starts
every run as ``queued`` (``protocol_run.queued``). This job admits them (``AdmitProtocolRun`` →
``protocol_run.admitted`` and planning requested, in one decision) whenever something may have freed or
taken a slot: a run queued, completed, cancelled, blocked, failed to plan, paused or resumed — and once
when the worker starts.

Active runs are those planning, planned, running or paused (a paused run keeps its slot: resume goes on
at once); a blocked or failed run waits for a person and frees its slot (a retried one runs again even if
that goes over the limit for a while). Queued runs are admitted oldest first, the per-project limit
skipping a project's runs without holding back another project's.

Decisions must not be taken twice on the same counts, so a round:
* runs on its own durable consumer with one message in flight (``max_ack_pending=1``): one round at a
  time in the whole deployment, whatever the number of replicas;
* counts from the read model only once it has applied everything the log held when the round began —
  which includes every admission an earlier round appended.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import asyncpg
import structlog
from deksdenflow_core import tracing
from deksdenflow_core.aggregates import PROTOCOL_RUN, Repository
from deksdenflow_core.consumer import ConsumerSpec, Delivery
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import RunStatus
from deksdenflow_core.errors import DomainError, InfrastructureError
from deksdenflow_core.eventstore import AppendMeta, JetStreamEventStore
from deksdenflow_core.jobs import ConsumerPool
from deksdenflow_core.readmodel import PROJECTOR_NAME, SCHEMA
from deksdenflow_core.settings import RunLimits

log = structlog.get_logger("deksdenflow.git_ci_worker.admission")

# What may free or take a slot.
TRIGGERS: tuple[type, ...] = (
    ev.ProtocolRunQueued,
    ev.ProtocolRunCompleted,
    ev.ProtocolRunCancelled,
    ev.ProtocolRunBlocked,
    ev.PlanningFailed,
    ev.ProtocolRunPaused,
    ev.ProtocolRunResumed,
)
_ACTIVE = [s.value for s in (RunStatus.PLANNING, RunStatus.PLANNED, RunStatus.RUNNING, RunStatus.PAUSED)]
_RUNS = f'"{SCHEMA}".protocol_runs'
_CHECKPOINTS = f'"{SCHEMA}".checkpoints'


@dataclass(frozen=True)
class Admitted:
    run_id: str
    project_id: str
    active_in_project: int
    active_total: int


def admit(queued: list[tuple[str, str]], active: Counter[str], limits: RunLimits) -> list[Admitted]:
    """Which of ``queued`` (run, project; oldest first) to admit, given the active runs per project."""
    total = sum(active.values())
    out: list[Admitted] = []
    for run_id, project_id in queued:
        if limits.max_active_runs and total >= limits.max_active_runs:
            break
        in_project = active[project_id]
        if limits.max_active_runs_per_project and in_project >= limits.max_active_runs_per_project:
            continue
        out.append(Admitted(run_id, project_id, in_project, total))
        active[project_id] += 1
        total += 1
    return out


class Admission:
    """Admission rounds on the admission consumer (see the module)."""

    def __init__(
        self,
        repo: Repository,
        store: JetStreamEventStore,
        db_url: str,
        limits: RunLimits,
        *,
        durable: str,
        worker_id: str,
        catch_up_seconds: float = 30.0,
    ) -> None:
        self.repo = repo
        self.store = store
        self.db_url = db_url
        self.limits = limits
        self.worker_id = worker_id
        self.catch_up_seconds = catch_up_seconds
        self.spec = ConsumerSpec(
            durable=durable,
            filter_subjects=[store.subjects.feed.of_type(t.EVENT_TYPE) for t in TRIGGERS],  # type: ignore[attr-defined]
            batch=1,
            max_ack_pending=1,
            max_deliver=1000,
            backoff_seconds=(1.0, 2.0, 5.0),
        )
        self._pool = ConsumerPool(store, self.spec, concurrency=1, on_failure=self._failed)
        self.admitted = 0

    async def run(self) -> None:
        try:
            await self.round()  # runs queued before this worker started
        except InfrastructureError as exc:  # the next trigger admits them
            log.warning("first admission round failed", error=exc.message)
        await self._pool.run(self._handle)

    def stop(self) -> None:
        self._pool.stop()

    async def _handle(self, delivery: Delivery) -> None:
        envelope = delivery.event.envelope
        # A round is a job of the git worker: the runs it admits go on in the trace of what triggered it.
        with tracing.consumer_span(
            "git_ci_worker",
            f"admission {envelope.type}",
            envelope.traceparent,
            {"messaging.system": "nats", "messaging.operation.type": "process"},
        ):
            await self.round()

    async def _failed(self, delivery: Delivery, exc: Exception) -> None:
        log.warning("admission round failed", error=str(exc))

    async def round(self) -> list[Admitted]:
        """Admit what the limits allow now; what was admitted."""
        target = await self.store.stream_last_seq()
        conn = await asyncpg.connect(self.db_url)
        try:
            await self._caught_up(conn, target)
            active = Counter(
                {
                    r["project_id"]: r["n"]
                    for r in await conn.fetch(
                        f"""SELECT project_id, count(*) AS n FROM {_RUNS}
                            WHERE status = ANY($1::text[])
                              AND NOT (status = 'paused' AND paused_from = 'queued')
                            GROUP BY project_id""",
                        _ACTIVE,
                    )
                }
            )
            queued = [
                (r["id"], r["project_id"])
                for r in await conn.fetch(
                    f"SELECT id, project_id FROM {_RUNS} WHERE status = 'queued' ORDER BY updated_at, id"
                )
            ]
        finally:
            await conn.close()
        chosen = admit(queued, active, self.limits)
        for a in chosen:
            command = cmd.AdmitProtocolRun(active_in_project=a.active_in_project, active_total=a.active_total)
            meta = AppendMeta(
                source="git-ci-worker",
                actor=f"worker:{self.worker_id}",
                correlation_id=a.run_id,
                causation_id=f"admission/{a.run_id}",
            )
            try:
                await self.repo.execute(PROTOCOL_RUN, a.run_id, command, meta)
            except DomainError as exc:
                log.info("run not admitted", run=a.run_id, reason=exc.message)
                continue
            self.admitted += 1
            log.info("run admitted", run=a.run_id, project=a.project_id, active=a.active_total)
        return chosen

    async def _caught_up(self, conn: asyncpg.Connection, target: int) -> None:
        """Wait until the read model has applied the log up to ``target`` (bounded: a stalled projector
        makes the round fail and be retried, never decide on stale counts)."""
        deadline = time.monotonic() + self.catch_up_seconds
        while True:
            at = await conn.fetchval(f"SELECT last_seq FROM {_CHECKPOINTS} WHERE name = $1", PROJECTOR_NAME)
            if at is not None and at >= target:
                return
            if time.monotonic() >= deadline:
                raise InfrastructureError(
                    f"the read model is at {at}, behind the log's {target}: admission waits for it"
                )
            await asyncio.sleep(0.05)
