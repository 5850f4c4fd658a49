"""The rows of a folded batch, and the statements that write them (one COPY for the events)."""

from __future__ import annotations

import json
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


def _json(value: Any) -> bytes:
    """JSON text for a jsonb column (an array of jsonb would read a Python list as a nested array)."""
    return json.dumps(value, separators=(",", ":")).encode()


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
        s.default_models.model_dump_json().encode(),
        s.local_path or None,
        s.status.value,
        s.onboarding_attempt,
        _json([q.model_dump(mode="json") for q in s.questions]),
        _json(s.answers),
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
        _json(st.changed_files),
        st.failure_reason or None,
        *times,
        st.owner or None,
    )


@dataclass(frozen=True)
class _Upsert:
    """Rows of one table inserted from column arrays (``unnest``): one statement for any number."""

    table: str
    columns: tuple[tuple[str, str], ...]  # (column, element type)
    on_conflict: str

    def sql(self, schema: str, first: int) -> str:
        names = ", ".join(name for name, _ in self.columns)
        arrays = ", ".join(f"${first + i}::{kind}[]" for i, (_, kind) in enumerate(self.columns))
        return (
            f'INSERT INTO "{schema}".{self.table} ({names}) SELECT * FROM unnest({arrays}) {self.on_conflict}'
        )


def _updating(key: str, *columns: str) -> str:
    return f"ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(f"{c}=EXCLUDED.{c}" for c in columns)


_PROJECTS = _Upsert(
    "projects",
    (
        ("id", "text"),
        ("name", "text"),
        ("git_url", "text"),
        ("base_branch", "text"),
        ("ci_provider", "text"),
        ("default_models", "jsonb"),
        ("local_path", "text"),
        ("status", "text"),
        ("onboarding_attempt", "int4"),
        ("questions", "jsonb"),
        ("answers", "jsonb"),
        ("state", "jsonb"),
        ("version", "int4"),
        ("last_seq", "int8"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
    ),
    _updating(
        "id",
        "name",
        "git_url",
        "base_branch",
        "ci_provider",
        "default_models",
        "local_path",
        "status",
        "onboarding_attempt",
        "questions",
        "answers",
        "state",
        "version",
        "last_seq",
        "updated_at",
    ),
)
_RUNS = _Upsert(
    "protocol_runs",
    (
        ("id", "text"),
        ("project_id", "text"),
        ("number", "int4"),
        ("protocol_name", "text"),
        ("slug", "text"),
        ("task_name", "text"),
        ("description", "text"),
        ("base_branch", "text"),
        ("protocol_root", "text"),
        ("status", "text"),
        ("paused_from", "text"),
        ("blocked_reason", "text"),
        ("planning_attempt", "int4"),
        ("spec_hash", "text"),
        ("pr_number", "int8"),
        ("pr_url", "text"),
        ("pr_merged", "bool"),
        ("branch_head_sha", "text"),
        ("input_tokens", "int8"),
        ("output_tokens", "int8"),
        ("cost_micro_usd", "int8"),
        ("state", "jsonb"),
        ("version", "int4"),
        ("last_seq", "int8"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("planning_owner", "text"),
    ),
    _updating(
        "id",
        "status",
        "paused_from",
        "blocked_reason",
        "planning_attempt",
        "planning_owner",
        "spec_hash",
        "pr_number",
        "pr_url",
        "pr_merged",
        "branch_head_sha",
        "input_tokens",
        "output_tokens",
        "cost_micro_usd",
        "state",
        "version",
        "last_seq",
        "updated_at",
    ),
)
_STEPS = _Upsert(
    "step_runs",
    (
        ("id", "text"),
        ("protocol_run_id", "text"),
        ("project_id", "text"),
        ("step_index", "int4"),
        ("step_name", "text"),
        ("step_type", "text"),
        ("status", "text"),
        ("retries", "int4"),
        ("executing", "bool"),
        ("engine_id", "text"),
        ("model", "text"),
        ("qa_policy", "text"),
        ("qa_attempt", "int4"),
        ("qa_pending", "bool"),
        ("last_verdict", "text"),
        ("summary", "text"),
        ("commit_sha", "text"),
        ("changed_files", "jsonb"),
        ("failure_reason", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("owner", "text"),
    ),
    _updating(
        "id",
        "status",
        "retries",
        "executing",
        "qa_attempt",
        "qa_pending",
        "last_verdict",
        "summary",
        "commit_sha",
        "changed_files",
        "failure_reason",
        "updated_at",
        "owner",
    ),
)
_USAGE = _Upsert(
    "usage_records",
    (
        ("call_id", "text"),
        ("seq", "int8"),
        ("project_id", "text"),
        ("protocol_run_id", "text"),
        ("step_run_id", "text"),
        ("phase", "text"),
        ("engine_id", "text"),
        ("model", "text"),
        ("input_tokens", "int8"),
        ("cached_input_tokens", "int8"),
        ("output_tokens", "int8"),
        ("reasoning_output_tokens", "int8"),
        ("cost_micro_usd", "int8"),
        ("recorded_at", "timestamptz"),
    ),
    "ON CONFLICT (call_id) DO NOTHING",
)
_CI = _Upsert(
    "ci_reports",
    (
        ("seq", "int8"),
        ("project_id", "text"),
        ("protocol_run_id", "text"),
        ("step_run_id", "text"),
        ("provider", "text"),
        ("status", "text"),
        ("raw_status", "text"),
        ("head_sha", "text"),
        ("run_url", "text"),
        ("delivery_id", "text"),
        ("reported_at", "timestamptz"),
    ),
    "ON CONFLICT DO NOTHING",
)


def _batch_statement(schema: str, w: Writes, last: int, *, notify: bool) -> tuple[str, list[Any]]:
    """One statement writing every project, run, step, usage and CI row of a batch and the checkpoint
    after it (tables with no dependencies between them, so they can be written by the parts of one
    statement), and its arguments: the rows as column arrays."""
    parts: list[str] = []
    args: list[Any] = []
    for upsert, rows in (
        (_PROJECTS, w.projects),
        (_RUNS, w.runs),
        (_STEPS, w.steps),
        (_USAGE, w.usage),
        (_CI, w.ci),
    ):
        if rows:
            parts.append(upsert.sql(schema, len(args) + 1))
            args.extend(map(list, zip(*rows, strict=True)))
    n = len(args)
    stored = (
        f'INSERT INTO "{schema}".checkpoints (name, last_seq, updated_at) VALUES (${n + 1}, ${n + 2}, now()) '
        "ON CONFLICT (name) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = EXCLUDED.updated_at"
    )
    args += [PROJECTOR_NAME, last]
    if notify:  # listeners learn of it when the transaction commits
        parts.append(f"{stored} RETURNING last_seq")
        final = f"SELECT pg_notify(${n + 3}, ${n + 4}) FROM w{len(parts) - 1}"
        args += [CHECKPOINT_CHANNEL, f"{schema}:{last}"]
    else:
        final = stored
    if not parts:
        return final, args
    ctes = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(parts))
    return f"WITH {ctes} {final}", args


async def write(conn: asyncpg.Connection, schema: str, w: Writes, *, last: int, notify: bool) -> int:
    """Send a batch's rows and record ``last`` as applied, inside the caller's transaction (and tell
    listeners, unless ``notify`` is false); return ``last``. The events go with one COPY, the rows of
    the aggregates and the checkpoint with one statement (tokens and re-plans, rare, by themselves)."""
    await conn.copy_records_to_table("events", schema_name=schema, columns=_EVENT_COLUMNS, records=w.events)
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
    if w.replanned:
        # A re-plan replaces the steps of a run: drop the ones the plan no longer has (before the new
        # rows go in: a new step may take the index of a dropped one).
        await conn.execute(
            f'DELETE FROM "{schema}".step_runs WHERE protocol_run_id = ANY($1) AND NOT (id = ANY($2))',
            w.replanned,
            w.kept_steps,
        )
    sql, args = _batch_statement(schema, w, last, notify=notify)
    await conn.execute(sql, *args)
    return last
