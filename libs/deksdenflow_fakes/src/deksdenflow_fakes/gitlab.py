"""A local GitLab REST API v4 for the endpoints deksdenflow uses, optionally under a sub-path.

Checks like GitLab: ``PRIVATE-TOKEN`` (or ``Authorization: Bearer``) must match, else 401
``{"message": "401 Unauthorized"}``; projects are addressed by numeric id or URL-encoded path, so an
unencoded ``group/project`` lands on an unknown route (404) as it would on GitLab; missing required
parameters are 400 ``{"error": "title is missing"}``; a second open MR for the same branches is 409.
Stricter than GitLab on purpose: unknown parameters are 400, because GitLab silently drops them (a client
sending ``draft: true`` to the create endpoint would get a non-draft MR and never know).

Drafts follow GitLab's rule: an MR is a draft when its title starts with ``Draft:``, ``[Draft]`` or
``(Draft)``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, unquote

from deksdenflow_fakes.httpserver import FakeServer, Reply, Request

_TIME = "2024-01-01T00:00:00.000Z"
_DRAFT_TITLE = re.compile(r"^\s*(?:\[draft\]|\(draft\)|draft:|draft\s+-\s)", re.IGNORECASE)
_MR_CREATE_KEYS = {
    "source_branch", "target_branch", "title", "description", "assignee_id", "assignee_ids", "reviewer_ids",
    "labels", "milestone_id", "remove_source_branch", "allow_collaboration", "allow_maintainer_to_push",
    "squash", "target_project_id", "merge_after",
}  # fmt: skip
_PIPELINE_CREATE_KEYS = {"ref", "variables", "inputs"}
_CI_STATUS = {"success": "success", "failure": "failed", "running": "running"}

CiOutcome = Literal["success", "failure", "running"]


@dataclass
class FakeMergeRequest:
    """A merge request as the fake stores it."""

    iid: int
    source_branch: str
    target_branch: str
    title: str
    description: str
    sha: str
    state: Literal["opened", "closed", "merged"] = "opened"

    @property
    def draft(self) -> bool:
        return bool(_DRAFT_TITLE.match(self.title))


@dataclass
class FakeJob:
    """A CI job with its trace (log)."""

    id: int
    name: str
    status: str
    trace: str
    allow_failure: bool = False


@dataclass
class FakePipeline:
    """A pipeline for one commit."""

    id: int
    iid: int
    sha: str
    ref: str
    status: str
    source: str
    jobs: list[FakeJob] = field(default_factory=list)


@dataclass
class _Project:
    id: int
    path: str
    merge_requests: dict[int, FakeMergeRequest] = field(default_factory=dict)
    pipelines: list[FakePipeline] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)


_Handler = Callable[[_Project, Request, re.Match[str]], Reply]


class FakeGitLab(FakeServer):
    """GitLab on 127.0.0.1; the API lives at ``api_url`` (``<url><base_path>/api/v4``).

    Projects exist on demand unless ``projects`` lists the only ones that do.
    """

    def __init__(self, *, token: str, projects: Iterable[str] | None = None, base_path: str = "") -> None:
        super().__init__()
        self.token = token
        self.base_path = base_path.rstrip("/")
        self._state = threading.RLock()
        self._on_demand = projects is None
        self._projects: dict[str, _Project] = {}
        self._next_id = 5000
        for path in projects or ():
            self.add_project(path)
        self._routes: list[tuple[str, re.Pattern[str], _Handler]] = [
            ("GET", re.compile(r"/merge_requests"), self._list_mrs),
            ("POST", re.compile(r"/merge_requests"), self._create_mr),
            ("GET", re.compile(r"/merge_requests/(?P<iid>\d+)"), self._get_mr),
            ("POST", re.compile(r"/pipeline"), self._create_pipeline),
            ("GET", re.compile(r"/pipelines"), self._list_pipelines),
            ("GET", re.compile(r"/pipelines/(?P<pipeline>\d+)/jobs"), self._list_jobs),
            ("GET", re.compile(r"/jobs/(?P<job>\d+)/trace"), self._trace),
        ]

    @property
    def base_url(self) -> str:
        """What a client is configured with as the instance URL (``https://gitlab.example.com[/prefix]``)."""
        return f"{self.url}{self.base_path}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v4"

    # --- test helpers ---------------------------------------------------------------------------------

    def add_project(self, path: str) -> None:
        """Declare a project (needed when the fake was built with an explicit ``projects`` list)."""
        with self._state:
            self._projects[path] = _Project(id=self._new_id(), path=path)

    def set_branch(self, project: str, branch: str, sha: str) -> None:
        with self._state:
            self._project_or_fail(project).branches[branch] = sha

    def mrs(self, project: str) -> list[FakeMergeRequest]:
        with self._state:
            return list(self._project_or_fail(project).merge_requests.values())

    def add_mr(
        self, project: str, *, source_branch: str, target_branch: str = "main", title: str = "Draft: x"
    ) -> FakeMergeRequest:
        """An open MR that exists before the test's client looks (as another worker would have made it)."""
        with self._state:
            return self._new_mr(self._project_or_fail(project), source_branch, target_branch, title, "")

    def merge(self, project: str, iid: int) -> None:
        with self._state:
            self._project_or_fail(project).merge_requests[iid].state = "merged"

    def close(self, project: str, iid: int) -> None:
        with self._state:
            self._project_or_fail(project).merge_requests[iid].state = "closed"

    def pipelines(self, project: str) -> list[FakePipeline]:
        with self._state:
            return list(self._project_or_fail(project).pipelines)

    def set_ci(
        self,
        project: str,
        sha: str,
        *,
        state: CiOutcome,
        job_name: str = "test",
        log: str = "",
        ref: str = "main",
        passing_jobs: Sequence[str] = (),
        raw_status: str | None = None,
    ) -> FakePipeline:
        """Record a pipeline for ``sha``: ``passing_jobs`` succeed, ``job_name`` ends in ``state``.

        ``raw_status`` overrides the GitLab status of the pipeline and that job (``canceled``, ``manual``…).
        """
        status = raw_status or _CI_STATUS[state]
        with self._state:
            pipeline = self._new_pipeline(self._project_or_fail(project), sha, ref, status, "push")
            for name in passing_jobs:
                pipeline.jobs.append(FakeJob(self._new_id(), name, "success", f"{name}: ok\n"))
            pipeline.jobs.append(FakeJob(self._new_id(), job_name, status, log))
            return pipeline

    # --- dispatch -------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        with self._state:
            prefix = f"{self.base_path}/api/v4/"
            if not request.path.startswith(prefix):
                return _route_not_found()
            supplied = request.header("private-token") or _bearer(request.header("authorization"))
            if supplied != self.token:
                return Reply.json(401, {"message": "401 Unauthorized"})
            match = re.fullmatch(r"projects/(?P<id>[^/]+)(?P<rest>/.*)", request.path[len(prefix) :])
            if match is None:
                return _route_not_found()
            project = self._project(unquote(match["id"]))
            if project is None:
                return Reply.json(404, {"message": "404 Project Not Found"})
            for method, pattern, handler in self._routes:
                found = pattern.fullmatch(match["rest"])
                if found is not None and method == request.method:
                    return handler(project, request, found)
            return _route_not_found()

    # --- merge requests -------------------------------------------------------------------------------

    def _list_mrs(self, project: _Project, request: Request, _: re.Match[str]) -> Reply:
        state = request.param("state") or "all"
        mrs = [m for m in project.merge_requests.values() if state in {"all", m.state}]
        for key in ("source_branch", "target_branch"):
            if value := request.param(key):
                mrs = [m for m in mrs if getattr(m, key) == value]
        mrs.sort(key=lambda m: m.iid, reverse=True)
        return Reply.json(200, [self._mr_json(project, m) for m in mrs])

    def _get_mr(self, project: _Project, _: Request, match: re.Match[str]) -> Reply:
        mr = project.merge_requests.get(int(match["iid"]))
        if mr is None:
            return Reply.json(404, {"message": "404 Not found"})
        return Reply.json(200, self._mr_json(project, mr))

    def _create_mr(self, project: _Project, request: Request, _: re.Match[str]) -> Reply:
        params, problem = _params(
            request, allowed=_MR_CREATE_KEYS, required=("source_branch", "target_branch", "title")
        )
        if problem is not None:
            return problem
        source, target = str(params["source_branch"]), str(params["target_branch"])
        if source == target:
            return Reply.json(422, {"message": ["You can't use same project/branch for source and target"]})
        for mr in project.merge_requests.values():
            if mr.state == "opened" and mr.source_branch == source and mr.target_branch == target:
                message = f"Another open merge request already exists for this source branch: !{mr.iid}"
                return Reply.json(409, {"message": [message]})
        mr = self._new_mr(project, source, target, str(params["title"]), str(params.get("description") or ""))
        return Reply.json(201, self._mr_json(project, mr))

    def _new_mr(
        self, project: _Project, source: str, target: str, title: str, description: str
    ) -> FakeMergeRequest:
        iid = max(project.merge_requests, default=0) + 1
        mr = FakeMergeRequest(iid, source, target, title, description, self._branch_sha(project, source))
        project.merge_requests[iid] = mr
        return mr

    def _mr_json(self, project: _Project, mr: FakeMergeRequest) -> dict[str, Any]:
        return {
            "id": project.id * 1000 + mr.iid,
            "iid": mr.iid,
            "project_id": project.id,
            "title": mr.title,
            "description": mr.description,
            "state": mr.state,
            "created_at": _TIME,
            "updated_at": _TIME,
            "merged_at": _TIME if mr.state == "merged" else None,
            "closed_at": _TIME if mr.state == "closed" else None,
            "target_branch": mr.target_branch,
            "source_branch": mr.source_branch,
            "source_project_id": project.id,
            "target_project_id": project.id,
            "draft": mr.draft,
            "work_in_progress": mr.draft,
            "sha": mr.sha,
            "detailed_merge_status": "draft_status" if mr.draft else "mergeable",
            "web_url": f"{self.base_url}/{project.path}/-/merge_requests/{mr.iid}",
            "references": {"short": f"!{mr.iid}", "full": f"{project.path}!{mr.iid}"},
        }

    # --- pipelines ------------------------------------------------------------------------------------

    def _create_pipeline(self, project: _Project, request: Request, _: re.Match[str]) -> Reply:
        params, problem = _params(request, allowed=_PIPELINE_CREATE_KEYS, required=("ref",))
        if problem is not None:
            return problem
        ref = str(params["ref"])
        pipeline = self._new_pipeline(project, self._branch_sha(project, ref), ref, "created", "api")
        return Reply.json(201, self._pipeline_json(project, pipeline))

    def _list_pipelines(self, project: _Project, request: Request, _: re.Match[str]) -> Reply:
        pipelines = list(project.pipelines)
        for key in ("sha", "ref", "status", "source"):
            if value := request.param(key):
                pipelines = [p for p in pipelines if getattr(p, key) == value]
        if request.param("order_by") not in {None, "id", "status", "ref", "updated_at", "user_id"}:
            return Reply.json(400, {"error": "order_by does not have a valid value"})
        pipelines.sort(key=lambda p: p.id, reverse=request.param("sort") != "asc")
        per_page = int(request.param("per_page") or 20)
        return Reply.json(200, [self._pipeline_json(project, p) for p in pipelines[:per_page]])

    def _list_jobs(self, project: _Project, request: Request, match: re.Match[str]) -> Reply:
        pipeline = next((p for p in project.pipelines if p.id == int(match["pipeline"])), None)
        if pipeline is None:
            return Reply.json(404, {"message": "404 Not found"})
        scopes = set(request.query.get("scope[]", []) + request.query.get("scope", []))
        jobs = [j for j in pipeline.jobs if not scopes or j.status in scopes]
        return Reply.json(
            200, [self._job_json(project, pipeline, j) for j in sorted(jobs, key=lambda j: -j.id)]
        )

    def _trace(self, project: _Project, _: Request, match: re.Match[str]) -> Reply:
        job = next((j for p in project.pipelines for j in p.jobs if j.id == int(match["job"])), None)
        if job is None:
            return Reply.json(404, {"message": "404 Not found"})
        return Reply(status=200, body=job.trace.encode(), headers={"content-type": "text/plain"})

    def _new_pipeline(self, project: _Project, sha: str, ref: str, status: str, source: str) -> FakePipeline:
        pipeline = FakePipeline(self._new_id(), len(project.pipelines) + 1, sha, ref, status, source)
        project.pipelines.append(pipeline)
        return pipeline

    def _pipeline_json(self, project: _Project, pipeline: FakePipeline) -> dict[str, Any]:
        return {
            "id": pipeline.id,
            "iid": pipeline.iid,
            "project_id": project.id,
            "sha": pipeline.sha,
            "ref": pipeline.ref,
            "status": pipeline.status,
            "source": pipeline.source,
            "created_at": _TIME,
            "updated_at": _TIME,
            "web_url": f"{self.base_url}/{project.path}/-/pipelines/{pipeline.id}",
        }

    def _job_json(self, project: _Project, pipeline: FakePipeline, job: FakeJob) -> dict[str, Any]:
        return {
            "id": job.id,
            "name": job.name,
            "stage": "test",
            "status": job.status,
            "allow_failure": job.allow_failure,
            "ref": pipeline.ref,
            "pipeline": {
                "id": pipeline.id,
                "sha": pipeline.sha,
                "ref": pipeline.ref,
                "status": pipeline.status,
            },
            "web_url": f"{self.base_url}/{project.path}/-/jobs/{job.id}",
        }

    # --- internals ------------------------------------------------------------------------------------

    def _project(self, ident: str) -> _Project | None:
        if ident.isdigit():
            return next((p for p in self._projects.values() if p.id == int(ident)), None)
        if ident not in self._projects and self._on_demand and "/" in ident:
            self.add_project(ident)
        return self._projects.get(ident)

    def _project_or_fail(self, path: str) -> _Project:
        project = self._project(path)
        if project is None:
            raise KeyError(f"the fake has no project {path!r}; declare it with add_project()")
        return project

    def _branch_sha(self, project: _Project, branch: str) -> str:
        return project.branches.get(branch) or hashlib.sha1(f"{project.path}:{branch}".encode()).hexdigest()  # noqa: S324

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


def _bearer(header: str | None) -> str | None:
    scheme, _, credential = (header or "").partition(" ")
    return credential if scheme.lower() == "bearer" else None


def _route_not_found() -> Reply:
    return Reply.json(404, {"error": "404 Not Found"})


def _params(
    request: Request, *, allowed: set[str], required: Sequence[str]
) -> tuple[dict[str, Any], Reply | None]:
    """Query string, JSON or form body merged, as GitLab's API framework (Grape) does; then validated."""
    params: dict[str, Any] = {k: v[0] for k, v in request.query.items()}
    content_type = request.header("content-type") or ""
    if request.body and "json" in content_type:
        try:
            body = json.loads(request.body)
        except ValueError:
            return {}, Reply.json(400, {"error": "The provided content-type 'application/json' is invalid"})
        if not isinstance(body, Mapping):
            return {}, Reply.json(400, {"error": "body must be a JSON object"})
        params.update(body)
    elif request.body:
        params.update({k: v[0] for k, v in parse_qs(request.body.decode()).items()})
    unknown = sorted(set(params) - allowed)
    if unknown:
        return {}, Reply.json(
            400,
            {"error": f"{', '.join(unknown)} is not a parameter of this endpoint (GitLab would ignore it)"},
        )
    missing = [key for key in required if params.get(key) in (None, "")]
    if missing:
        return {}, Reply.json(400, {"error": ", ".join(f"{key} is missing" for key in missing)})
    return params, None
