"""The rows of a folded batch, and the statements that write them (one COPY for the events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import evaluation as eev
from deksdenflow_core.domain.evaluation import AGGREGATE_TYPE as EVALUATION_TYPE
from deksdenflow_core.envelope import RecordedEvent
from deksdenflow_core.readmodel import CHECKPOINT_CHANNEL, PROJECTOR_NAME
from deksdenflow_core.readmodel.columns import Table, column_list
from deksdenflow_core.readmodel.sources import FoldedAggregate, StepOfRun
from deksdenflow_core.readmodel.tables import (
    CI_REPORTS,
    EVENTS,
    PROJECT_TOKENS,
    PROJECTS,
    PROTOCOL_RUNS,
    STEP_RUNS,
    USAGE_RECORDS,
)

from deksdenflow_projector.fold import Touched

_EVENT_COLUMNS = tuple(c.name for c in EVENTS.written)


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
    # events of evaluations (rare): each written by a statement of its own, in log order
    evaluations: list[RecordedEvent]


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
        events=[EVENTS.row(e) for e in events],
        projects=[PROJECTS.row(FoldedAggregate(pid, *folded)) for pid, folded in t.projects.items()],
        tokens_issued=[PROJECT_TOKENS.row(f) for f in t.tokens_issued],
        tokens_revoked=t.tokens_revoked,
        runs=[PROTOCOL_RUNS.row(FoldedAggregate(rid, *folded)) for rid, folded in t.runs.items()],
        replanned=replanned,
        kept_steps=kept,
        steps=[
            STEP_RUNS.row(StepOfRun(st, rid, s.project_id, *t.steps_changed[st.step_run_id]))
            for rid, (s, _, _, _) in t.runs.items()
            for st in s.steps
            if st.step_run_id in t.steps_changed
        ],
        usage=[USAGE_RECORDS.row(f) for f in t.usage],
        ci=[CI_REPORTS.row(f) for f in t.ci],
        evaluations=[e for e in events if e.envelope.aggregate_type == EVALUATION_TYPE],
    )


def _on_conflict(table: Table[Any]) -> str:
    """A row written again (a later batch, a redelivery) updates what may change, or stays as it is."""
    if not table.updated:
        return f"ON CONFLICT ({table.key}) DO NOTHING"
    return f"ON CONFLICT ({table.key}) DO UPDATE SET " + ", ".join(f"{c}=EXCLUDED.{c}" for c in table.updated)


def _upsert_sql(table: Table[Any], schema: str, first: int) -> str:
    """Rows of one table inserted from column arrays (``unnest``, parameters from ``$first`` on): one
    statement for any number of rows."""
    arrays = ", ".join(f"${first + i}::{c.sql}[]" for i, c in enumerate(table.written))
    return (
        f'INSERT INTO "{schema}".{table.name} ({column_list(table.written)}) '
        f"SELECT * FROM unnest({arrays}) {_on_conflict(table)}"
    )


def _insert_sql(table: Table[Any], schema: str) -> str:
    """One row of ``table`` (for ``executemany``)."""
    values = ",".join(f"${i + 1}" for i in range(len(table.written)))
    return (
        f'INSERT INTO "{schema}".{table.name} ({column_list(table.written)}) '
        f"VALUES ({values}) {_on_conflict(table)}"
    )


def _batch_statement(schema: str, w: Writes, last: int, *, notify: bool, name: str) -> tuple[str, list[Any]]:
    """One statement writing every project, run, step, usage and CI row of a batch and the checkpoint
    after it (tables with no dependencies between them, so they can be written by the parts of one
    statement), and its arguments: the rows as column arrays."""
    parts: list[str] = []
    args: list[Any] = []
    for table, rows in (
        (PROJECTS, w.projects),
        (PROTOCOL_RUNS, w.runs),
        (STEP_RUNS, w.steps),
        (USAGE_RECORDS, w.usage),
        (CI_REPORTS, w.ci),
    ):
        if rows:
            parts.append(_upsert_sql(table, schema, len(args) + 1))
            args.extend(map(list, zip(*rows, strict=True)))
    n = len(args)
    stored = (
        f'INSERT INTO "{schema}".checkpoints (name, last_seq, updated_at) VALUES (${n + 1}, ${n + 2}, now()) '
        "ON CONFLICT (name) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = EXCLUDED.updated_at"
    )
    args += [name, last]
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


async def write(
    conn: asyncpg.Connection,
    schema: str,
    w: Writes,
    *,
    last: int,
    notify: bool,
    checkpoint: str = PROJECTOR_NAME,
) -> int:
    """Send a batch's rows and record ``last`` as applied, inside the caller's transaction (and tell
    listeners, unless ``notify`` is false); return ``last``. The events go with one COPY, the rows of
    the aggregates and the checkpoint (named ``checkpoint``) with one statement (tokens and re-plans, rare,
    by themselves)."""
    await conn.copy_records_to_table("events", schema_name=schema, columns=_EVENT_COLUMNS, records=w.events)
    if w.tokens_issued:
        await conn.executemany(_insert_sql(PROJECT_TOKENS, schema), w.tokens_issued)
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
    for recorded in w.evaluations:
        await _write_evaluation(conn, schema, recorded)
    sql, args = _batch_statement(schema, w, last, notify=notify, name=checkpoint)
    await conn.execute(sql, *args)
    return last


def _dump(value: Any) -> Any:
    """A contract model (or a tuple of them) as the JSON the read model keeps."""
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


async def _write_evaluation(conn: asyncpg.Connection, schema: str, recorded: RecordedEvent) -> None:
    """An evaluation's row and its scores' rows: started inserts the row, each score adds a row (and its
    project), completed and rescored set the conclusion; a re-score's scores are rows of their own."""
    e, at, eid = recorded.event, recorded.envelope.time, recorded.envelope.aggregate_id
    t = f'"{schema}"'
    if isinstance(e, eev.EvaluationStarted):
        await conn.execute(
            f"INSERT INTO {t}.evaluations (id, mode, baseline, status, scorer, task_ids, variants, "
            "thresholds, summaries, problems, rescores, project_ids, started_at, updated_at) "
            "VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, '[]', '[]', 0, '[]', $8, $8) "
            "ON CONFLICT (id) DO NOTHING",
            eid,
            e.mode,
            e.baseline,
            e.scorer,
            list(e.task_ids),
            _dump(e.variants),
            _dump(e.thresholds) or {},
            at,
        )
    elif isinstance(e, eev.EvaluationTaskScored) and e.score is not None:
        await _scores(conn, t, eid, 0, (e.score,), at)
    elif isinstance(e, eev.EvaluationCompleted):
        await conn.execute(
            f"UPDATE {t}.evaluations SET status = 'completed', passed = $2, summaries = $3, problems = $4, "
            "completed_at = $5, updated_at = $5 WHERE id = $1",
            eid,
            e.passed,
            _dump(e.summaries),
            list(e.problems),
            at,
        )
    elif isinstance(e, eev.EvaluationRescored):
        rescore = await conn.fetchval(
            f"UPDATE {t}.evaluations SET rescores = rescores + 1, scorer = $2, passed = $3, summaries = $4, "
            "problems = $5, updated_at = $6 WHERE id = $1 RETURNING rescores",
            eid,
            e.scorer,
            e.passed,
            _dump(e.summaries),
            list(e.problems),
            at,
        )
        await _scores(conn, t, eid, int(rescore or 0), e.scores, at)


async def _scores(
    conn: asyncpg.Connection, t: str, eid: str, rescore: int, scores: Any, at: datetime
) -> None:
    await conn.executemany(
        f"INSERT INTO {t}.evaluation_scores (id, evaluation_id, rescore, task_id, variant_id, project_id, "
        "score, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        [
            (
                f"{eid}/{rescore}/{s.variant_id}/{s.task_id}",
                eid,
                rescore,
                s.task_id,
                s.variant_id,
                s.project_id,
                _dump(s),
                at,
            )
            for s in scores
        ],
    )
    projects = sorted({s.project_id for s in scores if s.project_id})
    if projects:
        await conn.execute(
            f"UPDATE {t}.evaluations SET project_ids = (SELECT jsonb_agg(DISTINCT p ORDER BY p) "
            "FROM jsonb_array_elements_text(project_ids || $2::jsonb) AS p) WHERE id = $1",
            eid,
            projects,
        )
