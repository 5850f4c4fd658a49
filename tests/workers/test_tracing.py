"""One trace per command across the broker: the API's request, its append, the workers' jobs (parented on
the request's producer span through the events' ``traceparent``), their agent calls, git commands and
appends, and the projector's apply — spans of all four services in the trace of one ``start``.

The four services run in this process (the orchestra), so the SDK's in-memory exporter sees them all;
each span names its service in ``deksdenflow.service`` (a process's resource does in production).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest
from deksdenflow_core import tracing
from deksdenflow_core.consumer import Delivery
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.envelope import Envelope, RecordedEvent
from deksdenflow_core.jobs import result_meta
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.support import eventually
from tests.workers.conftest import Orchestra
from tests.workers.flow import register, wait_for
from tests.workers.scripts import protocol_script

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans recorded into memory for this test (the global provider can be set once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    tracing.enable()
    try:
        yield _EXPORTER
    finally:
        tracing.enable(False)
        _EXPORTER.clear()


def _service(span: ReadableSpan) -> str:
    return str((span.attributes or {}).get(tracing.SERVICE_ATTRIBUTE, ""))


def _orphans(finished: Sequence[ReadableSpan]) -> list[str]:
    """Consumer spans whose parent is not a recorded span (or that have none)."""
    ids = {s.context.span_id for s in finished if s.context is not None}
    return [
        s.name
        for s in finished
        if s.kind is SpanKind.CONSUMER and (s.parent is None or s.parent.span_id not in ids)
    ]


async def test_one_trace_per_command_across_every_service(
    spans: InMemorySpanExporter, orchestra: Orchestra
) -> None:
    o = orchestra
    o.write_script(protocol_script())
    o.start_codex_worker(o.worker_settings(auto_qa_after_exec=False))
    async with o.system.admin() as api:
        project = await register(api, o, run_policy={"pr": {"open": "after_first_push"}})
        created = await api.post(f"/projects/{project['id']}/protocols", json={"task_name": "Add greeting"})
        assert created.status_code == 201, created.text
        run = created.json()
        started = await api.post(f"/protocols/{run['id']}/actions/start")
        assert started.status_code == 200, started.text
        await wait_for(
            api, f"/protocols/{run['id']}", lambda r: r["waiting_for"] == "review", what="every step done"
        )

    requests = [
        s
        for s in spans.get_finished_spans()
        if s.kind is SpanKind.SERVER and s.name.startswith("POST /protocols/")
    ]
    assert len(requests) == 1, sorted(
        {s.name for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER}
    )
    root = requests[0]
    assert root.parent is None
    assert _service(root) == "api"
    trace_id = root.context.trace_id

    def in_trace() -> list[ReadableSpan]:
        return [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]

    names = {
        "api": "POST",
        "codex_worker": "job protocol_run.step_execution_requested",
        "git_ci_worker": "job protocol_run.pr_requested",
        "projector": "projector apply",
    }

    def every_service() -> bool:
        seen = {_service(s) for s in in_trace()}
        return seen >= set(names)

    await eventually(every_service, within=30, what="spans of the four services in the start's trace")
    await eventually(lambda: not _orphans(spans.get_finished_spans()), within=30, what="no orphan consumer")

    mine = in_trace()
    by_id = {s.context.span_id: s for s in mine}
    for service, prefix in names.items():
        assert any(_service(s) == service and s.name.startswith(prefix) for s in mine), (service, prefix)
    # What the step's job did is in the trace too: its agent calls, its git commands, its result's append.
    span_names = {s.name for s in mine}
    assert {"agent exec", "agent qa", "agent planning", "git push"} <= span_names, sorted(span_names)
    assert any(n.startswith("append protocol_run") for n in span_names)

    # Every job of the command descends from the request, through the appends that carried it.
    jobs = [s for s in mine if s.kind is SpanKind.CONSUMER]
    assert len(jobs) >= 7  # planning, 3 executions, 2 QA (one step skips it), the PR, the applies
    for job in jobs:
        chain = [job]
        while chain[-1].parent is not None:
            parent = by_id.get(chain[-1].parent.span_id)
            assert parent is not None, f"{job.name}: parent of {chain[-1].name} is not in the trace"
            chain.append(parent)
        assert chain[-1] is root, [s.name for s in chain]
        assert chain[1].kind is SpanKind.PRODUCER, [s.name for s in chain]  # parented on the append
    # A job's results continue the trace: a QA job's producer is a span of the execution job before it.
    qa_job = next(s for s in jobs if s.name == "job protocol_run.qa_requested")
    assert qa_job.parent is not None
    producer = by_id[qa_job.parent.span_id]
    assert producer.parent is not None
    assert by_id[producer.parent.span_id].name == "job protocol_run.step_execution_requested"


def test_without_spans_a_result_carries_its_cause_traceparent() -> None:
    """Propagation is on without an exporter: no span is made, the request's traceparent goes on."""
    assert not tracing.enabled()
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    envelope = Envelope(
        id="e1",
        type="protocol_run.qa_requested",
        source="test",
        time=datetime.now(UTC),
        project_id="p",
        aggregate_type="protocol_run",
        aggregate_id="r",
        traceparent=traceparent,
    )
    delivery = Delivery(RecordedEvent(envelope, ev.QaRequested(), 1), 1)
    meta = result_meta(delivery, source="test", worker_id="w", aggregate_id="r")
    assert meta.traceparent == traceparent
    with tracing.span("test", "nothing") as nothing:
        assert nothing is None
        assert tracing.current_traceparent() == ""
