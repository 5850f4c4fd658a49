"""Apply a batch of events to the read model in one transaction, together with the checkpoint.

Aggregate rows are folded with the domain's own ``evolve`` (their folded state is kept in a ``state``
column), so the read model can never disagree with the rules. Within a batch each touched aggregate is
loaded once and written once; the event rows go in with one COPY.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import project as pev
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as rev
from deksdenflow_core.domain.project import ProjectState, evolve_project
from deksdenflow_core.domain.protocol_run import ProtocolRunState, evolve_protocol_run
from deksdenflow_core.envelope import RecordedEvent
from deksdenflow_core.errors import InfrastructureError
from deksdenflow_core.readmodel import CHECKPOINT_CHANNEL, PROJECTOR_NAME

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


class OutOfOrder(InfrastructureError):
    """A batch does not continue the checkpoint: events in between have not been applied. Retry later."""


@dataclass
class _Touched:
    """Aggregates touched by a batch: latest state, first and last event time."""

    # id -> (state, created_at, updated_at, sequence of its last event)
    projects: dict[str, tuple[ProjectState, datetime, datetime, int]] = field(default_factory=dict)
    runs: dict[str, tuple[ProtocolRunState, datetime, datetime, int]] = field(default_factory=dict)
    tokens_issued: list[tuple[Any, ...]] = field(default_factory=list)
    tokens_revoked: list[tuple[str, datetime]] = field(default_factory=list)
    usage: list[tuple[Any, ...]] = field(default_factory=list)
    ci: list[tuple[Any, ...]] = field(default_factory=list)
    # step id -> (created_at, updated_at): when the event that created / last changed it happened
    step_times: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)


class RawJson(bytes):
    """JSON text that goes into a jsonb column as it is (no parse, no re-serialisation)."""


def _jsonb_encode(value: Any) -> bytes:
    if isinstance(value, RawJson):
        return b"\x01" + value
    return b"\x01" + json.dumps(value, separators=(",", ":")).encode()


def _jsonb_decode(data: bytes) -> Any:
    return json.loads(data[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb as Python objects, in jsonb's binary format (version byte + text) so COPY can use it."""
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )


async def checkpoint(conn: asyncpg.Connection, schema: str, *, lock: bool = False) -> int:
    """The last applied stream sequence (0 before the first batch)."""
    suffix = " FOR UPDATE" if lock else ""
    value = await conn.fetchval(
        f'SELECT last_seq FROM "{schema}".checkpoints WHERE name = $1{suffix}', PROJECTOR_NAME
    )
    return int(value or 0)


async def apply_batch(
    conn: asyncpg.Connection, schema: str, events: list[RecordedEvent], *, notify: bool = True
) -> int:
    """Apply ``events`` (in stream order) inside the caller's transaction; return the new checkpoint.

    Events at or below the checkpoint are skipped (redelivery). The rest must continue the checkpoint
    without a gap — the projector reads every subject of the stream, whose sequences have no holes —
    otherwise ``OutOfOrder`` is raised and nothing is written.
    """
    last = await checkpoint(conn, schema, lock=True)
    fresh = [e for e in events if e.stream_seq > last]
    if not fresh:
        return last
    expected = last + 1
    for e in fresh:
        if e.stream_seq != expected:
            raise OutOfOrder(f"batch jumps from {expected - 1} to {e.stream_seq}", checkpoint=last)
        expected += 1
    touched = await _fold(conn, schema, fresh)
    await _write(conn, schema, fresh, touched)
    new_last = fresh[-1].stream_seq
    await conn.execute(
        f'INSERT INTO "{schema}".checkpoints (name, last_seq, updated_at) VALUES ($1, $2, now()) '
        "ON CONFLICT (name) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = EXCLUDED.updated_at",
        PROJECTOR_NAME,
        new_last,
    )
    if notify:
        await conn.execute("SELECT pg_notify($1, $2)", CHECKPOINT_CHANNEL, f"{schema}:{new_last}")
    return new_last


async def _fold(conn: asyncpg.Connection, schema: str, events: list[RecordedEvent]) -> _Touched:
    touched = _Touched()
    project_ids = {e.envelope.aggregate_id for e in events if e.envelope.aggregate_type == "project"}
    run_ids = {e.envelope.aggregate_id for e in events if e.envelope.aggregate_type == "protocol_run"}
    query = 'SELECT id, state, created_at FROM "{}".{} WHERE id = ANY($1)'
    for row in await conn.fetch(query.format(schema, "projects"), list(project_ids)):
        state = ProjectState.model_validate(row["state"])
        touched.projects[row["id"]] = (state, row["created_at"], row["created_at"], 0)
    for row in await conn.fetch(query.format(schema, "protocol_runs"), list(run_ids)):
        state_run = ProtocolRunState.model_validate(row["state"])
        touched.runs[row["id"]] = (state_run, row["created_at"], row["created_at"], 0)
    step_query = (
        f'SELECT id, created_at, updated_at FROM "{schema}".step_runs WHERE protocol_run_id = ANY($1)'
    )
    for row in await conn.fetch(step_query, list(run_ids)):
        touched.step_times[row["id"]] = (row["created_at"], row["updated_at"])
    for recorded in events:
        env, event, at, seq = recorded.envelope, recorded.event, recorded.envelope.time, recorded.stream_seq
        if env.aggregate_type == "project":
            known_project = touched.projects.get(env.aggregate_id)
            state, created, _, _ = known_project or (ProjectState.initial(env.aggregate_id), at, at, seq)
            # the event type decides which member of the union it is
            touched.projects[env.aggregate_id] = (evolve_project(state, event), created, at, seq)  # type: ignore[arg-type]
            if isinstance(event, pev.ProjectTokenIssued):
                touched.tokens_issued.append(
                    (event.token_id, env.aggregate_id, event.token_hash, event.label, at)
                )
            elif isinstance(event, pev.ProjectTokenRevoked):
                touched.tokens_revoked.append((event.token_id, at))
        elif env.aggregate_type == "protocol_run":
            known_run = touched.runs.get(env.aggregate_id)
            run, created, _, _ = known_run or (ProtocolRunState.initial(env.aggregate_id), at, at, seq)
            after = evolve_protocol_run(run, event)  # type: ignore[arg-type]
            touched.runs[env.aggregate_id] = (after, created, at, seq)
            before = {st.step_run_id: st for st in run.steps}
            for st in after.steps:
                # evolve copies only the steps it changes: identity tells which ones did
                if before.get(st.step_run_id) is not st:
                    first = touched.step_times.get(st.step_run_id, (at, at))[0]
                    touched.step_times[st.step_run_id] = (first, at)
            if isinstance(event, rev.UsageRecorded):
                u = event.usage
                touched.usage.append(
                    (
                        event.call_id,
                        recorded.stream_seq,
                        env.project_id,
                        env.aggregate_id,
                        event.step_run_id or None,
                        _short(event.phase),
                        event.engine_id,
                        event.model,
                        u.input_tokens if u else 0,
                        u.cached_input_tokens if u else 0,
                        u.output_tokens if u else 0,
                        u.reasoning_output_tokens if u else 0,
                        event.cost_micro_usd,
                        at,
                    )
                )
            elif isinstance(event, rev.CiReported):
                touched.ci.append(
                    (
                        recorded.stream_seq,
                        env.project_id,
                        env.aggregate_id,
                        event.step_run_id or None,
                        _short(event.provider),
                        _short(event.status),
                        event.raw_status,
                        event.head_sha,
                        event.run_url,
                        event.delivery_id,
                        at,
                    )
                )
    return touched


def _event_row(recorded: RecordedEvent) -> tuple[Any, ...]:
    env = recorded.envelope
    step_run_id = getattr(recorded.event, "step_run_id", "") or None
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
        RawJson(recorded.payload_json),
    )


async def _write(conn: asyncpg.Connection, schema: str, events: list[RecordedEvent], t: _Touched) -> None:
    await conn.copy_records_to_table(
        "events", schema_name=schema, columns=_EVENT_COLUMNS, records=[_event_row(e) for e in events]
    )
    if t.projects:
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
            [_project_row(pid, s, c, u, seq) for pid, (s, c, u, seq) in t.projects.items()],
        )
    if t.tokens_issued:
        await conn.executemany(
            f'INSERT INTO "{schema}".project_tokens (token_id, project_id, token_hash, label, created_at) '
            "VALUES ($1,$2,$3,$4,$5) ON CONFLICT (token_id) DO NOTHING",
            t.tokens_issued,
        )
    if t.tokens_revoked:
        await conn.executemany(
            f'UPDATE "{schema}".project_tokens SET revoked_at = $2 WHERE token_id = $1', t.tokens_revoked
        )
    if t.runs:
        await _write_runs(conn, schema, t)
    if t.usage:
        await conn.executemany(
            f'INSERT INTO "{schema}".usage_records VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) '
            "ON CONFLICT (call_id) DO NOTHING",
            t.usage,
        )
    if t.ci:
        await conn.executemany(
            f'INSERT INTO "{schema}".ci_reports VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) '
            "ON CONFLICT DO NOTHING",
            t.ci,
        )


def _project_row(
    pid: str, s: ProjectState, created: datetime, updated: datetime, seq: int
) -> tuple[Any, ...]:
    return (
        pid,
        s.name,
        s.git_url,
        s.base_branch,
        _short(s.ci_provider),
        s.default_models.model_dump(mode="json"),
        s.local_path or None,
        s.status.value,
        s.onboarding_attempt,
        [q.model_dump(mode="json") for q in s.questions],
        s.answers,
        s.model_dump(mode="json"),
        s.version,
        seq,
        created,
        updated,
    )


async def _write_runs(conn: asyncpg.Connection, schema: str, t: _Touched) -> None:
    await conn.executemany(
        f"""INSERT INTO "{schema}".protocol_runs (id, project_id, number, protocol_name, slug, task_name,
            description, base_branch, protocol_root, status, paused_from, blocked_reason, planning_attempt,
            spec_hash, pr_number, pr_url, pr_merged, branch_head_sha, input_tokens, output_tokens,
            cost_micro_usd, state, version, last_seq, created_at, updated_at, planning_owner)
        VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,
                $26,$27)
        ON CONFLICT (id) DO UPDATE SET status=EXCLUDED.status, paused_from=EXCLUDED.paused_from,
            blocked_reason=EXCLUDED.blocked_reason, planning_attempt=EXCLUDED.planning_attempt,
            planning_owner=EXCLUDED.planning_owner,
            spec_hash=EXCLUDED.spec_hash, pr_number=EXCLUDED.pr_number, pr_url=EXCLUDED.pr_url,
            pr_merged=EXCLUDED.pr_merged, branch_head_sha=EXCLUDED.branch_head_sha,
            input_tokens=EXCLUDED.input_tokens, output_tokens=EXCLUDED.output_tokens,
            cost_micro_usd=EXCLUDED.cost_micro_usd, state=EXCLUDED.state, version=EXCLUDED.version,
            last_seq=EXCLUDED.last_seq, updated_at=EXCLUDED.updated_at""",
        [
            (
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
                s.model_dump(mode="json"),
                s.version,
                seq,
                created,
                updated,
                s.planning_owner or None,
            )
            for rid, (s, created, updated, seq) in t.runs.items()
        ],
    )
    run_ids = list(t.runs)
    step_ids = [st.step_run_id for s, _, _, _ in t.runs.values() for st in s.steps]
    # A re-plan replaces the steps of a run: drop the ones the plan no longer has.
    await conn.execute(
        f'DELETE FROM "{schema}".step_runs WHERE protocol_run_id = ANY($1) AND NOT (id = ANY($2))',
        run_ids,
        step_ids,
    )
    rows = [
        (
            st.step_run_id,
            rid,
            s.project_id,
            st.index,
            st.name,
            _short(st.step_type),
            st.status.value,
            st.retries,
            st.executing,
            st.engine_id or None,
            st.model or None,
            _short(st.qa_policy),
            st.qa_attempt,
            st.qa_pending,
            _short(st.last_verdict),
            st.summary or None,
            st.commit_sha or None,
            list(st.changed_files),
            st.failure_reason or None,
            *t.step_times[st.step_run_id],
            st.owner or None,
        )
        for rid, (s, _, _, _) in t.runs.items()
        for st in s.steps
    ]
    if rows:
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
            rows,
        )


def _short(member: enum.Enum) -> str | None:
    """``StepType.WORK`` → ``work``: read tables use the short lowercase names users know."""
    return None if member.name == "UNSPECIFIED" else member.name.lower()
