"""The event feed: a page (``GET /events``) and a live stream (``GET /events/stream``, Server-Sent Events).

Both read the read model's ``events`` table with the same filters and the same scoping: a project
token only ever sees its own project's events. The stream resumes after ``Last-Event-ID`` (the
position of the last event a client received); its live part comes from the process's one fan-out
(``fanout.py``), not from a query per client.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query

from deksdenflow_api.auth import Principal, PrincipalDep
from deksdenflow_api.errors import errors
from deksdenflow_api.reads import ReadContext, T, fetch_all, forbid_other_project
from deksdenflow_api.schemas import EventPublic, EventsPublic
from deksdenflow_api.sse import EventStream

router = APIRouter(tags=["events"])
IdFilter = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
TypeFilter = Annotated[
    str | None, Query(pattern=r"^[a-z_]+\.[a-z_]+$", description="e.g. protocol_run.created")
]
_QUERY = (
    f"SELECT * FROM {T}.events WHERE position > $1 AND ($2::text IS NULL OR project_id = $2) "
    "AND ($3::text IS NULL OR protocol_run_id = $3) AND ($4::text IS NULL OR type = $4) "
    "ORDER BY position LIMIT $5"
)


def _scope(principal: Principal, project_id: str | None) -> str | None:
    forbid_other_project(project_id, principal.project_id)
    return principal.project_id or project_id


@router.get("/events", response_model=EventsPublic, responses=errors(401, 403, 422, 503))
async def list_events(
    ctx: ReadContext,
    principal: PrincipalDep,
    project_id: IdFilter = None,
    protocol_run_id: IdFilter = None,
    type: TypeFilter = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="Only events after this position.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventsPublic:
    """The activity feed across projects (a project token: its project only), oldest first."""
    rows = await fetch_all(ctx, _QUERY, after, _scope(principal, project_id), protocol_run_id, type, limit)
    return EventsPublic(data=[EventPublic(**r) for r in rows], count=len(rows))


@router.get(
    "/events/stream",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "One SSE message per event: id = its position.",
        },
        **errors(401, 403, 422, 503),
    },
    response_class=EventStream,
    status_code=200,  # what FastAPI would read off StreamingResponse's signature for the OpenAPI schema
)
async def stream_events(
    ctx: ReadContext,
    principal: PrincipalDep,
    project_id: IdFilter = None,
    protocol_run_id: IdFilter = None,
    type: TypeFilter = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="Only events after this position.")] = 0,
    last_event_id: Annotated[str | None, Header(pattern=r"^\d{1,18}$")] = None,
) -> EventStream:
    """Live events as Server-Sent Events; reconnect with ``Last-Event-ID`` to resume without gaps.

    Each API process serves ``DEKSDENFLOW_SSE_MAX_CLIENTS`` streams (503 with ``Retry-After`` beyond); a
    client more than ``DEKSDENFLOW_SSE_CLIENT_QUEUE_EVENTS`` events behind is disconnected (it resumes).
    """
    subscriber = ctx.fanout.subscribe((_scope(principal, project_id), protocol_run_id, type))
    return EventStream(ctx, subscriber, int(last_event_id) if last_event_id else after)
