"""One trace per command across the broker (OpenTelemetry).

Every event carries a W3C ``traceparent`` in its envelope (a header in binary mode, an attribute of each
event in batched mode, see ``envelope``), so the trace crosses JetStream with the events:

* the API's request span (FastAPI instrumentation) → the append's ``PRODUCER`` span, whose context
  becomes the ``traceparent`` of every event of the decision;
* a worker's job span (``CONSUMER``) is a child of that producer span, and what the job does — agent
  calls, git commands, the appends of its results — are its children: the results' ``traceparent`` is the
  job's, so the next worker's job continues the same trace;
* the projector's apply span (``CONSUMER``) is a child of the producer span of the events it applied.

**Configuration** is OpenTelemetry's own: :func:`configure` installs the SDK with an OTLP/HTTP exporter
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, or
``OTEL_TRACES_EXPORTER`` names ``otlp`` or ``console``; ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_EXPORTER_OTLP_HEADERS``… apply as everywhere. ``OTEL_SDK_DISABLED=true``
or ``OTEL_TRACES_EXPORTER=none`` turn it off.

**Without an exporter no span is made** (:func:`enabled` is False and every helper here returns at once),
but propagation stays on: an effect's events carry its cause's ``traceparent`` unchanged (:func:`outgoing`),
so a trace begun by a caller still reaches every event it caused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SERVICE_ATTRIBUTE = "deksdenflow.service"
_PROPAGATOR = TraceContextTextMapPropagator()
_state = {"enabled": False}


def enabled() -> bool:
    """Whether spans are recorded (an SDK with an exporter is installed); False: propagation only."""
    return _state["enabled"]


def enable(on: bool = True) -> None:
    """Record spans through the global tracer provider (tests install one with an in-memory exporter)."""
    _state["enabled"] = on


def _exporter_configured(env: Mapping[str, str]) -> str:
    """Which exporter the OTEL_* variables ask for: ``otlp``, ``console`` or "" (none)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ""
    named = [e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    if "none" in named:
        return ""
    if "console" in named:
        return "console"
    if (
        "otlp" in named
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return "otlp"
    return ""


def configure(service: str, env: Mapping[str, str] | None = None) -> bool:
    """Install the SDK for ``service`` when the OTEL_* variables configure an exporter; True if so."""
    env = os.environ if env is None else env
    exporter = _exporter_configured(env)
    if not exporter:
        return False
    # Imported here: a process without an exporter never loads the SDK.
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    attributes: dict[str, Any] = {SERVICE_ATTRIBUTE: service}
    if not env.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = f"deksdenflow-{service}"
    provider = TracerProvider(resource=Resource.create(attributes))
    span_exporter: SpanExporter
    if exporter == "console":
        span_exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        span_exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    enable()
    return True


def tracer(service: str) -> trace.Tracer:
    """The tracer of one part (``api``, ``codex_worker``, ``git_ci_worker``, ``projector``, ``git``…)."""
    return trace.get_tracer(f"deksdenflow.{service}")


def context_of(traceparent: str) -> Context:
    """The context a ``traceparent`` names (an empty one for an empty or malformed value)."""
    return _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else Context()


def current_traceparent() -> str:
    """The ``traceparent`` of the current span ("" when there is none)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")


def outgoing(cause: str) -> str:
    """The ``traceparent`` an effect's events carry: the current span's when spans are recorded, else
    the cause's, unchanged (propagation without spans)."""
    if enabled():
        return current_traceparent() or cause
    return cause


def _has_current_span() -> bool:
    return trace.get_current_span().get_span_context().is_valid


@contextmanager
def span(
    service: str,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: str = "",
    attributes: Mapping[str, Any] | None = None,
    links: Sequence[str] = (),
) -> Iterator[Span | None]:
    """A span of ``service`` around the block (None, and nothing recorded, unless :func:`enabled`).

    ``parent``: a ``traceparent`` to parent the span on when no span is current (a consumer's producer).
    An exception leaving the block marks the span as an error.
    """
    if not enabled():
        yield None
        return
    context = None if (not parent or _has_current_span()) else context_of(parent)
    span_links = [Link(ctx) for tp in links if (ctx := _span_context(tp)) is not None]
    with tracer(service).start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes={SERVICE_ATTRIBUTE: service, **(attributes or {})},
        links=span_links,
        record_exception=True,
        set_status_on_exception=True,
    ) as current:
        yield current


@contextmanager
def child_span(service: str, name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span | None]:
    """An ``INTERNAL`` span inside the current one (an agent call, a git command); none outside a span, so
    that housekeeping (a scheduler's round, a test's own git) starts no trace of its own."""
    if not enabled() or not _has_current_span():
        yield None
        return
    with span(service, name, attributes=attributes) as current:
        yield current


@contextmanager
def consumer_span(
    service: str, name: str, traceparent: str, attributes: Mapping[str, Any] | None = None
) -> Iterator[Span | None]:
    """A ``CONSUMER`` span for handling one delivered event: a child of the span that produced it
    (its ``traceparent``), whatever is current, so a job never starts a trace of its own when its cause
    had one."""
    if not enabled():
        yield None
        return
    with tracer(service).start_as_current_span(
        name,
        context=context_of(traceparent),
        kind=SpanKind.CONSUMER,
        attributes={SERVICE_ATTRIBUTE: service, **(attributes or {})},
        record_exception=True,
        set_status_on_exception=True,
    ) as current:
        yield current


def record_applied(
    service: str, name: str, traceparents: Mapping[str, int], start_ns: int, end_ns: int
) -> None:
    """One finished ``CONSUMER`` span per trace among ``traceparents`` (→ events of it), from ``start_ns``
    to ``end_ns``: a batch handler's work (the projector's apply), in each trace it served."""
    if not enabled():
        return
    t = tracer(service)
    for traceparent, count in traceparents.items():
        if not traceparent:
            continue
        applied = t.start_span(
            name,
            context=context_of(traceparent),
            kind=SpanKind.CONSUMER,
            attributes={SERVICE_ATTRIBUTE: service, "messaging.batch.message_count": count},
            start_time=start_ns,
        )
        applied.end(end_time=end_ns)


def mark_error(current: Span | None, message: str) -> None:
    """Mark ``current`` (if recording) as failed with ``message``."""
    if current is not None:
        current.set_status(Status(StatusCode.ERROR, message[:200]))


def _span_context(traceparent: str) -> trace.SpanContext | None:
    ctx = trace.get_current_span(context_of(traceparent)).get_span_context()
    return ctx if ctx.is_valid else None
