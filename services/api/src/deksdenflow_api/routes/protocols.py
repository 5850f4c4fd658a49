"""Protocol runs and their steps: reads, and the actions that become events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, Outcome
from deksdenflow_core.contracts.base import TOLERANT
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.services.v1 import diffs
from deksdenflow_core.domain.project import ProjectStatus
from deksdenflow_core.domain.protocol_run import ProtocolRunCommand, ProtocolRunState
from deksdenflow_core.errors import IllegalTransition
from fastapi import APIRouter, Path, Query

from deksdenflow_api.auth import Principal
from deksdenflow_api.commanding import CommandDep
from deksdenflow_api.context import ApiContext, ContextDep
from deksdenflow_api.errors import HttpError, errors
from deksdenflow_api.reads import (
    EVENT_COLUMNS,
    PROTOCOL_COLUMNS,
    STEP_COLUMNS,
    ReadContext,
    ReaderDep,
    T,
    fetch_all,
    fetch_one,
    min_sequence_doc,
    project_of_run,
    protocol_body,
)
from deksdenflow_api.schemas import (
    ActionResult,
    DiffFilePublic,
    DiffPublic,
    EventPublic,
    EventsPublic,
    PlanRejection,
    ProtocolPublic,
    QaReportPublic,
    QaReportsPublic,
    SpecPublic,
    StepPublic,
    StepsPublic,
)
from deksdenflow_api.spec_checks import stored_spec

router = APIRouter(tags=["protocols"])
Id = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")]


class RunAction(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RUN_NEXT_STEP = "run_next_step"
    RETRY_LATEST = "retry_latest"
    OPEN_PR = "open_pr"
    APPROVE_PLAN = "approve_plan"
    CONTINUE = "continue"


class StepAction(StrEnum):
    RUN = "run"
    RUN_QA = "run_qa"
    APPROVE = "approve"


_RUN_COMMANDS: dict[RunAction, ProtocolRunCommand] = {
    RunAction.START: cmd.StartProtocolRun(),
    RunAction.PAUSE: cmd.PauseProtocolRun(),
    RunAction.RESUME: cmd.ResumeProtocolRun(),
    RunAction.CANCEL: cmd.CancelProtocolRun(reason="cancelled through the API"),
    RunAction.RUN_NEXT_STEP: cmd.RunNextStep(),
    RunAction.RETRY_LATEST: cmd.RetryLatestStep(),
    RunAction.OPEN_PR: cmd.OpenPullRequest(),
    RunAction.APPROVE_PLAN: cmd.ApprovePlan(),
    RunAction.CONTINUE: cmd.ContinueProtocolRun(reason="continued through the API"),
}


async def _require_project_unblocked(ctx: ApiContext, principal: Principal, protocol_run_id: str) -> None:
    repo = await ctx.repo()
    run = (await repo.load(PROTOCOL_RUN, protocol_run_id)).state
    if not run.exists:
        return  # the command itself answers 404
    principal.require_project(run.project_id)
    project = (await repo.load(PROJECT, run.project_id)).state
    if project.status is ProjectStatus.BLOCKED:
        raise IllegalTransition(
            "the project waits for answers to blocking clarification questions: "
            + ", ".join(project.unanswered_blocking)
            + " (POST /projects/{id}/clarifications)",
            current_status=run.status.value,
            project_status=project.status.value,
        )


def _guard(principal: Principal) -> Callable[[ProtocolRunState], None]:
    """Checked on the loaded run before anything is decided: a project token acts on its project only."""

    def authorize(state: ProtocolRunState) -> None:
        if state.exists:
            principal.require_project(state.project_id)

    return authorize


@router.get(
    "/protocols/{protocol_run_id}",
    response_model=ProtocolPublic,
    responses=errors(401, 403, 404, 422, 503),
    openapi_extra=min_sequence_doc(),
)
async def get_protocol(protocol_run_id: Id, read: ReaderDep) -> ProtocolPublic:
    """One protocol run."""
    row = await fetch_one(
        read.ctx,
        f"SELECT {PROTOCOL_COLUMNS} FROM {T}.protocol_runs WHERE id = $1",
        protocol_run_id,
        what="protocol run",
    )
    read.principal.require_project(row["project_id"])
    return ProtocolPublic(**protocol_body(row))


@router.get(
    "/protocols/{protocol_run_id}/spec",
    response_model=SpecPublic,
    responses=errors(401, 403, 404, 422, 503),
    openapi_extra=min_sequence_doc(),
)
async def get_spec(protocol_run_id: Id, read: ReaderDep) -> SpecPublic:
    """The run's accepted plan (spec): its steps with their policies, fallbacks and labels, its hash, what
    it was imported from, the prompts (name and version) each phase used or will use, and its validation
    status — the problems today's spec rules find in it — with the latest spec audit's findings."""
    row = await fetch_one(
        read.ctx,
        f"SELECT project_id, state FROM {T}.protocol_runs WHERE id = $1",
        protocol_run_id,
        what="protocol run",
    )
    read.principal.require_project(row["project_id"])
    usage = await fetch_all(
        read.ctx,
        f"SELECT step_run_id, phase, prompt_name, prompt_version, count(*) AS calls FROM {T}.usage_records "
        "WHERE protocol_run_id = $1 AND prompt_version IS NOT NULL GROUP BY 1, 2, 3, 4",
        protocol_run_id,
    )
    audits = await fetch_all(
        read.ctx,
        f"SELECT seq, time, payload FROM {T}.events WHERE protocol_run_id = $1 AND type = $2 "
        "ORDER BY position DESC LIMIT 1",
        protocol_run_id,
        "protocol_run.spec_audited",
    )
    state = ProtocolRunState.model_validate(row["state"], context=TOLERANT)
    return stored_spec(state, usage, audits[0] if audits else None)


@router.post(
    "/protocols/{protocol_run_id}/actions/reject_plan",
    response_model=ActionResult,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def reject_plan(protocol_run_id: Id, body: PlanRejection, commander: CommandDep) -> ActionResult:
    """Reject the plan of a planned run whose steps have not run: it is planned again, the reason given
    to the planner."""
    outcome = await commander.execute(
        PROTOCOL_RUN,
        protocol_run_id,
        cmd.RejectPlan(reason=body.reason),
        authorize=_guard(commander.principal),
    )
    return _action_result(protocol_run_id, "reject_plan", outcome)


@router.post(
    "/protocols/{protocol_run_id}/actions/{action}",
    response_model=ActionResult,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def run_action(
    protocol_run_id: Id,
    action: RunAction,
    ctx: ContextDep,
    commander: CommandDep,
) -> ActionResult:
    """start · pause · resume · cancel (cascades to open steps) · run_next_step · retry_latest · open_pr ·
    approve_plan (plan_approval: required) · continue (a run stopped at a step's checkpoint).

    ``start`` is refused (409) while the project has unanswered blocking clarification questions.
    ``retry_latest`` on a run blocked by a refused merge asks for the merge again."""
    if action is RunAction.START:
        await _require_project_unblocked(ctx, commander.principal, protocol_run_id)
    command = _RUN_COMMANDS[action]
    if action is RunAction.START and ctx.limits.limited:
        command = cmd.StartProtocolRun(queue=True)  # the admission admits it when a slot is free
    outcome = await commander.execute(
        PROTOCOL_RUN, protocol_run_id, command, authorize=_guard(commander.principal)
    )
    return _action_result(protocol_run_id, action.value, outcome)


def _action_result(protocol_run_id: str, action: str, outcome: Outcome[ProtocolRunState]) -> ActionResult:
    return ActionResult(
        protocol_run_id=protocol_run_id,
        action=action,
        status=outcome.state.status.value,
        events=[e.envelope.type for e in outcome.appended.events],
        event_sequence=outcome.appended.last_seq,
    )


@router.get(
    "/protocols/{protocol_run_id}/steps",
    response_model=StepsPublic,
    responses=errors(401, 403, 404, 422, 503),
    openapi_extra=min_sequence_doc(),
)
async def list_steps(protocol_run_id: Id, read: ReaderDep) -> StepsPublic:
    """The run's steps in order."""
    read.principal.require_project(await project_of_run(read.ctx, protocol_run_id))
    rows = await fetch_all(
        read.ctx,
        f"SELECT {STEP_COLUMNS} FROM {T}.step_runs WHERE protocol_run_id = $1 ORDER BY run_order, step_index",
        protocol_run_id,
    )
    return StepsPublic(data=[StepPublic(**r) for r in rows], count=len(rows))


@router.get(
    "/protocols/{protocol_run_id}/events",
    response_model=EventsPublic,
    responses=errors(401, 403, 404, 422, 503),
    openapi_extra=min_sequence_doc(),
)
async def run_events(
    protocol_run_id: Id,
    read: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[int, Query(ge=0, le=2**62, description="Only events after this position.")] = 0,
) -> EventsPublic:
    """The run's timeline, oldest first."""
    read.principal.require_project(await project_of_run(read.ctx, protocol_run_id))
    rows = await fetch_all(
        read.ctx,
        f"SELECT {EVENT_COLUMNS} FROM {T}.events "
        "WHERE protocol_run_id = $1 AND position > $2 ORDER BY position LIMIT $3",
        protocol_run_id,
        after,
        limit,
    )
    return EventsPublic(data=[EventPublic(**r) for r in rows], count=len(rows))


@router.get(
    "/steps/{step_run_id}/qa",
    response_model=QaReportsPublic,
    responses=errors(401, 403, 404, 422, 503),
    openapi_extra=min_sequence_doc(),
)
async def step_qa_reports(step_run_id: Id, read: ReaderDep) -> QaReportsPublic:
    """The step's quality reports, one per QA attempt, oldest first."""
    step = await fetch_one(
        read.ctx, f"SELECT project_id FROM {T}.step_runs WHERE id = $1", step_run_id, what="step"
    )
    read.principal.require_project(step["project_id"])
    rows = await fetch_all(
        read.ctx,
        f"SELECT seq, time, payload FROM {T}.events WHERE step_run_id = $1 AND type = $2 ORDER BY position",
        step_run_id,
        "protocol_run.qa_verdict_recorded",
    )
    data = [_qa_report(r["seq"], r["time"], r["payload"]) for r in rows]
    return QaReportsPublic(data=data, count=len(data))


def _qa_report(seq: int, at: datetime, p: dict[str, Any]) -> QaReportPublic:
    verdict: Literal["PASS", "FAIL"] = "PASS" if p.get("verdict") == "QA_VERDICT_PASS" else "FAIL"
    lists = {k: list(p.get(k) or []) for k in ("blocking", "warnings", "notes", "next_actions")}

    def section(title: str, items: list[str]) -> str:
        return f"### {title}\n" + ("\n".join(f"- {i}" for i in items) if items else "- none") + "\n"

    report = (
        f"## Summary\n{p.get('summary', '')}\n\n## Findings\n"
        + section("Blocking", lists["blocking"])
        + section("Warnings", lists["warnings"])
        + section("Notes", lists["notes"])
        + "\n"
        + section("Next actions", lists["next_actions"]).replace("###", "##", 1)
        + f"\nVerdict: {verdict}\n"
    )
    return QaReportPublic(
        qa_attempt=int(p.get("qa_attempt", 0)),
        verdict=verdict,
        summary=str(p.get("summary", "")),
        engine_id=p.get("engine_id") or None,
        model=p.get("model") or None,
        prompt_version=p.get("prompt_version") or None,
        time=at,
        event_seq=seq,
        report_md=report,
        **lists,
    )


@router.get(
    "/steps/{step_run_id}",
    response_model=StepPublic,
    responses=errors(401, 403, 404, 422, 503),
    openapi_extra=min_sequence_doc(),
)
async def get_step(step_run_id: Id, read: ReaderDep) -> StepPublic:
    """One step."""
    row = await fetch_one(
        read.ctx, f"SELECT {STEP_COLUMNS} FROM {T}.step_runs WHERE id = $1", step_run_id, what="step"
    )
    read.principal.require_project(row["project_id"])
    return StepPublic(**row)


@router.post(
    "/steps/{step_run_id}/actions/{action}",
    response_model=ActionResult,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def step_action(
    step_run_id: Id,
    action: StepAction,
    ctx: ReadContext,
    commander: CommandDep,
) -> ActionResult:
    """run (pending, or retry when failed/blocked) · run_qa · approve (needs_qa, failed or blocked)."""
    row = await fetch_one(
        ctx, f"SELECT protocol_run_id, project_id FROM {T}.step_runs WHERE id = $1", step_run_id, what="step"
    )
    commander.principal.require_project(row["project_id"])
    commands: dict[StepAction, ProtocolRunCommand] = {
        StepAction.RUN: cmd.RunStep(step_run_id=step_run_id),
        StepAction.RUN_QA: cmd.RunStepQa(step_run_id=step_run_id),
        StepAction.APPROVE: cmd.ApproveStep(step_run_id=step_run_id),
    }
    command = commands[action]
    run_id = row["protocol_run_id"]
    outcome = await commander.execute(PROTOCOL_RUN, run_id, command, authorize=_guard(commander.principal))
    step = outcome.state.step(step_run_id)
    return ActionResult(
        protocol_run_id=run_id,
        step_run_id=step_run_id,
        action=action.value,
        status=outcome.state.status.value,
        step_status=step.status.value if step else None,
        events=[e.envelope.type for e in outcome.appended.events],
        event_sequence=outcome.appended.last_seq,
    )


DIFF_LIMIT_BYTES = 1_000_000
Sha = Annotated[str, Query(pattern=r"^[0-9a-f]{7,64}$", description="A commit sha of the run's work.")]


@router.get(
    "/protocols/{protocol_run_id}/diff",
    response_model=DiffPublic,
    responses=errors(401, 403, 404, 422, 503),
    openapi_extra=min_sequence_doc(),
)
async def get_diff(
    protocol_run_id: Id,
    read: ReaderDep,
    commit: Sha | None = None,
    against: Annotated[
        Literal["parent", "base"],
        Query(description="parent: the commit's own change; base: everything from the base branch to it."),
    ] = "parent",
) -> DiffPublic:
    """The change of one commit (``commit``, e.g. a step's: against its parent, or with ``against=base``
    all of the run's work up to it), or else of the run's branch head against its base branch (from their
    merge base). Made by a git worker from its mirror of the repository (asked over NATS, so any API
    process can answer): 503 when no worker answers in time."""
    row = await fetch_one(
        read.ctx,
        f"SELECT project_id, base_branch, branch_head_sha FROM {T}.protocol_runs WHERE id = $1",
        protocol_run_id,
        what="protocol run",
    )
    read.principal.require_project(row["project_id"])
    to_base = commit is None or against == "base"
    head = (commit or row["branch_head_sha"]) if to_base else None
    if to_base and head is None:
        raise HttpError(404, "not_found", "the run has pushed nothing yet: there is no diff against its base")
    request = diffs.GetDiffRequest(
        project_id=row["project_id"],
        commit="" if to_base else commit or "",
        base_branch=row["base_branch"] if to_base else "",
        head=head or "",
        max_bytes=DIFF_LIMIT_BYTES,
    )
    try:
        store = await read.ctx.store()
        reply = await read.ctx.connections.nats.client.request(
            store.subjects.diffs_service,
            request.model_dump_json().encode(),
            timeout=read.ctx.settings.branch_list_timeout_seconds,
        )
        answer = diffs.GetDiffReply.model_validate_json(reply.data)
    except Exception as exc:  # no worker, timeout, NATS down
        raise HttpError(
            503,
            "unavailable",
            f"no git worker answered for the diff: {type(exc).__name__}",
            headers={"Retry-After": "2"},
        ) from exc
    if answer.error:
        raise HttpError(404, "not_found", f"the diff could not be made: {answer.error}")
    return DiffPublic(
        protocol_run_id=protocol_run_id,
        commit=None if to_base else commit,
        base=row["base_branch"] if to_base else None,
        head=head,
        subject=answer.subject,
        truncated=answer.truncated,
        files=split_patch(answer.patch),
        patch=answer.patch,
    )


def split_patch(patch: str) -> list[DiffFilePublic]:
    """A unified diff, one part per file (``diff --git a/x b/x`` starts each)."""
    files: list[DiffFilePublic] = []
    for part in patch.split("\ndiff --git ")[0:]:
        text = part if part.startswith("diff --git ") else "diff --git " + part
        if not text.strip() or text.strip() == "diff --git":
            continue
        first = text.splitlines()[0]
        path = first.rsplit(" b/", 1)[-1] if " b/" in first else first.removeprefix("diff --git ")
        files.append(DiffFilePublic(path=path, patch=text))
    return files
