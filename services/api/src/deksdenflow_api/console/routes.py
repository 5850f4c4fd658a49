"""The web console's pages: server-rendered HTML over the API's own routes, live through the event stream.

Every page is plain HTML (forms and links work without script); ``static/console.js`` adds the live part:
it listens to ``/console/stream`` (the API's event stream, authenticated by the session cookie) and
re-renders the page's live region from its ``…/live`` fragment when an event concerns it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from deksdenflow_core.contracts.generated.registry import EVENT_TYPES
from deksdenflow_core.specs.policy_words import policy_words
from fastapi import APIRouter, FastAPI, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import UploadFile
from starlette.staticfiles import StaticFiles

from deksdenflow_api.auth import principal_for_token
from deksdenflow_api.console import attention as attention_rules
from deksdenflow_api.console.client import Answer, ApiClient
from deksdenflow_api.console.explain import explain_refusal
from deksdenflow_api.console.session import (
    CsrfRefused,
    Session,
    SignInRequired,
    checked_session,
    clear_cookie,
    same_origin,
    session_of,
    set_cookie,
)
from deksdenflow_api.console.spec import prompt_rows
from deksdenflow_api.console.timeline import Timeline, Timelines, fold
from deksdenflow_api.context import context_of
from deksdenflow_api.errors import HttpError
from deksdenflow_api.routes.events import IdFilter, TypeFilter, _scope
from deksdenflow_api.sse import EventStream

router = APIRouter(include_in_schema=False)
_HERE = Path(str(resources.files("deksdenflow_api.console")))
templates = Jinja2Templates(directory=str(_HERE / "templates"))
# Every asset is the console's own: the browser refuses anything else (no CDN, no inline script, no frame).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
PAGE = 100  # rows of a list on screen at once: long histories are paged, never all in the DOM
RUN_ACTIONS = (
    "start",
    "pause",
    "resume",
    "cancel",
    "run_next_step",
    "retry_latest",
    "approve_plan",
    "continue",
    "open_pr",
)
_timelines = Timelines()
# A filter of a form: empty when not used (the API validates what is given).
Loose = Annotated[str | None, Query(max_length=200)]


def _usd(micro: int | None) -> str:
    return f"${(micro or 0) / 1_000_000:,.4f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def timeline_rows(
    timeline: Timeline, steps: dict[str, dict[str, Any]], qa: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The timeline as table rows: planning's attempts, then each step's header and attempts."""
    rows: list[dict[str, Any]] = []
    if timeline.planning:
        rows.append({"step": _PlanningHeader(), "status": timeline.planning[-1].outcome, "reports": []})
        rows.extend({"attempt": a} for a in timeline.planning)
    for line in timeline.ordered_steps():
        step = steps.get(line.step_run_id)
        rows.append(
            {
                "step": line,
                "status": step["status"] if step else line.status,
                "reports": qa.get(line.step_run_id, []),
            }
        )
        rows.extend({"attempt": a} for a in line.attempts)
    return rows


class _PlanningHeader:
    index = -1
    name = "Planning"
    commits: tuple[str, ...] = ()
    step_run_id = "planning"


templates.env.filters["usd"] = _usd
templates.env.filters["dur"] = _duration
templates.env.globals["timeline_rows"] = timeline_rows
templates.env.globals["prompt_rows"] = prompt_rows
templates.env.filters["policy_words"] = policy_words
templates.env.globals["event_types"] = ",".join(sorted(EVENT_TYPES))


def install(app: FastAPI) -> None:
    """The console's routes, assets and sign-in redirects on ``app``."""
    app.router.routes.extend(router.routes)
    app.mount("/console/static", StaticFiles(directory=str(_HERE / "static")), name="console-static")

    async def to_signin(request: Request, exc: Exception) -> Response:
        del exc
        target = "/console/signin?" + urlencode({"next": request.url.path})
        response = RedirectResponse(target, status_code=303)
        clear_cookie(response)
        return response

    async def refused(request: Request, exc: Exception) -> Response:
        del exc
        return HTMLResponse(
            "<!doctype html><html lang=en><title>Refused</title><main><h1>Refused</h1><p>This form was "
            "not sent from this console's page (CSRF check). Reload the page and try again.</p></main>",
            status_code=403,
        )

    app.add_exception_handler(SignInRequired, to_signin)
    app.add_exception_handler(CsrfRefused, refused)


def _render(
    request: Request, name: str, session: Session | None, status: int = 200, **values: Any
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        name,
        {"session": session, "csrf": session.csrf if session else "", **values},
        status_code=status,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def _back(path: str, **flash: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in flash.items() if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


# ---- sign-in -------------------------------------------------------------------------------------------


@router.get("/console", response_class=HTMLResponse)
@router.get("/console/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    await session_of(request)
    return RedirectResponse("/console/attention", status_code=303)


@router.get("/console/signin", response_class=HTMLResponse)
async def signin_form(request: Request, next: str = "/console/attention", error: str = "") -> Response:
    return _render(request, "signin.html", None, next=_safe_next(next), error=error)


@router.post("/console/signin", response_class=HTMLResponse)
async def signin(
    request: Request,
    token: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/console/attention",
) -> Response:
    if not same_origin(request):  # no signing a browser in from another site's page (login CSRF)
        raise CsrfRefused
    try:
        await principal_for_token(context_of(request), token)
    except HttpError:
        return _render(
            request,
            "signin.html",
            None,
            status=401,
            next=_safe_next(next),
            error="That token was not accepted: it is neither an admin token nor a live project token.",
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_cookie(request, response, token.strip())
    return response


@router.post("/console/signout")
async def signout(request: Request, csrf: Annotated[str, Form()]) -> Response:
    await checked_session(request, csrf)
    response = RedirectResponse("/console/signin", status_code=303)
    clear_cookie(response)
    return response


def _safe_next(value: str) -> str:
    return value if value.startswith("/console/") and "//" not in value else "/console/attention"


# ---- projects ------------------------------------------------------------------------------------------


@router.get("/console/projects", response_class=HTMLResponse)
async def projects_page(request: Request, created: str = "", token: str = "", error: str = "") -> Response:
    session = await session_of(request)
    async with ApiClient(request, session.token) as api:
        projects = (await api.get("/projects", limit=500)).body["data"]
        costs = {p["id"]: await _project_cost(api, p["id"]) for p in projects}
    return _render(
        request,
        "projects.html",
        session,
        projects=projects,
        costs=costs,
        created=created,
        new_token=token,
        error=error,
    )


async def _project_cost(api: ApiClient, project_id: str) -> dict[str, int]:
    runs = (await api.get(f"/projects/{project_id}/protocols", limit=500)).body.get("data", [])
    return {
        "runs": len(runs),
        "active": sum(r["status"] in ("planning", "planned", "running", "queued") for r in runs),
        "cost": sum(r["usage"]["cost_micro_usd"] for r in runs),
    }


@router.post("/console/projects", response_class=HTMLResponse)
async def register_project(
    request: Request,
    csrf: Annotated[str, Form()],
    name: Annotated[str, Form()],
    git_url: Annotated[str, Form()],
    base_branch: Annotated[str, Form()] = "main",
    ci_provider: Annotated[str, Form()] = "",
    forge_repo: Annotated[str, Form()] = "",
    engine: Annotated[str, Form()] = "",
    model: Annotated[str, Form()] = "",
    engine_qa: Annotated[str, Form()] = "",
    model_qa: Annotated[str, Form()] = "",
    qa_policy: Annotated[str, Form()] = "",
    run_mode: Annotated[str, Form()] = "autopilot",
    plan_approval: Annotated[str, Form()] = "auto",
    merge_mode: Annotated[str, Form()] = "never",
) -> Response:
    session = await checked_session(request, csrf)
    phases = ("planning", "decompose", "exec")
    engines = {p: engine for p in phases if engine} | (
        {"qa": engine_qa or engine} if engine_qa or engine else {}
    )
    models = {p: model for p in phases if model} | ({"qa": model_qa or model} if model_qa or model else {})
    body: dict[str, Any] = {
        "name": name,
        "git_url": git_url,
        "base_branch": base_branch or "main",
        "default_engines": engines,
        "default_models": models,
        "run_policy": {
            "mode": run_mode,
            "plan_approval": plan_approval,
            "merge": {"mode": merge_mode},
        },
    }
    if ci_provider:
        body["ci_provider"] = ci_provider
    if forge_repo:
        body["forge_repo"] = forge_repo
    if qa_policy == "skip":
        body["ci_policy"] = {"auto_qa_on_success": False}
    async with ApiClient(request, session.token) as api:
        answer = await api.post("/projects", body)
    if not answer.ok:
        return _back("/console/projects", error=explain_refusal("register the project", answer))
    # The project token is shown once, on the page this redirect leads to; it is not kept anywhere.
    return _render(
        request,
        "registered.html",
        session,
        project=answer.body,
        new_token=answer.body["project_token"],
    )


async def _runs_and_progress(api: ApiClient, project_id: str) -> tuple[list[Any], dict[str, Any]]:
    """A project's latest runs (one page of them) and each one's progress."""
    runs = (await api.get(f"/projects/{project_id}/protocols", limit=500)).body["data"][-PAGE:]
    return runs, {r["id"]: await _progress(api, r["id"]) for r in runs}


@router.get("/console/projects/{project_id}", response_class=HTMLResponse)
async def project_page(request: Request, project_id: str, error: str = "", notice: str = "") -> Response:
    session = await session_of(request)
    async with ApiClient(request, session.token) as api:
        project = await api.get(f"/projects/{project_id}")
        if not project.ok:
            return _not_found(request, session, project)
        runs, progress = await _runs_and_progress(api, project_id)
    return _render(
        request,
        "project.html",
        session,
        project=project.body,
        runs=runs,
        progress=progress,
        error=error,
        notice=notice,
    )


async def _progress(api: ApiClient, run_id: str) -> str:
    steps = (await api.get(f"/protocols/{run_id}/steps")).body.get("data", [])
    if not steps:
        return "no plan yet"
    done = sum(s["status"] == "completed" for s in steps)
    return f"{done}/{len(steps)} steps"


@router.post("/console/projects/{project_id}/clarifications")
async def answer_clarifications(request: Request, project_id: str) -> Response:
    form = await request.form()
    session = await checked_session(request, str(form.get("csrf", "")))
    answers = {
        str(k).removeprefix("answer_"): str(v).strip()
        for k, v in form.items()
        if str(k).startswith("answer_") and str(v).strip()
    }
    path = f"/console/projects/{project_id}"
    if not answers:
        return _back(path, error="Choose or type at least one answer.")
    async with ApiClient(request, session.token) as api:
        answer = await api.post(f"/projects/{project_id}/clarifications", {"answers": answers})
    if not answer.ok:
        return _back(path, error=explain_refusal("answer the clarifications", answer))
    return _back(path, notice=f"{len(answers)} answer(s) recorded.")


@router.post("/console/projects/{project_id}/protocols")
async def create_protocol(
    request: Request,
    project_id: str,
    csrf: Annotated[str, Form()],
    task_name: Annotated[str, Form()],
    description: Annotated[str, Form()] = "",
    start: Annotated[str, Form()] = "",
) -> Response:
    session = await checked_session(request, csrf)
    async with ApiClient(request, session.token) as api:
        created = await api.post(
            f"/projects/{project_id}/protocols", {"task_name": task_name, "description": description}
        )
        if not created.ok:
            return _back(
                f"/console/projects/{project_id}", error=explain_refusal("create the protocol", created)
            )
        run_id = created.body["id"]
        if start:
            started = await api.post(f"/protocols/{run_id}/actions/start")
            if not started.ok:
                return _back(f"/console/runs/{run_id}", error=explain_refusal("start", started))
    return _back(f"/console/runs/{run_id}", notice="Protocol created" + (" and started." if start else "."))


IMPORT_KINDS = ("speckit", "openspec", "codemachine")
# What an import reads of a chosen folder: spec-kit and OpenSpec are Markdown; CodeMachine adds its
# JavaScript and JSON. A CodeMachine workspace's run state (logs, memory, agents) is not sent.
_IMPORTED_SUFFIXES = {
    "speckit": (".md",),
    "openspec": (".md",),
    "codemachine": (".md", ".js", ".cjs", ".json"),
}
_RUN_STATE = (".codemachine/logs/", ".codemachine/memory/", ".codemachine/agents/")


@router.post("/console/projects/{project_id}/imports")
async def import_spec(request: Request, project_id: str) -> Response:
    """A folder chosen in the browser (its files uploaded with their paths) imported as a protocol through
    the API's import routes: checked there, every problem shown, nothing created when refused."""
    form = await request.form(max_files=1000)
    session = await checked_session(request, str(form.get("csrf", "")))
    path = f"/console/projects/{project_id}"
    kind = str(form.get("kind", ""))
    if kind not in IMPORT_KINDS:
        return _back(path, error=f"There is no kind of spec {kind!r}.")
    folder, files = "", {}
    for upload in form.getlist("files"):
        if not isinstance(upload, UploadFile) or not upload.filename:
            continue
        top, _, rel = upload.filename.replace("\\", "/").partition("/")
        folder = folder or top
        if not rel or not rel.endswith(_IMPORTED_SUFFIXES[kind]) or rel.startswith(_RUN_STATE):
            continue
        try:
            files[rel] = (await upload.read()).decode()
        except UnicodeDecodeError:
            return _back(path, error=f"{upload.filename} is not UTF-8 text.")
    if not files:
        return _back(path, error="Choose the spec's folder: no file of this kind of spec was in it.")
    body: dict[str, Any] = {"files": files}
    if kind != "codemachine":
        body |= {"kind": kind, "name": folder}
    if str(form.get("task_name", "")).strip():
        body["task_name"] = str(form["task_name"]).strip()
    route = "codemachine/import" if kind == "codemachine" else "protocols/import"
    async with ApiClient(request, session.token) as api:
        created = await api.post(f"/projects/{project_id}/{route}", body)
        if not created.ok:
            return _back(path, error=explain_refusal("import the spec", created))
        run_id = created.body["id"]
        if form.get("start"):
            started = await api.post(f"/protocols/{run_id}/actions/start")
            if not started.ok:
                return _back(f"/console/runs/{run_id}", error=explain_refusal("start", started))
    return _back(
        f"/console/runs/{run_id}",
        notice=f"Imported {len(files)} file(s) of {folder} as a protocol"
        + (", started." if form.get("start") else "."),
    )


# ---- a run ---------------------------------------------------------------------------------------------


async def _timeline(api: ApiClient, run_id: str) -> Timeline:
    """The run's timeline, folded on from the cached one (the caller's access is already checked)."""
    timeline = _timelines.get(run_id)
    fresh = await api.get_all(f"/protocols/{run_id}/events", after=timeline.position)
    for event in fresh:
        if event["position"] > timeline.position:  # a concurrent request may have folded it already
            timeline.apply(event)
    return timeline


async def _run_view(
    api: ApiClient, run_id: str, at: int | None = None, *, whole: bool = True
) -> dict[str, Any] | Answer:
    """What a run's page shows; ``whole`` false: only its live region (no project, no history)."""
    run = await api.get(f"/protocols/{run_id}")
    if not run.ok:
        return run
    steps = (await api.get(f"/protocols/{run_id}/steps")).body.get("data", [])
    if at is None:
        timeline = await _timeline(api, run_id)
        history: list[dict[str, Any]] = []
    else:
        history = await api.get_all(f"/protocols/{run_id}/events")
        timeline = fold(history, until=at)
    qa = {}
    for step in steps:
        if step["qa_attempt"] or step["last_verdict"]:
            reports = await api.get(f"/steps/{step['id']}/qa")
            qa[step["id"]] = reports.body.get("data", []) if reports.ok else []
    project = (await api.get(f"/projects/{run.body['project_id']}")).body if whole else None
    return {
        "run": run.body,
        "steps": {s["id"]: s for s in steps},
        "timeline": timeline,
        "qa": qa,
        "project": project,
        "history": history,
    }


@router.get("/console/runs/{run_id}", response_class=HTMLResponse)
async def run_page(
    request: Request, run_id: str, error: str = "", notice: str = "", page: Annotated[int, Query(ge=0)] = 0
) -> Response:
    session = await session_of(request)
    async with ApiClient(request, session.token) as api:
        view = await _run_view(api, run_id)
    if isinstance(view, Answer):
        return _not_found(request, session, view)
    return _render(
        request, "run.html", session, actions=RUN_ACTIONS, error=error, notice=notice, page=page, **view
    )


@router.get("/console/runs/{run_id}/live", response_class=HTMLResponse)
async def run_live(request: Request, run_id: str, page: Annotated[int, Query(ge=0)] = 0) -> Response:
    session = await session_of(request)
    async with ApiClient(request, session.token) as api:
        view = await _run_view(api, run_id, whole=False)
    if isinstance(view, Answer):
        return _not_found(request, session, view)
    return _render(request, "run_live.html", session, actions=RUN_ACTIONS, page=page, **view)


@router.post("/console/runs/{run_id}/actions/{action}")
async def run_action(
    request: Request,
    run_id: str,
    action: str,
    csrf: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    session = await checked_session(request, csrf)
    path = f"/console/runs/{run_id}"
    if action not in (*RUN_ACTIONS, "reject_plan"):
        return _back(path, error=f"There is no action {action!r}.")
    async with ApiClient(request, session.token) as api:
        body = {"reason": reason or "rejected from the console"} if action == "reject_plan" else None
        answer = await api.post(f"/protocols/{run_id}/actions/{action}", body)
    if not answer.ok:
        return _back(path, error=explain_refusal(action.replace("_", " "), answer))
    return _back(
        path, notice=f"{action.replace('_', ' ').capitalize()}: done, the run is {answer.body['status']}."
    )


@router.post("/console/steps/{step_id}/actions/{action}")
async def step_action(
    request: Request, step_id: str, action: str, csrf: Annotated[str, Form()], run_id: Annotated[str, Form()]
) -> Response:
    session = await checked_session(request, csrf)
    path = f"/console/runs/{run_id}"
    async with ApiClient(request, session.token) as api:
        answer = await api.post(f"/steps/{step_id}/actions/{action}")
    if not answer.ok:
        return _back(path, error=explain_refusal(action.replace("_", " ") + " the step", answer))
    return _back(path, notice=f"Step {action.replace('_', ' ')}: done.")


@router.get("/console/runs/{run_id}/diff", response_class=HTMLResponse)
async def diff_page(request: Request, run_id: str, commit: str = "", against: str = "parent") -> Response:
    session = await session_of(request)
    async with ApiClient(request, session.token) as api:
        run = await api.get(f"/protocols/{run_id}")
        if not run.ok:
            return _not_found(request, session, run)
        answer = await api.get(f"/protocols/{run_id}/diff", commit=commit or None, against=against)
    return _render(
        request,
        "diff.html",
        session,
        run=run.body,
        commit=commit,
        diff=answer.body if answer.ok else None,
        error="" if answer.ok else explain_refusal("show the diff", answer),
        against=against,
    )


@router.get("/console/runs/{run_id}/spec", response_class=HTMLResponse)
async def spec_page(request: Request, run_id: str) -> Response:
    """The run's plan as ``GET /protocols/{id}/spec`` gives it: checked by today's rules, its latest audit,
    its steps and their policies, the prompts of its phases and where it was imported from. Live: the
    run's events re-render it (``/spec/live``)."""
    return await _spec_view(request, run_id, whole=True)


@router.get("/console/runs/{run_id}/spec/live", response_class=HTMLResponse)
async def spec_live(request: Request, run_id: str) -> Response:
    return await _spec_view(request, run_id, whole=False)


async def _spec_view(request: Request, run_id: str, *, whole: bool) -> Response:
    """The spec page (``whole``) or its live fragment, which shows no project."""
    session = await session_of(request)
    async with ApiClient(request, session.token) as api:
        run = await api.get(f"/protocols/{run_id}")
        if not run.ok:
            return _not_found(request, session, run)
        spec = await api.get(f"/protocols/{run_id}/spec")
        if not spec.ok:
            return _not_found(request, session, spec)
        project = (await api.get(f"/projects/{run.body['project_id']}")).body if whole else None
    template = "spec.html" if whole else "spec_live.html"
    return _render(request, template, session, run=run.body, project=project, spec=spec.body)


@router.get("/console/runs/{run_id}/travel", response_class=HTMLResponse)
async def travel_page(
    request: Request, run_id: str, at: Annotated[int | None, Query(ge=0)] = None
) -> Response:
    session = await session_of(request)
    async with ApiClient(request, session.token) as api:
        view = await _run_view(api, run_id, at=at if at is not None else 2**62)
    if isinstance(view, Answer):
        return _not_found(request, session, view)
    history: list[dict[str, Any]] = view["history"]
    positions = [e["position"] for e in history]
    index = len(positions) - 1
    if at is not None and positions:
        index = max(0, max((i for i, p in enumerate(positions) if p <= at), default=0))
    current = history[index] if history else None
    window = history[max(0, index - PAGE // 2) : index + PAGE // 2]
    return _render(
        request,
        "travel.html",
        session,
        index=index,
        total=len(history),
        current=current,
        previous=positions[index - 1] if index > 0 else None,
        following=positions[index + 1] if index + 1 < len(positions) else None,
        first=positions[0] if positions else None,
        last=positions[-1] if positions else None,
        window=window,
        actions=(),
        page=0,
        **{k: v for k, v in view.items() if k != "history"},
    )


# ---- events --------------------------------------------------------------------------------------------


@router.get("/console/events", response_class=HTMLResponse)
async def events_page(
    request: Request,
    type: Loose = None,
    project_id: Loose = None,
    protocol_run_id: Loose = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    correlation_id: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    session = await session_of(request)
    filters = {
        "type": type or None,
        "project_id": project_id or None,
        "protocol_run_id": protocol_run_id or None,
    }
    async with ApiClient(request, session.token) as api:
        rows, more = await _filtered_events(api, filters, actor, correlation_id, since, after)
    query = {
        k: v
        for k, v in {**filters, "actor": actor, "correlation_id": correlation_id, "since": since}.items()
        if v
    }
    return _render(
        request,
        "events.html",
        session,
        events=rows,
        more=more,
        after=after,
        filters=query,
        query=urlencode(query),
        next_after=rows[-1]["position"] if rows else after,
    )


async def _filtered_events(
    api: ApiClient,
    filters: dict[str, str | None],
    actor: str | None,
    correlation_id: str | None,
    since: str | None,
    after: int,
    limit: int = PAGE,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of events with the API's filters, narrowed by actor, correlation and time."""
    rows: list[dict[str, Any]] = []
    since_time = _parse_since(since)
    while len(rows) <= limit:
        answer = await api.get("/events", after=after, limit=500, **filters)
        if not answer.ok:
            break
        page = answer.body["data"]
        for event in page:
            if actor and event["actor"] != actor:
                continue
            if correlation_id and event["correlation_id"] != correlation_id:
                continue
            if since_time and _when(event["time"]) < since_time:
                continue
            rows.append(event)
        if len(page) < 500:
            break
        after = page[-1]["position"]
    return rows[:limit], len(rows) > limit


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@router.get("/console/events.jsonl")
async def events_export(
    request: Request,
    type: Loose = None,
    project_id: Loose = None,
    protocol_run_id: Loose = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    correlation_id: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """The filtered audit log as JSON lines, streamed page by page."""
    session = await session_of(request)
    filters = {
        "type": type or None,
        "project_id": project_id or None,
        "protocol_run_id": protocol_run_id or None,
    }

    async def lines() -> AsyncIterator[bytes]:
        after = 0
        async with ApiClient(request, session.token) as api:
            while True:
                rows, more = await _filtered_events(
                    api, filters, actor, correlation_id, since, after, limit=500
                )
                for row in rows:
                    yield (json.dumps(row, separators=(",", ":")) + "\n").encode()
                if not more or not rows:
                    return
                after = rows[-1]["position"]

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="events.jsonl"'},
    )


@router.get("/console/stream")
async def stream(
    request: Request,
    project_id: IdFilter = None,
    protocol_run_id: IdFilter = None,
    type: TypeFilter = None,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    last_event_id: Annotated[str | None, Header(pattern=r"^\d{1,18}$")] = None,
) -> Response:
    """``GET /events/stream`` for the console's pages: the same stream, authenticated by the cookie."""
    session = await session_of(request)
    ctx = context_of(request)
    subscriber = ctx.fanout.subscribe((_scope(session.principal, project_id), protocol_run_id, type))
    return EventStream(ctx, subscriber, int(last_event_id) if last_event_id else after)


# ---- attention -----------------------------------------------------------------------------------------


@router.get("/console/attention", response_class=HTMLResponse)
async def attention_page(request: Request) -> Response:
    session = await session_of(request)
    async with ApiClient(request, session.token) as api:
        items = await attention_rules.collect(api)
    return _render(request, "attention.html", session, items=items)


@router.get("/console/attention/live", response_class=HTMLResponse)
async def attention_live(request: Request) -> Response:
    session = await session_of(request)
    async with ApiClient(request, session.token) as api:
        items = await attention_rules.collect(api)
    return _render(request, "attention_live.html", session, items=items)


def _not_found(request: Request, session: Session, answer: Answer) -> HTMLResponse:
    return _render(
        request,
        "error.html",
        session,
        status=answer.status if answer.status in (403, 404) else 502,
        message=explain_refusal("show this", answer),
    )


@router.get("/console/projects/{project_id}/live", response_class=HTMLResponse)
async def project_live(request: Request, project_id: str) -> Response:
    session = await session_of(request)
    async with ApiClient(request, session.token) as api:
        project = await api.get(f"/projects/{project_id}")
        if not project.ok:
            return _not_found(request, session, project)
        runs, progress = await _runs_and_progress(api, project_id)
    return _render(request, "project_live.html", session, project=project.body, runs=runs, progress=progress)
