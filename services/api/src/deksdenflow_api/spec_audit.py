"""The spec audit of a deployment: every stored plan of a run that has not ended, checked again by today's
spec rules (``protocol_run.audit_spec``; the domain records what it finds only when that changed).

It runs when an admin asks (``POST /admin/spec-audit``) and by itself when an API process starts with
spec rules newer than the last audit recorded: the version each audit reached is kept in a JetStream
key-value bucket (``<stream>_SPEC_AUDIT``), so a restart with the same rules audits nothing. Several
replicas starting at once may each audit: every run's audit is a decision on its own log with optimistic
concurrency, and the same findings are never recorded twice, so the second audit changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import nats.js.errors
from deksdenflow_core.aggregates import PROTOCOL_RUN
from deksdenflow_core.aio import cancelling
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.domain.protocol_run import TERMINAL_RUN_STATUSES
from deksdenflow_core.domain.protocol_run.audit import SPEC_RULES_VERSION
from deksdenflow_core.eventstore import AppendMeta, nats_unavailable_as_infrastructure
from deksdenflow_core.logging import get_logger
from nats.aio.client import Client as NATS
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from deksdenflow_api.context import ApiContext
from deksdenflow_api.reads import T, fetch_all

_log = get_logger(__name__)

# Runs with a stored plan that have not ended: what an audit checks.
_PLANNED_RUNS = (
    f"SELECT id, protocol_name FROM {T}.protocol_runs "
    "WHERE spec_hash IS NOT NULL AND status <> ALL($1::text[]) ORDER BY id"
)
_MARKER = "last"
# Runs audited at once (each is a load of its log, a decision and at most one append).
_CONCURRENCY = 8
# (the first soon: at start NATS is usually a moment from connected)
_RETRY_SECONDS = (0.2, 1.0, 2.0, 5.0, 15.0, 60.0)


@dataclass(frozen=True)
class RunAudit:
    protocol_run_id: str
    protocol_name: str
    problems: tuple[str, ...]
    recorded: bool
    # The sequence of the event recorded for the run (0: nothing was recorded).
    last_seq: int


async def audit_runs(ctx: ApiContext, meta_of: Callable[[str], AppendMeta]) -> list[RunAudit]:
    """Audit every run with a stored plan that has not ended, once the read model that lists them has
    every event the log had when the audit began (``HttpError`` 503 while it is behind)."""
    await ctx.at_least(await (await ctx.store()).stream_last_seq())
    rows = await fetch_all(ctx, _PLANNED_RUNS, [s.value for s in TERMINAL_RUN_STATUSES])
    repo = await ctx.repo()
    slots = asyncio.Semaphore(_CONCURRENCY)

    async def audit(run_id: str, name: str) -> RunAudit:
        async with slots:
            outcome = await repo.execute(PROTOCOL_RUN, run_id, cmd.AuditSpec(), meta_of(run_id), redecide=3)
        recorded = bool(outcome.appended.events)
        if recorded:
            ctx.appended(outcome.appended.last_seq)  # this process's reads wait for it
        return RunAudit(run_id, name, outcome.state.spec_findings, recorded, outcome.appended.last_seq)

    return list(await asyncio.gather(*(audit(r["id"], r["protocol_name"]) for r in rows)))


class AuditMarker:
    """The spec rules version the last audit of the deployment reached (a key-value bucket in NATS)."""

    def __init__(self, ctx: ApiContext) -> None:
        self.bucket = f"{ctx.event_store.stream_name}_SPEC_AUDIT"

    async def _kv(self, nc: NATS) -> KeyValue:
        js = nc.jetstream()
        try:
            return await js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            return await js.create_key_value(
                KeyValueConfig(bucket=self.bucket, history=1, storage=StorageType.FILE)
            )

    async def version(self, nc: NATS) -> int:
        with nats_unavailable_as_infrastructure("the spec audit marker"):
            kv = await self._kv(nc)
            try:
                entry = await kv.get(_MARKER)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                return 0
        return int(json.loads(entry.value or b"{}").get("rules_version", 0))

    async def record(self, nc: NATS, audits: list[RunAudit]) -> None:
        """Record that an audit by today's rules was done, unless one by these or newer rules was."""
        value = json.dumps(
            {
                "rules_version": SPEC_RULES_VERSION,
                "at": time.time(),
                "runs_checked": len(audits),
                "runs_with_findings": sum(1 for a in audits if a.problems),
            }
        ).encode()
        with nats_unavailable_as_infrastructure("the spec audit marker"):
            kv = await self._kv(nc)
            try:
                entry = await kv.get(_MARKER)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                entry = None
            if (
                entry is not None
                and json.loads(entry.value or b"{}").get("rules_version", 0) >= SPEC_RULES_VERSION
            ):
                return
            try:
                if entry is None:
                    await kv.create(_MARKER, value)
                else:
                    await kv.update(_MARKER, value, last=entry.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                pass  # another replica recorded its audit meanwhile


def system_meta(audit_id: str) -> Callable[[str], AppendMeta]:
    """What the audit of a starting process appends as (it is nobody's request)."""

    def meta(run_id: str) -> AppendMeta:
        return AppendMeta(
            source="deksdenflow/api",
            actor="system:spec-audit",
            correlation_id=run_id,
            causation_id=audit_id,
        )

    return meta


async def audit_if_behind(ctx: ApiContext) -> list[RunAudit] | None:
    """Audit the deployment if the last audit recorded used older rules (None: it need not)."""
    nc, marker = ctx.nats(), AuditMarker(ctx)
    if await marker.version(nc) >= SPEC_RULES_VERSION:
        return None
    audits = await audit_runs(ctx, system_meta(f"spec-audit-{SPEC_RULES_VERSION}-{uuid.uuid4().hex}"))
    await marker.record(nc, audits)
    return audits


async def audit_on_start(ctx: ApiContext) -> None:
    """``audit_if_behind`` once NATS and the read model answer (tried again until they do; a process
    that stops meanwhile cancels it)."""
    attempt = 0
    while True:
        try:
            audits = await audit_if_behind(ctx)
            break
        except Exception as exc:  # NATS or PostgreSQL not there yet: try again later
            if cancelling():  # the process stops, and a library swallowed the cancellation
                raise asyncio.CancelledError from exc
            delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
            _log.info("spec audit: not yet", error=f"{type(exc).__name__}: {exc}", retry_in=delay)
            attempt += 1
            await asyncio.sleep(delay)
    if audits is not None:
        _log.info(
            "spec audit done",
            rules_version=SPEC_RULES_VERSION,
            runs_checked=len(audits),
            recorded=sum(1 for a in audits if a.recorded),
            runs_with_findings=sum(1 for a in audits if a.problems),
        )
