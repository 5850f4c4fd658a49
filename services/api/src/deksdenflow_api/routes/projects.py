"""Projects, their tokens, their protocols and their branches."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiPolicy,
    EngineDefaults,
    FallbackChains,
    ImportedPlan,
    ImportedStepFile,
    ModelDefaults,
)
from deksdenflow_core.contracts.generated.deksdenflow.services.v1.branches import (
    ListBranchesReply,
    ListBranchesRequest,
)
from deksdenflow_core.domain.project import ProjectCommand
from deksdenflow_core.domain.provider import ci_provider
from deksdenflow_core.specs.check import SpecCheck
from deksdenflow_core.specs.model import ImportedProtocol
from fastapi import APIRouter, Path, Query, Response

from deksdenflow_api.auth import new_project_token
from deksdenflow_api.commanding import CommandDep, Commander
from deksdenflow_api.context import ApiContext, ContextDep
from deksdenflow_api.errors import HttpError, errors
from deksdenflow_api.policy import policy_in
from deksdenflow_api.reads import (
    PROJECT_COLUMNS,
    PROTOCOL_COLUMNS,
    ReaderDep,
    T,
    fetch_all,
    fetch_one,
    min_sequence_doc,
    project_body,
    project_from_state,
    protocol_body,
    protocol_from_state,
)
from deksdenflow_api.schemas import (
    BranchDelete,
    BranchesPublic,
    BranchPublic,
    CiPolicyIn,
    ClarificationsAnswer,
    CodeMachineImport,
    FallbackChainsIn,
    ProjectCreate,
    ProjectCreated,
    ProjectPublic,
    ProjectsPublic,
    ProtocolCreate,
    ProtocolCreated,
    ProtocolImport,
    ProtocolPublic,
    ProtocolsPublic,
    RunPolicyIn,
    TokenCreate,
    TokenCreated,
    WebhookSecretCreated,
)
from deksdenflow_api.spec_checks import parallel_of, read_codemachine, read_import
from deksdenflow_api.webhook_secrets import project_webhook_secret

router = APIRouter(tags=["projects"])
Id = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")]


@router.post(
    "/projects", status_code=201, response_model=ProjectCreated, responses=errors(401, 403, 409, 422, 503)
)
async def create_project(body: ProjectCreate, response: Response, commander: CommandDep) -> ProjectCreated:
    """Register a git repository as a project; the answer carries its first project token (shown once)."""
    commander.principal.require_admin()
    project_id = uuid.uuid4().hex
    token, digest = new_project_token()
    token_id = uuid.uuid4().hex[:12]
    models = ModelDefaults(**{k: v or "" for k, v in body.default_models.model_dump().items()})
    engines = EngineDefaults(**{k: v or "" for k, v in body.default_engines.model_dump().items()})
    commands: list[ProjectCommand] = [
        pcmd.RegisterProject(
            name=body.name,
            git_url=body.git_url,
            base_branch=body.base_branch,
            ci_provider=ci_provider(body.ci_provider),
            default_models=models,
            default_engines=engines,
            local_path=body.local_path or "",
            forge_repo=body.forge_repo or "",
            ci_policy=CiPolicy(**body.ci_policy.model_dump()) if body.ci_policy else None,
            run_policy=policy_in(body.run_policy),
            fallbacks=fallbacks_in(body.fallbacks),
        ),
        pcmd.IssueProjectToken(token_id=token_id, token_hash=digest, label="created with the project"),
    ]
    if body.onboard:
        commands.append(pcmd.RequestOnboarding())
    outcome = await commander.execute(PROJECT, project_id, *commands, new=True)  # a fresh id: no load
    at = outcome.appended.events[0].envelope.time
    response.headers["Location"] = f"/projects/{project_id}"
    return ProjectCreated(
        **project_from_state(outcome.state, at),
        project_token=token,
        token_id=token_id,
        event_sequence=outcome.appended.last_seq,
    )


@router.get(
    "/projects",
    response_model=ProjectsPublic,
    responses=errors(401, 422, 503),
    openapi_extra=min_sequence_doc(),
)
async def list_projects(
    read: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> ProjectsPublic:
    """Projects, oldest first (a project token sees only its own). Tokens are never listed."""
    rows = await fetch_all(
        read.ctx,
        f"SELECT {PROJECT_COLUMNS} FROM {T}.projects WHERE ($1::text IS NULL OR id = $1) "
        "ORDER BY created_at, id LIMIT $2 OFFSET $3",
        read.principal.project_id,
        limit,
        offset,
    )
    data = [ProjectPublic(**project_body(r)) for r in rows]
    return ProjectsPublic(data=data, count=len(data))


@router.get(
    "/projects/{project_id}",
    response_model=ProjectPublic,
    responses=errors(401, 403, 404, 422, 503),
    openapi_extra=min_sequence_doc(),
)
async def get_project(project_id: Id, read: ReaderDep) -> ProjectPublic:
    """One project."""
    read.principal.require_project(project_id)
    row = await fetch_one(
        read.ctx, f"SELECT {PROJECT_COLUMNS} FROM {T}.projects WHERE id = $1", project_id, what="project"
    )
    return ProjectPublic(**project_body(row))


@router.post(
    "/projects/{project_id}/onboard",
    status_code=202,
    response_model=ProjectPublic,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def onboard_project(project_id: Id, commander: CommandDep) -> ProjectPublic:
    """(Re-)onboard the project: the git worker checks the remote, adds starter assets on the
    ``deksdenflow/onboarding`` branch without overwriting anything, refreshes the working clone and asks
    its clarification questions."""
    return await _project_command(commander, project_id, pcmd.RequestOnboarding())


@router.post(
    "/projects/{project_id}/clarifications",
    response_model=ProjectPublic,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def answer_clarifications(
    project_id: Id,
    body: ClarificationsAnswer,
    commander: CommandDep,
) -> ProjectPublic:
    """Answer clarification questions by key; once every blocking one is answered the project is ready."""
    command = pcmd.AnswerClarifications(answers=body.answers)
    return await _project_command(commander, project_id, command)


@router.put(
    "/projects/{project_id}/ci-policy",
    response_model=ProjectPublic,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def set_ci_policy(
    project_id: Id,
    body: CiPolicyIn,
    commander: CommandDep,
) -> ProjectPublic:
    """Set how the project reacts to CI: QA on success, and how many CI fixes the agent may try per step."""
    command = pcmd.SetCiPolicy(ci_policy=CiPolicy(**body.model_dump()))
    return await _project_command(commander, project_id, command)


@router.put(
    "/projects/{project_id}/run-policy",
    response_model=ProjectPublic,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def set_run_policy(
    project_id: Id,
    body: RunPolicyIn,
    commander: CommandDep,
) -> ProjectPublic:
    """Replace how the project's protocols advance (what the body leaves unset takes the defaults).
    Protocols created from now on follow it; those already created keep the policy they were created with."""
    command = pcmd.SetRunPolicy(run_policy=policy_in(body))
    return await _project_command(commander, project_id, command)


@router.put(
    "/projects/{project_id}/fallbacks",
    response_model=ProjectPublic,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def set_fallbacks(project_id: Id, body: FallbackChainsIn, commander: CommandDep) -> ProjectPublic:
    """Replace the project's fallback chains (empty chains: the worker's apply)."""
    return await _project_command(commander, project_id, pcmd.SetFallbacks(fallbacks=fallbacks_in(body)))


def fallbacks_in(body: FallbackChainsIn | None) -> FallbackChains | None:
    return FallbackChains(**body.model_dump()) if body is not None else None


async def _create_protocol(
    commander: Commander, project_id: str, command: cmd.CreateProtocolRun, response: Response
) -> ProtocolCreated:
    """Create the protocol run (numbered by the system) and answer with it and where it is."""
    outcome = await commander.create_protocol_run(project_id, command)
    response.headers["Location"] = f"/protocols/{outcome.state.protocol_run_id}"
    at = outcome.appended.events[0].envelope.time
    return ProtocolCreated(**protocol_from_state(outcome.state, at), event_sequence=outcome.appended.last_seq)


async def _project_command(commander: Commander, project_id: str, command: ProjectCommand) -> ProjectPublic:
    """Run one command on a project the caller may act on; answer with the project as it is now."""
    commander.principal.require_project(project_id)
    outcome = await commander.execute(PROJECT, project_id, command)
    at = outcome.appended.events[-1].envelope.time if outcome.appended.events else datetime.now(UTC)
    return ProjectPublic(**project_from_state(outcome.state, at))


@router.post(
    "/projects/{project_id}/webhook-secret",
    status_code=201,
    response_model=WebhookSecretCreated,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def rotate_webhook_secret(
    project_id: Id, ctx: ContextDep, commander: CommandDep
) -> WebhookSecretCreated:
    """Issue the project's webhook secret (shown this once; the previous one stops working at once).

    Configure it as the GitHub webhook secret / GitLab secret token of the repository, and as
    ``DEKSDENFLOW_WEBHOOK_TOKEN`` of its CI callback. It authenticates deliveries of this project only.
    Needs the global ``DEKSDENFLOW_WEBHOOK_TOKEN`` of the API, which it is derived from (nothing secret is
    stored anywhere).
    """
    commander.principal.require_project(project_id)
    masters = ctx.settings.webhook_tokens()
    if not masters:
        raise HttpError(
            409,
            "webhooks_not_configured",
            "per-project webhook secrets derive from the API's DEKSDENFLOW_WEBHOOK_TOKEN, which is not set",
        )
    outcome = await commander.execute(PROJECT, project_id, pcmd.RotateWebhookSecret())
    generation = outcome.state.webhook_secret_generation
    return WebhookSecretCreated(
        project_id=project_id,
        webhook_secret=project_webhook_secret(masters[0], project_id, generation),
        generation=generation,
        event_sequence=outcome.appended.last_seq,
    )


@router.post(
    "/projects/{project_id}/tokens",
    status_code=201,
    response_model=TokenCreated,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def create_token(
    project_id: Id,
    body: TokenCreate,
    commander: CommandDep,
) -> TokenCreated:
    """Issue another project token (admin only). The token is in this answer and nowhere else."""
    commander.principal.require_admin()
    token, digest = new_project_token()
    token_id = uuid.uuid4().hex[:12]
    command = pcmd.IssueProjectToken(token_id=token_id, token_hash=digest, label=body.label)
    outcome = await commander.execute(PROJECT, project_id, command)
    return TokenCreated(
        token_id=token_id, project_token=token, label=body.label, event_sequence=outcome.appended.last_seq
    )


@router.post(
    "/projects/{project_id}/tokens/{token_id}/revoke",
    status_code=204,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def revoke_token(
    project_id: Id,
    token_id: Id,
    response: Response,
    commander: CommandDep,
) -> Response:
    """Revoke a project token (admin only)."""
    commander.principal.require_admin()
    await commander.execute(PROJECT, project_id, pcmd.RevokeProjectToken(token_id=token_id))
    response.status_code = 204
    return response


@router.post(
    "/projects/{project_id}/protocols",
    status_code=201,
    response_model=ProtocolCreated,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def create_protocol(
    project_id: Id,
    body: ProtocolCreate,
    response: Response,
    commander: CommandDep,
) -> ProtocolCreated:
    """Open a protocol for a task. The system assigns its number and name ``NNNN-slug`` (= its branch)."""
    commander.principal.require_project(project_id)
    command = cmd.CreateProtocolRun(
        task_name=body.task_name,
        description=body.description,
        base_branch=body.base_branch or "",
        run_policy=policy_in(body.run_policy),
    )
    return await _create_protocol(commander, project_id, command, response)


@router.post(
    "/projects/{project_id}/protocols/import",
    status_code=201,
    response_model=ProtocolCreated,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def import_protocol(
    project_id: Id,
    body: ProtocolImport,
    response: Response,
    commander: CommandDep,
) -> ProtocolCreated:
    """Open a protocol from a spec-kit feature folder or an OpenSpec change. It is checked first: every
    problem, by file, line and field, answers 422 and nothing is created."""
    commander.principal.require_project(project_id)
    # [P] tasks become steps of a parallel group only where the run may execute them at once
    project = await (await commander.ctx.repo()).load(PROJECT, project_id)
    checked, imported, source = read_import(body, parallel=parallel_of(body, project.state.run_policy))
    return await _import(commander, project_id, checked, imported, body, body.kind, source, response)


@router.post(
    "/projects/{project_id}/codemachine/import",
    status_code=201,
    response_model=ProtocolCreated,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def import_codemachine(
    project_id: Id,
    body: CodeMachineImport,
    response: Response,
    commander: CommandDep,
) -> ProtocolCreated:
    """Open a protocol from a CodeMachine workflow package (today's format: its JavaScript evaluated in a
    sandbox, never run here) or a first-version ``.codemachine`` workspace (read as data). Its steps keep
    their loop, trigger and checkpoint behaviours as policies; a tracking file resumes after its completed
    steps. It is checked first: every problem, by file, line and field, answers 422 and nothing is
    created; 503 if the API has no Node.js to read a package with."""
    commander.principal.require_project(project_id)
    checked, imported, source, kind = await read_codemachine(body)
    return await _import(
        commander, project_id, checked, imported, body, f"CodeMachine {kind}", source, response
    )


async def _import(
    commander: Commander,
    project_id: str,
    checked: SpecCheck,
    imported: ImportedProtocol,
    body: ProtocolImport | CodeMachineImport,
    kind: str,
    source: str,
    response: Response,
) -> ProtocolCreated:
    """Create the protocol run of a checked import, or answer 422 with every problem (nothing created)."""
    if checked.problems:
        raise HttpError(
            422,
            "invalid_spec",
            f"the {kind} spec has {len(checked.problems)} problem(s): {checked.problems[0]}",
            problems=[str(p) for p in checked.problems],
        )
    plan = ImportedPlan(
        source=source,
        context_md=imported.context_md,
        steps=[
            ImportedStepFile(
                filename=s.filename,
                content=s.content,
                labels=list(s.labels),
                policies=s.policies,
                engine_id=s.engine_id,
                model=s.model,
                parallel_group=s.parallel_group,
            )
            for s in imported.steps
        ],
    )
    command = cmd.CreateProtocolRun(
        task_name=body.task_name or imported.title,
        description=f"Imported from {source}.",
        base_branch=body.base_branch or "",
        run_policy=policy_in(body.run_policy),
        imported=plan,
    )
    return await _create_protocol(commander, project_id, command, response)


@router.get(
    "/projects/{project_id}/protocols",
    response_model=ProtocolsPublic,
    responses=errors(401, 403, 404, 422, 503),
    openapi_extra=min_sequence_doc(),
)
async def list_protocols(
    project_id: Id,
    read: ReaderDep,
    status: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> ProtocolsPublic:
    """The project's protocols by number (optionally one status)."""
    read.principal.require_project(project_id)
    await fetch_one(read.ctx, f"SELECT 1 FROM {T}.projects WHERE id = $1", project_id, what="project")
    rows = await fetch_all(
        read.ctx,
        f"SELECT {PROTOCOL_COLUMNS} FROM {T}.protocol_runs "
        "WHERE project_id = $1 AND ($2::text IS NULL OR status = $2) "
        "ORDER BY number LIMIT $3 OFFSET $4",
        project_id,
        status,
        limit,
        offset,
    )
    data = [ProtocolPublic(**protocol_body(r)) for r in rows]
    return ProtocolsPublic(data=data, count=len(data))


@router.get(
    "/projects/{project_id}/branches",
    response_model=BranchesPublic,
    responses=errors(401, 403, 404, 422, 503),
    openapi_extra=min_sequence_doc(),
)
async def list_branches(project_id: Id, read: ReaderDep) -> BranchesPublic:
    """The project's protocol branches: what the log knows (head pushed, PR, deletion) next to what the
    remote has now, as the git worker sees it (``remote_checked`` false if no worker answered in time)."""
    read.principal.require_project(project_id)
    await fetch_one(read.ctx, f"SELECT 1 FROM {T}.projects WHERE id = $1", project_id, what="project")
    rows = await fetch_all(
        read.ctx,
        f"SELECT id, protocol_name, status, branch_head_sha, pr_url, "
        f"(state->>'branch_deletion_requested')::boolean AS deletion_requested, "
        f"(state->>'branch_deleted')::boolean AS deleted "
        f"FROM {T}.protocol_runs WHERE project_id = $1 ORDER BY number",
        project_id,
    )
    heads, error = await _remote_heads(read.ctx, project_id)
    data = [
        BranchPublic(
            name=r["protocol_name"],
            protocol_run_id=r["id"],
            status=r["status"],
            head_sha=r["branch_head_sha"],
            pr_url=r["pr_url"],
            deletion_requested=bool(r["deletion_requested"]),
            deleted=bool(r["deleted"]),
            remote_sha=(heads or {}).get(r["protocol_name"]),
        )
        for r in rows
    ]
    return BranchesPublic(data=data, count=len(data), remote_checked=heads is not None, remote_error=error)


async def _remote_heads(ctx: ApiContext, project_id: str) -> tuple[dict[str, str] | None, str | None]:
    """Ask the git worker (request/reply) for the remote's branches; ``(None, why)`` if it cannot say."""
    try:
        store = await ctx.store()
        reply = await ctx.connections.nats.client.request(
            store.subjects.branches_service,
            ListBranchesRequest(project_id=project_id).model_dump_json().encode(),
            timeout=ctx.settings.branch_list_timeout_seconds,
        )
        answer = ListBranchesReply.model_validate_json(reply.data)
    except Exception as exc:  # no worker, timeout, NATS down: the log's view is still worth answering
        return None, f"the git worker did not answer: {type(exc).__name__}"
    if answer.error:
        return None, answer.error
    return dict(answer.heads), None


@router.post(
    "/projects/{project_id}/branches/{branch}/delete",
    status_code=202,
    response_model=BranchPublic,
    responses=errors(401, 403, 404, 409, 422, 503),
)
async def delete_branch(
    project_id: Id,
    branch: Annotated[str, Path(pattern=r"^\d{4}-[a-z0-9-]{1,60}$")],
    body: BranchDelete,
    ctx: ContextDep,
    commander: CommandDep,
) -> BranchPublic:
    """Ask the git worker to delete a protocol branch (once its run has ended; ``confirm`` must be true)."""
    commander.principal.require_project(project_id)
    if not body.confirm:
        raise HttpError(422, "confirmation_required", "set confirm to true to delete the branch")
    row = await fetch_one(
        ctx,
        f"SELECT id FROM {T}.protocol_runs WHERE project_id = $1 AND protocol_name = $2",
        project_id,
        branch,
        what="branch",
    )
    outcome = await commander.execute(PROTOCOL_RUN, row["id"], cmd.RequestBranchDeletion())
    s = outcome.state
    return BranchPublic(
        name=s.protocol_name,
        protocol_run_id=s.protocol_run_id,
        status=s.status.value,
        head_sha=s.branch_head_sha or None,
        pr_url=s.pr_url or None,
        deletion_requested=True,
    )
