"""Work in flight: the JetStream consumers (queues) and the jobs the read model shows as requested."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from deksdenflow_api.errors import errors
from deksdenflow_api.reads import ReaderDep, T, fetch_all, min_sequence_doc
from deksdenflow_api.schemas import JobPublic, JobsPublic, QueuePublic, QueuesPublic

router = APIRouter(tags=["queues"])


@router.get(
    "/queues",
    response_model=QueuesPublic,
    responses=errors(401, 403, 422, 503),
    openapi_extra=min_sequence_doc(),
)
async def list_queues(read: ReaderDep) -> QueuesPublic:
    """Every durable consumer of the log and of the feed, with its backlog (admin only)."""
    read.principal.require_admin()
    store = await read.ctx.store()
    js = read.ctx.js()
    consumers = [
        (stream, c) for stream in (store.stream, store.feed_stream) for c in await js.consumers_info(stream)
    ]
    data = [
        QueuePublic(
            name=c.name,
            stream=stream,
            filter_subjects=list(
                c.config.filter_subjects or ([c.config.filter_subject] if c.config.filter_subject else [])
            ),
            num_pending=c.num_pending or 0,
            num_ack_pending=c.num_ack_pending or 0,
            num_redelivered=c.num_redelivered or 0,
            num_waiting=c.num_waiting or 0,
        )
        for stream, c in sorted(consumers, key=lambda sc: (sc[1].name, sc[0]))
    ]
    return QueuesPublic(
        stream=store.stream,
        feed_stream=store.feed_stream,
        last_sequence=await store.stream_last_seq(),
        read_model_checkpoint=read.ctx.watcher.current,
        data=data,
    )


_JOBS = f"""
SELECT * FROM (
    SELECT 'planning' AS kind, CASE WHEN planning_owner IS NULL THEN 'queued' ELSE 'running' END AS status,
           project_id, id AS protocol_run_id, NULL AS step_run_id, planning_owner AS owner,
           planning_attempt AS attempt, updated_at
      FROM {T}.protocol_runs WHERE status = 'planning'
    UNION ALL
    SELECT 'execution', CASE WHEN owner IS NULL THEN 'queued' ELSE 'running' END, project_id,
           protocol_run_id, id, owner, retries, updated_at
      FROM {T}.step_runs WHERE executing
    UNION ALL
    SELECT 'qa', 'queued', project_id, protocol_run_id, id, NULL, qa_attempt, updated_at
      FROM {T}.step_runs WHERE qa_pending
) jobs
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR project_id = $2)
ORDER BY updated_at LIMIT $3
"""


@router.get(
    "/queues/jobs",
    response_model=JobsPublic,
    responses=errors(401, 422, 503),
    openapi_extra=min_sequence_doc(),
)
async def list_jobs(
    read: ReaderDep,
    status: Literal["queued", "running"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JobsPublic:
    """Planning, execution and QA requested and not finished, oldest first (a project token: its own)."""
    rows = await fetch_all(read.ctx, _JOBS, status, read.principal.project_id, limit)
    return JobsPublic(data=[JobPublic(**r) for r in rows], count=len(rows))
