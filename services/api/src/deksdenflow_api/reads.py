"""Reads from the read model: one indexed query per answer, rows turned into public bodies.

Which columns a body shows comes from the read model's declaration (``deksdenflow_core.readmodel.tables``);
a body made from a decided state (a write's answer) is read from the state as the projector would write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.protocol_run import ProtocolRunState
from deksdenflow_core.errors import NotFound
from deksdenflow_core.readmodel import SCHEMA
from deksdenflow_core.readmodel.columns import column_list
from deksdenflow_core.readmodel.sources import FoldedAggregate
from deksdenflow_core.readmodel.tables import EVENTS, PROJECTS, PROTOCOL_RUNS, STEP_RUNS
from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError

from deksdenflow_api.auth import Principal, principal_of
from deksdenflow_api.context import ApiContext, context_of
from deksdenflow_api.errors import HttpError
from deksdenflow_api.policy import policy_public
from deksdenflow_api.schemas import UsagePublic

MIN_SEQUENCE_HEADER = "X-Min-Event-Sequence"
T = f'"{SCHEMA}"'


_MIN_SEQUENCE_HELP = (
    "Read-your-writes: wait (briefly) until the read model has applied this sequence, "
    "e.g. the X-Event-Sequence of a write."
)
MinSequence = Annotated[int | None, Header(ge=0, le=2**62, description=_MIN_SEQUENCE_HELP)]


async def consistent(request: Request, x_min_event_sequence: MinSequence = None) -> ApiContext:
    """The context, once the read model has what this process appended and ``X-Min-Event-Sequence``."""
    ctx = context_of(request)
    await ctx.at_least(x_min_event_sequence)
    await ctx.read_own_writes()
    return ctx


ReadContext = Annotated[ApiContext, Depends(consistent)]


@dataclass(frozen=True)
class Reader:
    """A read's caller, authenticated, and the context it reads through."""

    ctx: ApiContext
    principal: Principal


async def reader(request: Request) -> Reader:
    """The caller (or 401), once the read model has what the read must show (as ``consistent``).

    One dependency where a route would otherwise take ``ReadContext`` and ``PrincipalDep``, and one that
    reads its header itself (``min_sequence``): FastAPI solves each node of a route's dependency tree and
    each declared parameter on every request, and on a point read those cost more CPU than the rest of our
    code for it. The caller is known before anything waits.
    """
    ctx = context_of(request)
    principal = await principal_of(request, ctx)
    await ctx.at_least(min_sequence(request))
    await ctx.read_own_writes()
    return Reader(ctx, principal)


ReaderDep = Annotated[Reader, Depends(reader)]

_MIN_SEQUENCE = TypeAdapter(Annotated[int, Field(ge=0, le=2**62)])
_MIN_SEQUENCE_LOC = ("header", MIN_SEQUENCE_HEADER.lower())


def min_sequence(request: Request) -> int | None:
    """``X-Min-Event-Sequence``, validated as FastAPI validates ``MinSequence`` (the same 422 if bad)."""
    raw = request.headers.get(MIN_SEQUENCE_HEADER)
    if raw is None:
        return None
    try:
        return _MIN_SEQUENCE.validate_python(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": (*_MIN_SEQUENCE_LOC, *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def min_sequence_doc() -> dict[str, Any]:
    """``openapi_extra`` for a route that takes ``ReaderDep``: the header it reads, as FastAPI documents
    ``MinSequence``."""
    schema = {
        "anyOf": [{"type": "integer", "minimum": 0, "maximum": 2**62}, {"type": "null"}],
        "title": MIN_SEQUENCE_HEADER,
        "description": _MIN_SEQUENCE_HELP,
    }
    header = {"name": _MIN_SEQUENCE_LOC[1], "in": "header", "required": False, "schema": schema}
    return {"parameters": [{**header, "description": _MIN_SEQUENCE_HELP}]}


async def fetch_one(ctx: ApiContext, query: str, *args: Any, what: str) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        row = await conn.fetchrow(query, *args)
    if row is None:
        raise NotFound(f"{what} not found")
    return dict(row)


async def fetch_all(ctx: ApiContext, query: str, *args: Any) -> list[dict[str, Any]]:
    async with ctx.pool.acquire() as conn:
        return [dict(r) for r in await conn.fetch(query, *args)]


async def project_of_run(ctx: ApiContext, protocol_run_id: str) -> str:
    row = await fetch_one(
        ctx, f"SELECT project_id FROM {T}.protocol_runs WHERE id = $1", protocol_run_id, what="protocol run"
    )
    return str(row["project_id"])


# What the API reads of a row: the columns it shows (and, for a project, the state that holds what has no
# column of its own).
PROTOCOL_COLUMNS = column_list(PROTOCOL_RUNS.public)
_PROJECT_READ = (*PROJECTS.public, PROJECTS.column("state"))
PROJECT_COLUMNS = column_list(_PROJECT_READ)
STEP_COLUMNS = column_list(STEP_RUNS.public)
EVENT_COLUMNS = column_list(EVENTS.public)


# The public columns' names, once (``Table.public`` builds its tuple on each use).
_PROTOCOL_PUBLIC = tuple(c.name for c in PROTOCOL_RUNS.public)
_PROJECT_PUBLIC = tuple(c.name for c in PROJECTS.public)


def protocol_body(row: dict[str, Any]) -> dict[str, Any]:
    """A protocol's public body from its row (``PROTOCOL_COLUMNS``); its usage columns nest under usage."""
    body = {name: row[name] for name in _PROTOCOL_PUBLIC}
    body["usage"] = {k: body.pop(k) for k in UsagePublic.model_fields}
    body["run_policy"] = policy_public(body["run_policy"])
    return body


def protocol_from_state(s: ProtocolRunState, at: datetime) -> dict[str, Any]:
    """A protocol's public body straight from its decided state (the read model may not have it yet)."""
    folded = FoldedAggregate(s.protocol_run_id, s, at, at, last_seq=0)
    return protocol_body(PROTOCOL_RUNS.read_back(folded, PROTOCOL_RUNS.public))


def project_body(row: dict[str, Any]) -> dict[str, Any]:
    """A project's public body from its row (``PROJECT_COLUMNS``)."""
    body = {name: row[name] for name in _PROJECT_PUBLIC}
    body["default_models"] = unset_as_null(body["default_models"])
    state = row["state"] or {}
    body["default_engines"] = unset_as_null(state.get("default_engines") or {})
    body["forge_repo"] = state.get("forge_repo") or None
    body["ci_policy"] = state.get("ci_policy")
    body["fallbacks"] = state.get("fallbacks")
    body["run_policy"] = policy_public(state.get("run_policy"))
    return body


def project_from_state(state: ProjectState, at: datetime) -> dict[str, Any]:
    """A project's public body straight from its decided state (the read model may not have it yet)."""
    folded = FoldedAggregate(state.project_id, state, at, at, last_seq=0)
    return project_body(PROJECTS.read_back(folded, _PROJECT_READ))


def unset_as_null(models: dict[str, Any]) -> dict[str, Any]:
    """Model defaults with unset phases as null, as the API takes them (proto3 keeps them as "")."""
    return {phase: model or None for phase, model in models.items()}


def forbid_other_project(project_id: str | None, allowed: str | None) -> None:
    if allowed is not None and project_id not in (None, allowed):
        raise HttpError(403, "forbidden", "this project token does not give access to that project")
