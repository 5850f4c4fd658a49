"""Turning an HTTP request into appended events: metadata, metrics, and the sequence header.

A write route takes one dependency, :data:`CommandDep`, which carries the request, the response, the
caller and the context, and executes commands on an aggregate with it::

    outcome = await commander.execute(PROTOCOL_RUN, run_id, command)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from deksdenflow_core.aggregates import AggregateKind, Outcome
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.domain.protocol_run import AGGREGATE_TYPE as PROTOCOL_RUN_TYPE
from deksdenflow_core.domain.protocol_run import ProtocolRunState
from deksdenflow_core.errors import ConcurrencyConflict
from deksdenflow_core.eventstore import AppendMeta
from fastapi import Depends, Request, Response

from deksdenflow_api.auth import Principal, PrincipalDep
from deksdenflow_api.context import ApiContext, context_of

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
    new: bool = False,
) -> Outcome[S]:
    """Load, decide (re-deciding once on a lost race), append; set ``X-Event-Sequence``. ``new``: the
    aggregate's id was just made up (see ``Repository.execute_many``)."""
    repo = await ctx.repo()
    try:
        outcome = await repo.execute_many(
            kind,
            aggregate_id,
            commands,
            append_meta(request, principal, correlation_id),
            authorize=authorize,
            new=new,
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


@dataclass(frozen=True)
class Commander:
    """What a write route needs to turn commands into events: the context, the request (its id causes
    what is appended), the response (it carries ``X-Event-Sequence``) and the authenticated caller."""

    ctx: ApiContext
    request: Request
    response: Response
    principal: Principal

    async def execute(
        self,
        kind: AggregateKind[S, C, E],
        aggregate_id: str,
        *commands: C,
        correlation_id: str | None = None,
        authorize: Callable[[S], None] | None = None,
        new: bool = False,
    ) -> Outcome[S]:
        """Run ``commands`` on one aggregate (see :func:`execute`); the aggregate correlates by default."""
        return await execute(
            self.ctx,
            self.request,
            self.response,
            self.principal,
            kind,
            aggregate_id,
            commands,
            correlation_id=aggregate_id if correlation_id is None else correlation_id,
            authorize=authorize,
            new=new,
        )

    async def create_protocol_run(
        self, project_id: str, command: cmd.CreateProtocolRun
    ) -> Outcome[ProtocolRunState]:
        """Open a protocol run in a project (it takes the project's next number); the project correlates."""
        repo = await self.ctx.repo()
        try:
            outcome = await repo.create_protocol_run(
                project_id, command, append_meta(self.request, self.principal, correlation_id=project_id)
            )
        except ConcurrencyConflict:
            self.ctx.metrics.conflicts.labels(PROTOCOL_RUN_TYPE).inc()
            raise
        record(self.ctx, self.response, PROTOCOL_RUN_TYPE, outcome)
        return outcome


async def get_commander(request: Request, response: Response, principal: PrincipalDep) -> Commander:
    return Commander(context_of(request), request, response, principal)


CommandDep = Annotated[Commander, Depends(get_commander)]
