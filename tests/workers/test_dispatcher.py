"""A worker's table on its own: each request goes to its route's job, the outcome is counted, and a job
that failed for good is recorded by its route's ``fail`` with the reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from deksdenflow_core.consumer import Delivery
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.envelope import Envelope, RecordedEvent
from deksdenflow_core.errors import PermanentFailure, WorkNotCurrent
from deksdenflow_core.jobs import Dispatcher, JobMetrics, Route
from deksdenflow_core.subjects import Subjects
from prometheus_client import CollectorRegistry


def delivery(event: Any) -> Delivery:
    envelope = Envelope(
        id="e1",
        type=type(event).EVENT_TYPE,
        source="test",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        project_id="p1",
        aggregate_type="protocol_run",
        aggregate_id="r1",
    )
    return Delivery(RecordedEvent(envelope, event, stream_seq=1), num_delivered=1)


class Table:
    """A dispatcher over a planning route (with a failure record) and a QA route (without)."""

    def __init__(self) -> None:
        self.ran: list[Any] = []
        self.failed: list[tuple[Any, str]] = []
        self.raise_: BaseException | None = None
        self.metrics = JobMetrics(CollectorRegistry())
        self.dispatcher = Dispatcher(
            [Route(ev.PlanningRequested, self.run, self.fail), Route(ev.QaRequested, self.run)], self.metrics
        )

    async def run(self, d: Delivery, event: Any) -> None:
        assert d.event.event is event
        self.ran.append(event)
        if self.raise_ is not None:
            raise self.raise_

    async def fail(self, d: Delivery, event: Any, reason: str) -> None:
        assert d.event.event is event
        self.failed.append((event, reason))

    def count(self, kind: str, outcome: str) -> float:
        value: float = self.metrics.jobs.labels(kind, outcome)._value.get()
        return value


async def test_a_request_goes_to_its_job_and_counts_as_ok() -> None:
    t = Table()
    request = ev.PlanningRequested(attempt=2)
    await t.dispatcher.handle(delivery(request))
    assert t.ran == [request]
    assert t.count("PlanningRequested", "ok") == 1


async def test_a_request_without_a_route_is_ignored() -> None:
    t = Table()
    await t.dispatcher.handle(delivery(ev.StepExecutionRequested(step_run_id="s1")))
    assert t.ran == []
    assert t.count("StepExecutionRequested", "ignored") == 1


async def test_work_no_longer_current_is_dropped_as_superseded() -> None:
    t = Table()
    t.raise_ = WorkNotCurrent("run r1 is now cancelled")
    await t.dispatcher.handle(delivery(ev.QaRequested(step_run_id="s1")))  # returns: acked by the consumer
    assert t.count("QaRequested", "superseded") == 1


async def test_any_other_error_goes_to_the_consumer_and_counts_as_error() -> None:
    t = Table()
    t.raise_ = PermanentFailure("push refused")
    with pytest.raises(PermanentFailure):
        await t.dispatcher.handle(delivery(ev.PlanningRequested(attempt=1)))
    assert t.count("PlanningRequested", "error") == 1
    assert t.count("PlanningRequested", "ok") == 0


async def test_a_failure_is_recorded_by_the_routes_fail_with_the_reason() -> None:
    t = Table()
    request = ev.PlanningRequested(attempt=1)
    await t.dispatcher.on_failure(delivery(request), PermanentFailure("budget: too much"))
    await t.dispatcher.on_failure(delivery(request), ValueError("x" * 3000))
    assert t.failed[0] == (request, "budget: too much")
    assert t.failed[1][1] == ("ValueError: " + "x" * 3000)[:2000]


async def test_a_failure_of_a_route_without_a_record_or_of_no_route_records_nothing() -> None:
    t = Table()
    await t.dispatcher.on_failure(delivery(ev.QaRequested(step_run_id="s1")), PermanentFailure("no"))
    await t.dispatcher.on_failure(
        delivery(ev.StepExecutionRequested(step_run_id="s1")), PermanentFailure("no")
    )
    assert t.failed == []


def test_the_consumer_filter_is_the_tables_requests_and_one_request_has_one_route() -> None:
    t = Table()
    assert t.dispatcher.filter_subjects(Subjects("t1")) == [
        "t1.feed.*.protocol_run.*.planning_requested",
        "t1.feed.*.protocol_run.*.qa_requested",
    ]
    with pytest.raises(ValueError, match="two routes take the same request"):
        Dispatcher([Route(ev.QaRequested, t.run), Route(ev.QaRequested, t.run)], t.metrics)
