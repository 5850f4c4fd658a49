"""Apply a batch of events to the read model in one transaction, together with the checkpoint.

Aggregate rows are folded with the domain's own ``evolve`` (their folded state is kept in a ``state``
column), so the read model can never disagree with the rules. Within a batch each touched aggregate is
written once, a step row only when the batch changed that step, and the event rows go in with one COPY.

Two ways in: :func:`apply_batch` loads the touched aggregates inside the caller's transaction (rebuild,
tests); :class:`LiveProjection` folds a batch before its transaction, on state carried over from the
batches it folded before, so that the live projector folds batch N+1 while batch N commits.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
from deksdenflow_core.domain.project import AGGREGATE_TYPE as PROJECT_TYPE
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.protocol_run import AGGREGATE_TYPE as PROTOCOL_RUN_TYPE
from deksdenflow_core.domain.protocol_run import ProtocolRunState
from deksdenflow_core.envelope import RecordedEvent
from deksdenflow_core.errors import InfrastructureError
from deksdenflow_core.readmodel import PROJECTOR_NAME

from deksdenflow_projector.fold import Folded, Known, Touched, fold
from deksdenflow_projector.rows import Writes, build, write

# Events folded between two yields to the event loop while a batch is prepared: keeps the commit of the
# previous batch moving (each of its statements needs the loop for a moment) without much overhead.
_FOLD_SLICE = 5


class OutOfOrder(InfrastructureError):
    """A batch does not continue the checkpoint: events in between have not been applied. Retry later."""


class StaleBatch(InfrastructureError):
    """A batch was folded on state the read model no longer has (it was rebuilt, or written by someone
    else since). Nothing is written; the batch is folded again from the database on redelivery."""


def _jsonb_encode(value: Any) -> bytes:
    """``bytes`` are JSON text already (an event's body as stored): they go in as they are."""
    if isinstance(value, bytes):
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


async def _position(
    conn: asyncpg.Connection, schema: str, *, lock: bool = False, name: str = PROJECTOR_NAME
) -> tuple[int, int]:
    """The checkpoint, and the identity (oid) of the schema it is in: a rebuild swaps in another."""
    suffix = " FOR UPDATE" if lock else ""
    (row,) = await conn.fetch(
        f"SELECT $2::regnamespace::oid::int8 AS schema_oid, "
        f'(SELECT last_seq FROM "{schema}".checkpoints WHERE name = $1{suffix}) AS last_seq',
        name,
        f'"{schema}"',
    )
    return int(row["last_seq"] or 0), int(row["schema_oid"])


def _partial(events: list[RecordedEvent], last: int) -> list[RecordedEvent]:
    """The events after ``last`` of a part of the log (a partition of its aggregates): in order, with
    the other parts' decisions missing."""
    fresh = [e for e in events if e.stream_seq > last]
    if any(a.position >= b.position for a, b in itertools.pairwise(fresh)):
        raise OutOfOrder("a batch of a part of the log is not in log order", checkpoint=last)
    return fresh


def _fresh(events: list[RecordedEvent], last: int) -> list[RecordedEvent]:
    """The events after ``last``; they must continue it without a gap (the projector reads every
    subject of the stream, whose sequences have no holes; the events of one decision share its
    sequence and follow each other by index)."""
    fresh = [e for e in events if e.stream_seq > last]
    seq, index = last, -1
    for e in fresh:
        if e.stream_seq == seq and e.index == index + 1:
            index += 1
        elif e.stream_seq == seq + 1 and e.index == 0:
            seq, index = seq + 1, 0
        else:
            raise OutOfOrder(f"batch jumps from {seq}/{index} to {e.stream_seq}/{e.index}", checkpoint=last)
    return fresh


async def apply_batch(
    conn: asyncpg.Connection, schema: str, events: list[RecordedEvent], *, notify: bool = True
) -> int:
    """Apply ``events`` (in stream order) inside the caller's transaction; return the new checkpoint.

    Events at or below the checkpoint are skipped (redelivery). The rest must continue the checkpoint
    without a gap, otherwise ``OutOfOrder`` is raised and nothing is written.
    """
    last = await checkpoint(conn, schema, lock=True)
    fresh = _fresh(events, last)
    if not fresh:
        return last
    projects, runs = _aggregate_ids(fresh)
    known = await _load(conn, schema, projects, runs)
    touched = Touched()
    fold(fresh, known, touched)
    return await write(conn, schema, build(fresh, touched), last=fresh[-1].stream_seq, notify=notify)


@dataclass(frozen=True)
class PreparedBatch:
    """A batch folded ahead of its transaction by :class:`LiveProjection`."""

    base: int  # the checkpoint the batch continues
    last: int  # the checkpoint after it
    schema_oid: int  # the read-model schema its state was loaded from
    writes: Writes | None  # None: every event was at or below the checkpoint
    events: int = 0  # how many events it applies


class LiveProjection:
    """Folds batches before their transaction, on state carried over from the batches before.

    The live projector prepares batch N+1 while batch N commits, so batch N+1 cannot read what N wrote:
    the aggregates a batch touches stay in memory with their folded state (the least recently touched
    are dropped beyond ``cache_size``, once committed). Aggregates not in memory are read from the
    database; no batch in flight has touched them, so what is committed is their latest state.

    A commit checks that the read model is still where the batch was folded from (same checkpoint,
    same schema); if not — a rebuild was swapped in, or another writer got there — it raises
    ``StaleBatch``, and after ``discard`` everything is read from the database again.

    A rebuild may fold the log in parts, one per process, each with the aggregates of its own part:
    such a projection keeps its own ``checkpoint`` row, and its batches say up to which decision of
    the whole log they go (``prepare(..., through=...)``).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        *,
        notify: bool = True,
        cache_size: int = 4096,
        checkpoint: str = PROJECTOR_NAME,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._notify = notify
        self._cache_size = cache_size
        self._checkpoint = checkpoint
        # per aggregate type: id -> Known, least recently touched first
        self._cache: dict[str, dict[str, Folded]] = {"project": {}, "protocol_run": {}}
        self._base: int | None = None  # checkpoint after the last prepared batch; None: ask the database
        self._schema_oid = 0
        self._committed = 0

    def discard(self) -> None:
        """Forget the carried-over state: a batch it was built for will not commit."""
        for cached in self._cache.values():
            cached.clear()
        self._base = None

    async def prepare(self, events: list[RecordedEvent], *, through: int | None = None) -> PreparedBatch:
        """Fold ``events`` and build their rows; raises ``OutOfOrder`` if they leave a gap.

        ``through``: the events are this projection's part of the decisions up to that sequence (the
        others' are missing, so gaps are expected); the batch moves the checkpoint there.
        """
        if self._base is None:
            async with self._pool.acquire() as conn:
                self._base, self._schema_oid = await _position(conn, self._schema, name=self._checkpoint)
            self._committed = self._base
        base = self._base
        fresh = _fresh(events, base) if through is None else _partial(events, base)
        if through is not None and through > base:
            last = max(through, fresh[-1].stream_seq if fresh else through)
        elif not fresh:
            return PreparedBatch(base, base, self._schema_oid, None)
        else:
            last = fresh[-1].stream_seq
        projects, runs = _aggregate_ids(fresh)
        cached_projects, cached_runs = self._cache["project"], self._cache["protocol_run"]
        known = Known(
            projects={i: cached_projects[i] for i in projects if i in cached_projects},
            runs={i: cached_runs[i] for i in runs if i in cached_runs},
        )
        missing_projects = [i for i in projects if i not in known.projects]
        missing_runs = [i for i in runs if i not in known.runs]
        if missing_projects or missing_runs:
            async with self._pool.acquire() as conn:
                loaded = await _load(conn, self._schema, missing_projects, missing_runs)
            known.projects.update(loaded.projects)
            known.runs.update(loaded.runs)
        touched = Touched()
        for start in range(0, len(fresh), _FOLD_SLICE):
            fold(fresh[start : start + _FOLD_SLICE], known, touched)
            await asyncio.sleep(0)
        writes = build(fresh, touched)
        self._remember(touched)
        self._base = last
        return PreparedBatch(base, last, self._schema_oid, writes, len(fresh))

    async def commit(self, conn: asyncpg.Connection, prepared: PreparedBatch) -> int:
        """Write a prepared batch inside the caller's transaction; return the new checkpoint."""
        last, schema_oid = await _position(conn, self._schema, lock=True, name=self._checkpoint)
        if schema_oid != prepared.schema_oid:
            raise StaleBatch("the read model was replaced since the batch was folded", checkpoint=last)
        if last != prepared.base:
            if last >= prepared.last:  # all of it is applied already (redelivery)
                return last
            raise StaleBatch(
                f"the batch was folded at checkpoint {prepared.base}, the read model is at {last}",
                checkpoint=last,
            )
        if prepared.writes is None:
            return last
        self._committed = await write(
            conn,
            self._schema,
            prepared.writes,
            last=prepared.last,
            notify=self._notify,
            checkpoint=self._checkpoint,
        )
        return self._committed

    def _remember(self, touched: Touched) -> None:
        for cache, aggregates in (
            (self._cache["project"], touched.projects),
            (self._cache["protocol_run"], touched.runs),
        ):
            for aggregate_id, folded in aggregates.items():
                cache.pop(aggregate_id, None)
                cache[aggregate_id] = folded
            # Drop the least recently touched, but never one whose last change is not committed yet.
            while len(cache) > self._cache_size:
                oldest = next(iter(cache))
                if cache[oldest][3] > self._committed:
                    break
                del cache[oldest]


def _aggregate_ids(events: Iterable[RecordedEvent]) -> tuple[list[str], list[str]]:
    projects: dict[str, None] = {}
    runs: dict[str, None] = {}
    for e in events:
        env = e.envelope
        if env.aggregate_type == PROTOCOL_RUN_TYPE:
            runs[env.aggregate_id] = None
        elif env.aggregate_type == PROJECT_TYPE:
            projects[env.aggregate_id] = None
    return list(projects), list(runs)


async def _load(conn: asyncpg.Connection, schema: str, project_ids: list[str], run_ids: list[str]) -> Known:
    """The stored state of these aggregates (those that have a row)."""
    known = Known()
    query = 'SELECT id, state, created_at FROM "{}".{} WHERE id = ANY($1)'
    if project_ids:
        for row in await conn.fetch(query.format(schema, "projects"), project_ids):
            state = ProjectState.model_validate(row["state"])
            known.projects[row["id"]] = (state, row["created_at"], row["created_at"], 0)
    if run_ids:
        for row in await conn.fetch(query.format(schema, "protocol_runs"), run_ids):
            run = ProtocolRunState.model_validate(row["state"])
            known.runs[row["id"]] = (run, row["created_at"], row["created_at"], 0)
    return known
