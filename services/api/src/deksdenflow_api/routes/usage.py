"""Usage and cost: what the agent calls took, summed by project, protocol, model, phase, engine or day,
from the read model's ``usage_records`` (one row per agent call, recorded by the codex worker with its
real token counts and price). A project token sees its own project only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from deksdenflow_api.auth import PrincipalDep
from deksdenflow_api.errors import errors
from deksdenflow_api.reads import ReadContext, T, fetch_all, forbid_other_project
from deksdenflow_api.schemas import UsageReport, UsageRow

router = APIRouter(tags=["usage"])
IdFilter = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
GroupBy = Literal["project", "protocol", "model", "phase", "engine", "day"]

# What each grouping sums by (fixed SQL: the choice is validated against these keys).
_KEYS: dict[str, str] = {
    "project": "project_id",
    "protocol": "protocol_run_id",
    "model": "model",
    "phase": "coalesce(phase, 'unknown')",
    "engine": "engine_id",
    "day": "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}
_SUMS = (
    "count(*) AS calls, coalesce(sum(input_tokens), 0) AS input_tokens, "
    "coalesce(sum(cached_input_tokens), 0) AS cached_input_tokens, "
    "coalesce(sum(output_tokens), 0) AS output_tokens, "
    "coalesce(sum(reasoning_output_tokens), 0) AS reasoning_output_tokens, "
    "coalesce(sum(cost_micro_usd), 0) AS cost_micro_usd"
)
_WHERE = (
    "WHERE ($1::text IS NULL OR project_id = $1) AND ($2::text IS NULL OR protocol_run_id = $2) "
    "AND ($3::timestamptz IS NULL OR recorded_at >= $3) AND ($4::timestamptz IS NULL OR recorded_at < $4)"
)


def _row(key: str, r: dict[str, Any]) -> UsageRow:
    cost = int(r["cost_micro_usd"])
    return UsageRow(
        key=key,
        calls=int(r["calls"]),
        input_tokens=int(r["input_tokens"]),
        cached_input_tokens=int(r["cached_input_tokens"]),
        output_tokens=int(r["output_tokens"]),
        reasoning_output_tokens=int(r["reasoning_output_tokens"]),
        cost_micro_usd=cost,
        cost_usd=cost / 1_000_000,
    )


@router.get("/usage", response_model=UsageReport, responses=errors(401, 403, 422, 503))
async def usage(
    ctx: ReadContext,
    principal: PrincipalDep,
    project_id: IdFilter = None,
    protocol_run_id: IdFilter = None,
    group_by: GroupBy = "model",
    since: Annotated[datetime | None, Query(description="Calls recorded at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Calls recorded before (ISO 8601).")] = None,
) -> UsageReport:
    """Tokens and cost of the agent calls, summed by ``group_by`` (largest cost first), and in all."""
    forbid_other_project(project_id, principal.project_id)
    scope = principal.project_id or project_id
    args = (scope, protocol_run_id, since, until)
    key = _KEYS[group_by]
    groups = await fetch_all(
        ctx,
        f"SELECT {key} AS key, {_SUMS} FROM {T}.usage_records {_WHERE} GROUP BY 1 "
        "ORDER BY cost_micro_usd DESC, key",
        *args,
    )
    total = await fetch_all(ctx, f"SELECT {_SUMS} FROM {T}.usage_records {_WHERE}", *args)
    return UsageReport(
        group_by=group_by,
        data=[_row(str(g["key"]), g) for g in groups],
        total=_row("total", total[0]),
    )
