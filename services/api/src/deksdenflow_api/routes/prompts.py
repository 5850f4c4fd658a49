"""The prompt registry: every prompt deksdenflow ships (decompose included), its version, where it is used,
and for every version the log has seen — the built-in one or a project's own override — its calls,
tokens and cost (``usage_records``) and its outcomes (plans made, executions completed, QA verdicts, from
the events that carry the version; for decompose, the step files its refinements replaced and those kept as
planned, from the plans that name it). A project token sees its own project's figures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from deksdenflow_core.assets import PROMPT_NAMES, PROMPT_PHASES, prompt_text, version_of
from fastapi import APIRouter

from deksdenflow_api.auth import PrincipalDep
from deksdenflow_api.errors import errors
from deksdenflow_api.reads import ReadContext, T, fetch_all
from deksdenflow_api.schemas import PromptPublic, PromptsPublic, PromptVersionPublic

router = APIRouter(tags=["prompts"])

_USAGE = (
    f"SELECT prompt_name, prompt_version, count(*) AS calls, sum(input_tokens) AS input_tokens, "
    f"sum(output_tokens) AS output_tokens, sum(cost_micro_usd) AS cost_micro_usd, "
    f"min(recorded_at) AS first_used, max(recorded_at) AS last_used FROM {T}.usage_records "
    "WHERE prompt_version IS NOT NULL AND ($1::text IS NULL OR project_id = $1) GROUP BY 1, 2"
)
# What each kind of result says about the prompt behind it: the outcome's name, read from the event.
_OUTCOMES = (
    f"SELECT type, payload->>'prompt_version' AS version, coalesce(payload->>'verdict', '') AS verdict, "
    f"count(*) AS n FROM {T}.events WHERE type = ANY($2::text[]) AND payload ? 'prompt_version' "
    "AND ($1::text IS NULL OR project_id = $1) GROUP BY 1, 2, 3"
)
# Each kind of result: its outcome's name and the prompts whose calls produce it.
_RESULTS = {
    "protocol_run.planning_completed": ("plans", ("planning",)),
    "protocol_run.step_execution_completed": ("executions_completed", ("exec",)),
    "protocol_run.qa_verdict_recorded": ("qa", ("qa", "qa-light")),
}
# Decomposition refines the plan's step files before the plan is recorded: its outcomes are on the plan,
# under the decompose prompt's own version (plans recorded before these fields existed have none).
_DECOMPOSITIONS = (
    f"SELECT payload->>'decompose_prompt_version' AS version, "
    "sum(coalesce((payload->>'steps_refined')::int, 0)) AS steps_refined, "
    "sum(coalesce((payload->>'steps_kept_as_planned')::int, 0)) AS steps_kept_as_planned "
    f"FROM {T}.events WHERE type = 'protocol_run.planning_completed' "
    "AND coalesce(payload->>'decompose_prompt_version', '') <> '' "
    "AND ($1::text IS NULL OR project_id = $1) GROUP BY 1"
)

Outcomes = dict[tuple[str, str], dict[str, int]]
"""Outcome counts by (prompt name, version): two prompts' outcomes never mix, even on one version."""


def _outcome(event_type: str, verdict: str) -> str:
    name = _RESULTS[event_type][0]
    if name == "qa":  # QA_VERDICT_PASS -> qa_pass
        return "qa_" + verdict.removeprefix("QA_VERDICT_").lower()
    return name


async def _outcomes(ctx: ReadContext, scope: str | None) -> Outcomes:
    outcomes: Outcomes = {}
    for row in await fetch_all(ctx, _OUTCOMES, scope, list(_RESULTS)):
        key = _outcome(row["type"], row["verdict"])
        for name in _RESULTS[row["type"]][1]:
            counts = outcomes.setdefault((name, row["version"]), {})
            counts[key] = counts.get(key, 0) + int(row["n"])
    for row in await fetch_all(ctx, _DECOMPOSITIONS, scope):
        outcomes[("decompose", row["version"])] = {
            "steps_refined": int(row["steps_refined"]),
            "steps_kept_as_planned": int(row["steps_kept_as_planned"]),
        }
    return outcomes


@router.get("/prompts", response_model=PromptsPublic, responses=errors(401, 403, 503))
async def prompts(ctx: ReadContext, principal: PrincipalDep) -> PromptsPublic:
    """Every prompt with its built-in version, and each version seen in the log with its usage and
    outcomes (a project's own override of a prompt shows as a version of its own)."""
    scope = principal.project_id
    versions: dict[tuple[str, str], dict[str, Any]] = {}
    for row in await fetch_all(ctx, _USAGE, scope):
        versions[(row["prompt_name"], row["prompt_version"])] = {**row, "outcomes": {}}
    outcomes = await _outcomes(ctx, scope)
    data = []
    for name in PROMPT_NAMES:
        builtin = version_of(prompt_text(name))
        seen = {v: r for (n, v), r in versions.items() if n == name}
        seen.setdefault(builtin, {})
        data.append(
            PromptPublic(
                name=name,
                phase=PROMPT_PHASES[name],
                version=builtin,
                versions=sorted(
                    (_version(v, r, builtin, outcomes.get((name, v), {})) for v, r in seen.items()),
                    key=lambda p: (p.version != builtin, -(p.calls or 0), p.version),
                ),
            )
        )
    return PromptsPublic(data=data, count=len(data))


def _version(
    version: str, row: dict[str, Any], builtin: str, outcomes: dict[str, int]
) -> PromptVersionPublic:
    first: datetime | None = row.get("first_used")
    last: datetime | None = row.get("last_used")
    return PromptVersionPublic(
        version=version,
        builtin=version == builtin,
        calls=int(row.get("calls") or 0),
        input_tokens=int(row.get("input_tokens") or 0),
        output_tokens=int(row.get("output_tokens") or 0),
        cost_micro_usd=int(row.get("cost_micro_usd") or 0),
        first_used=first,
        last_used=last,
        outcomes=outcomes,
    )
