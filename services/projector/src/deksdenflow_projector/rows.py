"""The rows of a folded batch, and the statements that write them (one COPY for the events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.protocol_run import ProtocolRunState
from deksdenflow_core.domain.protocol_run.state import StepState
from deksdenflow_core.envelope import RecordedEvent
from deksdenflow_core.readmodel import CHECKPOINT_CHANNEL, PROJECTOR_NAME

from deksdenflow_projector.fold import Touched, short

_EVENT_COLUMNS = (
    "seq",
    "id",
    "type",
    "project_id",
    "aggregate_type",
    "aggregate_id",
    "protocol_run_id",
    "step_run_id",
    "aggregate_version",
    "time",
    "source",
    "actor",
    "correlation_id",
    "causation_id",
    "payload",
)


@dataclass(frozen=True)
class Writes:
    """The rows of one batch, ready to send."""

    events: list[tuple[Any, ...]]
    projects: list[tuple[Any, ...]]
    tokens_issued: list[tuple[Any, ...]]
    tokens_revoked: list[tuple[str, datetime]]
    runs: list[tuple[Any, ...]]
    # runs whose plan changed, and the steps they have now: rows of other steps of theirs go
    replanned: list[str]
    kept_steps: list[str]
    steps: list[tuple[Any, ...]]
    usage: list[tuple[Any, ...]]
    ci: list[tuple[Any, ...]]


def build(events: list[RecordedEvent], t: Touched) -> Writes:
    """The rows for ``events`` and what folding them did (``t``): CPU only, nothing is sent."""
    replanned: list[str] = []
    kept: list[str] = []
    for rid, (run, _, _, _) in t.runs.items():
        before = t.steps_before[rid]
        if before and [st.step_run_id for st in before] != [st.step_run_id for st in run.steps]:
            replanned.append(rid)
            kept.extend(st.step_run_id for st in run.steps)
    return Writes(
        events=[_event_row(e) for e in events],
        projects=[_project_row(pid, s, c, u, seq) for pid, (s, c, u, seq) in t.projects.items()],
        tokens_issued=t.tokens_issued,
        tokens_revoked=t.tokens_revoked,
        runs=[_run_row(rid, s, c, u, seq) for rid, (s, c, u, seq) in t.runs.items()],
        replanned=replanned,
        kept_steps=kept,
        steps=[
            _step_row(st, rid, s.project_id, t.steps_changed[st.step_run_id])
            for rid, (s, _, _, _) in t.runs.items()
            for st in s.steps
            if st.step_run_id in t.steps_changed
        ],
        usage=t.usage,
        ci=t.ci,
    )


# event class -> whether it names a step (``getattr`` with a default is slow on a pydantic model)
_NAMES_STEP: dict[type, bool] = {}


def _event_row(recorded: RecordedEvent) -> tuple[Any, ...]:
    env, event = recorded.envelope, recorded.event
    names_step = _NAMES_STEP.get(type(event))
    if names_step is None:
        names_step = _NAMES_STEP[type(event)] = "step_run_id" in type(event).model_fields
    step_run_id = (event.step_run_id or None) if names_step else None  # type: ignore[attr-defined]
    return (
        recorded.stream_seq,
        env.id,
        env.type,
        env.project_id,
        env.aggregate_type,
        env.aggregate_id,
        env.aggregate_id if env.aggregate_type == "protocol_run" else None,
        step_run_id,
        env.aggregate_version,
        env.time,
        env.source,
        env.actor,
        env.correlation_id,
        env.causation_id,
        recorded.payload_json,
    )


def _project_row(
    pid: str, s: ProjectState, created: datetime, updated: datetime, seq: int
) -> tuple[Any, ...]:
    return (
        pid,
        s.name,
        s.git_url,
        s.base_branch,
        short(s.ci_provider),
        s.default_models.model_dump(mode="json"),
        s.local_path or None,
        s.status.value,
        s.onboarding_attempt,
        [q.model_dump(mode="json") for q in s.questions],
        s.answers,
        s.model_dump_json().encode(),  # JSON text: goes into jsonb as it is
        s.version,
        seq,
        created,
        updated,
    )


def _run_row(
    rid: str, s: ProtocolRunState, created: datetime, updated: datetime, seq: int
) -> tuple[Any, ...]:
    return (
        rid,
        s.project_id,
        s.number,
        s.protocol_name,
        s.slug,
        s.task_name,
        s.description,
        s.base_branch,
        s.protocol_root,
        s.status.value,
        s.paused_from.value if s.paused_from else None,
        s.blocked_reason or None,
        s.planning_attempt,
        s.spec_hash or None,
        s.pr_number or None,
        s.pr_url or None,
        s.pr_merged,
        s.branch_head_sha or None,
        s.input_tokens,
        s.output_tokens,
        s.cost_micro_usd,
        s.model_dump_json().encode(),  # JSON text: goes into jsonb as it is
        s.version,
        seq,
        created,
        updated,
        s.planning_owner or None,
    )


def _step_row(st: StepState, rid: str, project_id: str, times: tuple[datetime, datetime]) -> tuple[Any, ...]:
    return (
        st.step_run_id,
        rid,
        project_id,
        st.index,
        st.name,
        short(st.step_type),
        st.status.value,
        st.retries,
        st.executing,
        st.engine_id or None,
        st.model or None,
        short(st.qa_policy),
        st.qa_attempt,
        st.qa_pending,
        short(st.last_verdict),
        st.summary or None,
        st.commit_sha or None,
        list(st.changed_files),
        st.failure_reason or None,
        *times,
        st.owner or None,
    )


async def write(conn: asyncpg.Connection, schema: str, w: Writes) -> None:
    """Send a batch's rows inside the caller's transaction (events first: one COPY)."""
    await conn.copy_records_to_table("events", schema_name=schema, columns=_EVENT_COLUMNS, records=w.events)
    if w.projects:
        await conn.executemany(
            f"""INSERT INTO "{schema}".projects (id, name, git_url, base_branch, ci_provider, default_models,
                local_path, status, onboarding_attempt, questions, answers, state, version, last_seq,
                created_at, updated_at)
            VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)
            ON CONFLICT (id) DO UPDATE SET name=EXCLUDED.name, git_url=EXCLUDED.git_url,
                base_branch=EXCLUDED.base_branch, ci_provider=EXCLUDED.ci_provider,
                default_models=EXCLUDED.default_models, local_path=EXCLUDED.local_path,
                status=EXCLUDED.status,
                onboarding_attempt=EXCLUDED.onboarding_attempt, questions=EXCLUDED.questions,
                answers=EXCLUDED.answers, state=EXCLUDED.state, version=EXCLUDED.version,
                last_seq=EXCLUDED.last_seq, updated_at=EXCLUDED.updated_at""",
            w.projects,
        )
    if w.tokens_issued:
        await conn.executemany(
            f'INSERT INTO "{schema}".project_tokens (token_id, project_id, token_hash, label, created_at) '
            "VALUES ($1,$2,$3,$4,$5) ON CONFLICT (token_id) DO NOTHING",
            w.tokens_issued,
        )
    if w.tokens_revoked:
        await conn.executemany(
            f'UPDATE "{schema}".project_tokens SET revoked_at = $2 WHERE token_id = $1', w.tokens_revoked
        )
    if w.runs:
        await conn.executemany(
            f"""INSERT INTO "{schema}".protocol_runs (id, project_id, number, protocol_name, slug, task_name,
                description, base_branch, protocol_root, status, paused_from, blocked_reason,
                planning_attempt, spec_hash, pr_number, pr_url, pr_merged, branch_head_sha, input_tokens,
                output_tokens, cost_micro_usd, state, version, last_seq, created_at, updated_at,
                planning_owner)
            VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,
                    $25,$26,$27)
            ON CONFLICT (id) DO UPDATE SET status=EXCLUDED.status, paused_from=EXCLUDED.paused_from,
                blocked_reason=EXCLUDED.blocked_reason, planning_attempt=EXCLUDED.planning_attempt,
                planning_owner=EXCLUDED.planning_owner,
                spec_hash=EXCLUDED.spec_hash, pr_number=EXCLUDED.pr_number, pr_url=EXCLUDED.pr_url,
                pr_merged=EXCLUDED.pr_merged, branch_head_sha=EXCLUDED.branch_head_sha,
                input_tokens=EXCLUDED.input_tokens, output_tokens=EXCLUDED.output_tokens,
                cost_micro_usd=EXCLUDED.cost_micro_usd, state=EXCLUDED.state, version=EXCLUDED.version,
                last_seq=EXCLUDED.last_seq, updated_at=EXCLUDED.updated_at""",
            w.runs,
        )
    if w.replanned:
        # A re-plan replaces the steps of a run: drop the ones the plan no longer has.
        await conn.execute(
            f'DELETE FROM "{schema}".step_runs WHERE protocol_run_id = ANY($1) AND NOT (id = ANY($2))',
            w.replanned,
            w.kept_steps,
        )
    if w.steps:
        await conn.executemany(
            f"""INSERT INTO "{schema}".step_runs (id, protocol_run_id, project_id, step_index, step_name,
                step_type,
                status, retries, executing, engine_id, model, qa_policy, qa_attempt, qa_pending, last_verdict,
                summary, commit_sha, changed_files, failure_reason, created_at, updated_at, owner)
            VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22)
            ON CONFLICT (id) DO UPDATE SET status=EXCLUDED.status, retries=EXCLUDED.retries,
                executing=EXCLUDED.executing, qa_attempt=EXCLUDED.qa_attempt, qa_pending=EXCLUDED.qa_pending,
                last_verdict=EXCLUDED.last_verdict, summary=EXCLUDED.summary, commit_sha=EXCLUDED.commit_sha,
                changed_files=EXCLUDED.changed_files, failure_reason=EXCLUDED.failure_reason,
                updated_at=EXCLUDED.updated_at, owner=EXCLUDED.owner""",
            w.steps,
        )
    if w.usage:
        await conn.executemany(
            f'INSERT INTO "{schema}".usage_records VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) '
            "ON CONFLICT (call_id) DO NOTHING",
            w.usage,
        )
    if w.ci:
        await conn.executemany(
            f'INSERT INTO "{schema}".ci_reports VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) '
            "ON CONFLICT DO NOTHING",
            w.ci,
        )


async def store_checkpoint(conn: asyncpg.Connection, schema: str, last: int, *, notify: bool) -> int:
    """Record ``last`` as applied (and tell listeners, unless ``notify`` is false); return it."""
    upsert = (
        f'INSERT INTO "{schema}".checkpoints (name, last_seq, updated_at) VALUES ($1, $2, now()) '
        "ON CONFLICT (name) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = EXCLUDED.updated_at"
    )
    if notify:  # one round trip for both
        await conn.execute(
            f"WITH stored AS ({upsert} RETURNING last_seq) SELECT pg_notify($3, $4) FROM stored",
            PROJECTOR_NAME,
            last,
            CHECKPOINT_CHANNEL,
            f"{schema}:{last}",
        )
    else:
        await conn.execute(upsert, PROJECTOR_NAME, last)
    return last
