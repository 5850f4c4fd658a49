"""Specs checked without creating anything, and the spec audit of every stored plan."""

from __future__ import annotations

from typing import Annotated

from deksdenflow_core.domain.protocol_run.audit import SPEC_RULES_VERSION
from fastapi import APIRouter, Body

from deksdenflow_api.auth import PrincipalDep
from deksdenflow_api.commanding import SEQUENCE_HEADER, CommandDep, append_meta
from deksdenflow_api.errors import errors
from deksdenflow_api.schemas import SpecAuditReport, SpecAuditRunPublic, SpecCheckIn, SpecCheckPublic
from deksdenflow_api.spec_audit import AuditMarker, audit_runs
from deksdenflow_api.spec_checks import check_spec

router = APIRouter(tags=["specs"])


@router.post("/specs/validate", response_model=SpecCheckPublic, responses=errors(401, 403, 422, 503))
async def validate_spec(
    body: Annotated[SpecCheckIn, Body(discriminator="kind")], principal: PrincipalDep
) -> SpecCheckPublic:
    """Check a spec as a run would accept it, creating nothing: a plan (``kind: plan``, its steps as
    ``StepPlan`` JSON) or an import (the body of ``POST /projects/{id}/protocols/import``, its ``kind``
    ``speckit`` or ``openspec``; or of ``POST /projects/{id}/codemachine/import`` with ``kind:
    codemachine``: 503 when the API has no Node.js to read a package with). The answer says whether it
    is valid, every problem by file, line and field, the steps it plans (imports) as and their policies.
    A body that is not such a spec is 422."""
    return await check_spec(body)


@router.post("/admin/spec-audit", response_model=SpecAuditReport, responses=errors(401, 403, 409, 503))
async def spec_audit(commander: CommandDep) -> SpecAuditReport:
    """Check the stored plan of every run that has not ended against today's spec rules (admin only).
    A run's findings are recorded (``protocol_run.spec_audited``) only when they differ from its last
    audit's, so auditing again records nothing new; a planned run with findings does not leave planned
    until it is planned again or they clear. Also run by each API process that starts with newer rules
    than the last audit's."""
    commander.principal.require_admin()
    ctx = commander.ctx
    audits = await audit_runs(
        ctx, lambda run_id: append_meta(commander.request, commander.principal, correlation_id=run_id)
    )
    await AuditMarker(ctx).record(ctx.nats(), audits)
    commander.response.headers[SEQUENCE_HEADER] = str(max((a.last_seq for a in audits), default=0))
    return SpecAuditReport(
        rules_version=SPEC_RULES_VERSION,
        runs_checked=len(audits),
        recorded=sum(1 for a in audits if a.recorded),
        runs=[
            SpecAuditRunPublic(
                protocol_run_id=a.protocol_run_id,
                protocol_name=a.protocol_name,
                problems=list(a.problems),
                recorded=a.recorded,
            )
            for a in audits
            if a.problems or a.recorded
        ],
    )
