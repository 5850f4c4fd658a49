"""Turning an HTTP request into appended events: metadata, metrics, and the sequence header."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from deksdenflow_core.aggregates import AggregateKind, Outcome
from deksdenflow_core.errors import ConcurrencyConflict
from deksdenflow_core.eventstore import AppendMeta
from fastapi import Request, Response

from deksdenflow_api.auth import Principal
from deksdenflow_api.context import ApiContext

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E")

SEQUENCE_HEADER = "X-Event-Sequence"
SOURCE = "deksdenflow/api"


def append_meta(request: Request, principal: Principal, correlation_id: str) -> AppendMeta:
    """The request id is the cause of what the request appends; the run (or project) correlates."""
    request_id: str = request.state.request_id
    return AppendMeta(
        source=SOURCE,
        actor=principal.actor,
        correlation_id=correlation_id,
        causation_id=request_id,
        traceparent=request.headers.get("traceparent", ""),
    )


async def execute(
    ctx: ApiContext,
    request: Request,
    response: Response,
    principal: Principal,
    kind: AggregateKind[S, C, E],
    aggregate_id: str,
    commands: Sequence[C],
    *,
    correlation_id: str,
    authorize: Callable[[S], None] | None = None,
) -> Outcome[S]:
    """Load, decide (re-deciding once on a lost race), append; set ``X-Event-Sequence``."""
    repo = await ctx.repo()
    try:
        outcome = await repo.execute_many(
            kind, aggregate_id, commands, append_meta(request, principal, correlation_id), authorize=authorize
        )
    except ConcurrencyConflict:
        ctx.metrics.conflicts.labels(kind.aggregate_type).inc()
        raise
    record(ctx, response, kind.aggregate_type, outcome)
    return outcome


def record(ctx: ApiContext, response: Response, aggregate_type: str, outcome: Outcome[S]) -> None:
    """Metrics and the read-your-writes header for an appended outcome."""
    if outcome.appended.events:
        ctx.metrics.appends.labels(aggregate_type).inc()
        ctx.metrics.events.labels(aggregate_type).inc(len(outcome.appended.events))
    response.headers[SEQUENCE_HEADER] = str(outcome.appended.last_seq)
    ctx.appended(outcome.appended.last_seq)
