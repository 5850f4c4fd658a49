"""What every worker does with the requests it takes from the log: run several consumer loops on one
shared durable consumer, dispatch each request to its job by one table, and append its results caused by
the request.

A worker is a :class:`Dispatcher` over :class:`Route` rows — request event type → job, and → how a
failure of that job is recorded. A job only raises: :class:`~deksdenflow_core.errors.WorkNotCurrent` is
acknowledged and logged here; any other error is settled by the consumer (``consumer.py``: a retryable
one is retried, anything else or retries exhausted goes to ``on_failure``, i.e. the route's ``fail``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, Repository
from deksdenflow_core.consumer import (
    ConsumerLoop,
    ConsumerSpec,
    Delivery,
    FailureHook,
    Handler,
    RetryHook,
    RetrySchedule,
)
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as rcmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import JobRetry
from deksdenflow_core.errors import DeksdenflowError, DomainError, WorkNotCurrent
from deksdenflow_core.eventstore import AppendMeta, JetStreamEventStore
from deksdenflow_core.redact import redact_url
from deksdenflow_core.subjects import Subjects
from deksdenflow_core.tracing import consumer_span, outgoing

log = structlog.get_logger("deksdenflow.jobs")

JobRunner = Callable[[Delivery, Any], Awaitable[None]]
# Records that the job failed for good, with the reason (appends the job's failure command).
FailureRecorder = Callable[[Delivery, Any, str], Awaitable[None]]

_REASON_LIMIT = 2000
_JOB_SECONDS_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)


@dataclass(frozen=True)
class Route:
    """One row of a worker's table: the request it takes, the job that does it, and how a failure of
    that job is recorded (None: nothing to record, the request simply ends)."""

    request: type[Any]
    run: JobRunner
    fail: FailureRecorder | None = None

    @property
    def event_type(self) -> str:
        event_type: str = self.request.EVENT_TYPE
        return event_type


class JobMetrics:
    """``deksdenflow_worker_jobs_total`` by type and outcome (``ok``, ``superseded``, ``error``,
    ``ignored``) and ``deksdenflow_worker_job_seconds`` by type, the same families in every worker."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs = Counter(
            "deksdenflow_worker_jobs_total",
            "Jobs by type and outcome",
            ["type", "outcome"],
            registry=registry,
        )
        self.job_seconds = Histogram(
            "deksdenflow_worker_job_seconds",
            "Job duration by type",
            ["type"],
            buckets=_JOB_SECONDS_BUCKETS,
            registry=registry,
        )

        self.in_progress = Gauge(
            "deksdenflow_worker_jobs_in_progress",
            "Jobs running now by type",
            ["type"],
            registry=registry,
        )

    def observe(self, kind: str, outcome: str, seconds: float) -> None:
        self.jobs.labels(kind, outcome).inc()
        self.job_seconds.labels(kind).observe(seconds)


class RetryNotices:
    """Records on the request's project or run that its job failed and when it is tried again
    (``project.job_retry_scheduled``, ``protocol_run.job_retry_scheduled``): the reads say why a
    project or run is not moving, instead of a log line nobody sees."""

    def __init__(self, repo: Repository, *, source: str, worker_id: str) -> None:
        self._repo = repo
        self._source = source
        self._worker_id = worker_id

    async def record(self, delivery: Delivery, exc: Exception, schedule: RetrySchedule) -> None:
        envelope = delivery.event.envelope
        failed_at_ms = int(time.time() * 1000)
        retry = JobRetry(
            job=envelope.type,
            request_event_id=envelope.id,
            step_run_id=getattr(delivery.event.event, "step_run_id", "") or "",
            delivery=schedule.delivered,
            max_deliveries=schedule.max_deliver,
            error=redact_url(failure_reason(exc)),
            failed_at_ms=failed_at_ms,
            next_try_at_ms=failed_at_ms + int(schedule.delay_seconds * 1000),
        )
        # One notice per failed delivery: a notice appended twice (a worker dying after it) is one.
        meta = AppendMeta(
            source=self._source,
            actor=f"worker:{self._worker_id}",
            correlation_id=envelope.correlation_id or envelope.aggregate_id,
            causation_id=f"{envelope.id}#retry-{schedule.delivered}",
        )
        try:
            if envelope.aggregate_type == PROJECT.aggregate_type:
                await self._repo.execute(
                    PROJECT, envelope.aggregate_id, pcmd.RecordProjectJobRetry(retry=retry), meta, redecide=3
                )
            elif envelope.aggregate_type == PROTOCOL_RUN.aggregate_type:
                await self._repo.execute(
                    PROTOCOL_RUN, envelope.aggregate_id, rcmd.RecordJobRetry(retry=retry), meta, redecide=3
                )
        except DomainError as exc_:
            log.info("retry notice not taken", reason=exc_.message)


class Dispatcher:
    """A worker's one table from request event to job and to its failure record."""

    def __init__(
        self,
        routes: Sequence[Route],
        metrics: JobMetrics,
        *,
        notices: RetryNotices | None = None,
        service: str = "worker",
    ) -> None:
        self._service = service
        self._routes: Mapping[type[Any], Route] = {route.request: route for route in routes}
        if len(self._routes) != len(routes):
            raise ValueError("two routes take the same request")
        self._metrics = metrics
        self._notices = notices

    def filter_subjects(self, subjects: Subjects) -> list[str]:
        """The consumer's filter on the feed: every request type of the table, and nothing else."""
        return [subjects.feed.of_type(route.event_type) for route in self._routes.values()]

    async def handle(self, delivery: Delivery) -> None:
        """Run the request's job; a request that is no longer current is acknowledged and logged."""
        event = delivery.event.event
        kind = type(event).__name__
        route = self._routes.get(type(event))
        started = time.perf_counter()
        outcome = "ok"
        envelope = delivery.event.envelope
        # The job's span: a child of the append that wrote the request (its traceparent), whatever is current.
        with consumer_span(
            self._service,
            f"job {envelope.type}",
            envelope.traceparent,
            {
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.message.id": envelope.id,
                "deksdenflow.event_type": envelope.type,
                "deksdenflow.delivery": delivery.num_delivered,
            },
        ) as span:
            running = self._metrics.in_progress.labels(kind)
            running.inc()
            try:
                if route is None:  # the filter lets nothing else through
                    outcome = "ignored"
                    return
                await route.run(delivery, event)
            except WorkNotCurrent as exc:
                outcome = "superseded"
                log.info("job dropped", reason=exc.message, job=kind)
            except BaseException:
                outcome = "error"
                raise
            finally:
                running.dec()
                self._metrics.observe(kind, outcome, time.perf_counter() - started)
                if span is not None:
                    span.set_attribute("deksdenflow.outcome", outcome)

    async def on_retry(self, delivery: Delivery, exc: Exception, schedule: RetrySchedule) -> None:
        """The job failed and comes again: say so on its project or run."""
        if self._notices is not None and type(delivery.event.event) in self._routes:
            await self._notices.record(delivery, exc, schedule)

    async def on_failure(self, delivery: Delivery, exc: Exception) -> None:
        """The job failed for good (permanent error or retries exhausted): record it, never leave it stuck."""
        event = delivery.event.event
        route = self._routes.get(type(event))
        if route is not None and route.fail is not None:
            await route.fail(delivery, event, failure_reason(exc))


def failure_reason(exc: BaseException) -> str:
    """What a failure event says: our errors' message, else the exception's type and text; bounded."""
    text = exc.message if isinstance(exc, DeksdenflowError) else f"{type(exc).__name__}: {exc}"
    return text[:_REASON_LIMIT]


class ConsumerPool:
    """``concurrency`` loops on one durable pull consumer of the feed (one message per event, so a
    request is found by its type wherever it stands in its decision): this process's share of a work
    queue that every replica pulls from (JetStream gives each message to one of them)."""

    def __init__(
        self,
        store: JetStreamEventStore,
        spec: ConsumerSpec,
        *,
        concurrency: int,
        on_failure: FailureHook,
        on_retry: RetryHook | None = None,
    ) -> None:
        self._loops = [
            ConsumerLoop(store.jetstream(), store.feed_stream, spec, on_failure=on_failure, on_retry=on_retry)
            for _ in range(concurrency)
        ]

    async def run(self, handler: Handler) -> None:
        await self._loops[0].ensure_consumer()
        await asyncio.gather(*(loop.run(handler) for loop in self._loops))

    def stop(self) -> None:
        for loop in self._loops:
            loop.stop()


def result_meta(delivery: Delivery, *, source: str, worker_id: str, aggregate_id: str) -> AppendMeta:
    """Metadata of a worker's append answering ``delivery``'s request.

    Causation is the request event, then ``#`` and what tells this append from the job's others: event
    ids derive from the causation, and two workers answering one request must never share ids.
    """
    envelope = delivery.event.envelope
    return AppendMeta(
        source=source,
        actor=f"worker:{worker_id}",
        correlation_id=envelope.correlation_id or aggregate_id,
        causation_id=f"{envelope.id}#{uuid.uuid4().hex[:12]}",
        # The job's span when spans are recorded, else the request's own: the trace goes on.
        traceparent=outgoing(envelope.traceparent),
    )
