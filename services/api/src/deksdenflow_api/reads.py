"""Reads from the read model: one indexed query per answer, rows turned into public bodies."""

from __future__ import annotations

from typing import Annotated, Any

from deksdenflow_core.errors import NotFound
from deksdenflow_core.readmodel import SCHEMA
from fastapi import Depends, Header

from deksdenflow_api.context import ApiContext, get_context
from deksdenflow_api.errors import HttpError

MIN_SEQUENCE_HEADER = "X-Min-Event-Sequence"
T = f'"{SCHEMA}"'


async def consistent(
    ctx: Annotated[ApiContext, Depends(get_context)],
    x_min_event_sequence: Annotated[
        int | None,
        Header(
            ge=0,
            le=2**62,
            description="Read-your-writes: wait (briefly) until the read model has applied this sequence, "
            "e.g. the X-Event-Sequence of a write.",
        ),
    ] = None,
) -> ApiContext:
    await ctx.at_least(x_min_event_sequence)
    await ctx.read_own_writes()
    return ctx


ReadContext = Annotated[ApiContext, Depends(consistent)]


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


def protocol_body(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **{
            k: row[k]
            for k in (
                "id",
                "project_id",
                "number",
                "protocol_name",
                "slug",
                "task_name",
                "description",
                "base_branch",
                "protocol_root",
                "status",
                "paused_from",
                "blocked_reason",
                "spec_hash",
                "pr_number",
                "pr_url",
                "pr_merged",
                "branch_head_sha",
                "created_at",
                "updated_at",
            )
        },
        "usage": {k: row[k] for k in ("input_tokens", "output_tokens", "cost_micro_usd")},
    }


def project_body(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "name",
        "git_url",
        "base_branch",
        "ci_provider",
        "default_models",
        "local_path",
        "status",
        "questions",
        "answers",
        "created_at",
        "updated_at",
    )
    body = {k: row[k] for k in keys}
    body["default_models"] = unset_as_null(body["default_models"])
    state = row["state"] or {}
    body["default_engines"] = unset_as_null(state.get("default_engines") or {})
    body["forge_repo"] = state.get("forge_repo") or None
    body["ci_policy"] = state.get("ci_policy")
    return body


def unset_as_null(models: dict[str, Any]) -> dict[str, Any]:
    """Model defaults with unset phases as null, as the API takes them (proto3 keeps them as "")."""
    return {phase: model or None for phase, model in models.items()}


def forbid_other_project(project_id: str | None, allowed: str | None) -> None:
    if allowed is not None and project_id not in (None, allowed):
        raise HttpError(403, "forbidden", "this project token does not give access to that project")
