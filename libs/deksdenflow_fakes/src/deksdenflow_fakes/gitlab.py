"""A local GitLab REST API v4 for the endpoints deksdenflow uses, optionally under a sub-path.

Checks like GitLab: ``PRIVATE-TOKEN`` (or ``Authorization: Bearer``) must match, else 401
``{"message": "401 Unauthorized"}``; projects are addressed by numeric id or URL-encoded path, so an
unencoded ``group/project`` lands on an unknown route (404) as it would on GitLab; missing required
parameters are 400 ``{"error": "title is missing"}``; a second open MR for the same branches is 409.
Stricter than GitLab on purpose: unknown parameters are 400, because GitLab silently drops them (a client
sending ``draft: true`` to the create endpoint would get a non-draft MR and never know).

Drafts follow GitLab's rule: an MR is a draft when its title starts with ``Draft:``, ``[Draft]`` or
``(Draft)``.

Served: merge requests (list/get/create/update), their notes (listed, paginated as GitLab does, and
added), approvals and merges; users looked up by
username; pipelines and their jobs and traces. A merge is recorded, not performed (the fake knows branch
heads only as shas): the MR becomes merged with a made-up, deterministic merge commit sha. "Merge when the
pipeline succeeds" is kept pending and carried out when ``set_ci`` records a successful pipeline for the
MR's head (and no approval is missing); a failed pipeline cancels it, as on GitLab.
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
_MR_UPDATE_KEYS = {"title", "description", "reviewer_ids", "target_branch", "state_event"}
_MERGE_KEYS = {
    "merge_commit_message", "squash_commit_message", "squash", "should_remove_source_branch",
    "merge_when_pipeline_succeeds", "auto_merge", "sha",
}  # fmt: skip
_NOTE_KEYS = {"body", "internal", "created_at", "merge_request_diff_head_sha"}
_PIPELINE_CREATE_KEYS = {"ref", "variables", "inputs"}
_CI_STATUS = {"success": "success", "failure": "failed", "running": "running"}
_FAILED_PIPELINE = frozenset({"failed", "canceled"})
_BOT = "deksdenflow-bot"  # the user the token belongs to: author of MRs and notes made through the API
_NOT_ALLOWED = {"message": "405 Method Not Allowed"}

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
    reviewers: list[str] = field(default_factory=list)  # usernames
    approved_by: list[str] = field(default_factory=list)
    notes: list[FakeNote] = field(default_factory=list)
    merge_when_pipeline_succeeds: bool = False
    squash: bool = False
    merge_commit_sha: str | None = None

    @property
    def draft(self) -> bool:
        return bool(_DRAFT_TITLE.match(self.title))


@dataclass(frozen=True)
class FakeNote:
    """A comment (note) on a merge request; a system note is GitLab's record of a change."""

    id: int
    author: str
    body: str
    system: bool = False


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
    approvals_required: int = 0


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
        self._users: dict[str, int] = {}
        self.add_user(_BOT)
        for path in projects or ():
            self.add_project(path)
        self._routes: list[tuple[str, re.Pattern[str], _Handler]] = [
            ("GET", re.compile(r"/merge_requests"), self._list_mrs),
            ("POST", re.compile(r"/merge_requests"), self._create_mr),
            ("GET", re.compile(r"/merge_requests/(?P<iid>\d+)"), self._get_mr),
            ("PUT", re.compile(r"/merge_requests/(?P<iid>\d+)"), self._update_mr),
            ("PUT", re.compile(r"/merge_requests/(?P<iid>\d+)/merge"), self._merge_mr),
            ("GET", re.compile(r"/merge_requests/(?P<iid>\d+)/notes"), self._list_notes),
            ("POST", re.compile(r"/merge_requests/(?P<iid>\d+)/notes"), self._add_note),
            ("GET", re.compile(r"/merge_requests/(?P<iid>\d+)/approvals"), self._approvals),
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
        """Make ``branch`` point at ``sha``; like a push, it moves the head of the open MRs from it."""
        with self._state:
            found = self._project_or_fail(project)
            found.branches[branch] = sha
            for mr in found.merge_requests.values():
                if mr.state == "opened" and mr.source_branch == branch:
                    mr.sha = sha

    def add_user(self, username: str) -> int:
        """A user of the instance (needed to be asked for a review); returns their id."""
        with self._state:
            return self._users.setdefault(username, self._new_id())

    def set_approvals_required(self, project: str, count: int) -> None:
        """How many approvals the project's rules require before an MR may be merged."""
        with self._state:
            found = self._project_or_fail(project)
            found.approvals_required = count
            self._carry_out_auto_merges(found)

    def approve(self, project: str, iid: int, user: str) -> None:
        """``user`` approves the MR (an MR waiting to merge when its pipeline succeeds may now merge)."""
        with self._state:
            self.add_user(user)
            found = self._project_or_fail(project)
            mr = found.merge_requests[iid]
            if user not in mr.approved_by:
                mr.approved_by.append(user)
            self._carry_out_auto_merges(found)

    def unapprove(self, project: str, iid: int, user: str) -> None:
        with self._state:
            self._project_or_fail(project).merge_requests[iid].approved_by.remove(user)

    def add_note(self, project: str, iid: int, author: str, body: str, *, system: bool = False) -> FakeNote:
        """``author`` comments on the MR, as on its web page (``system``: a note GitLab itself makes)."""
        with self._state:
            self.add_user(author)
            note = FakeNote(self._new_id(), author, body, system)
            self._project_or_fail(project).merge_requests[iid].notes.append(note)
            return note

    def mr(self, project: str, iid: int) -> FakeMergeRequest:
        with self._state:
            return self._project_or_fail(project).merge_requests[iid]

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
        """Merge the MR as someone on the web page would."""
        with self._state:
            found = self._project_or_fail(project)
            self._record_merge(found, found.merge_requests[iid])

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
            self._carry_out_auto_merges(self._project_or_fail(project))
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
            if request.path[len(prefix) :] == "users" and request.method == "GET":
                return self._find_users(request)
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

    def _update_mr(self, project: _Project, request: Request, match: re.Match[str]) -> Reply:
        mr = project.merge_requests.get(int(match["iid"]))
        if mr is None:
            return Reply.json(404, {"message": "404 Not found"})
        params, problem = _params(request, allowed=_MR_UPDATE_KEYS, required=())
        if problem is not None:
            return problem
        if not params:
            message = (
                f"{', '.join(sorted(_MR_UPDATE_KEYS))} are missing, at least one parameter must be provided"
            )
            return Reply.json(400, {"error": message})
        if params.get("state_event") not in {None, "close", "reopen"}:
            return Reply.json(400, {"error": "state_event does not have a valid value"})
        reviewers = params.get("reviewer_ids")
        if reviewers is not None:
            if not isinstance(reviewers, list) or not all(isinstance(i, int) for i in reviewers):
                return Reply.json(400, {"error": "reviewer_ids is invalid"})
            by_id = {user_id: name for name, user_id in self._users.items()}
            unknown = [i for i in reviewers if i not in by_id]
            if unknown:
                return Reply.json(
                    400,
                    {"error": f"reviewer_ids: no users with ids {unknown} (GitLab would drop them silently)"},
                )
            mr.reviewers = [by_id[i] for i in reviewers]
        if "title" in params:
            mr.title = str(params["title"])
        if "description" in params:
            mr.description = str(params["description"])
        if "target_branch" in params:
            mr.target_branch = str(params["target_branch"])
        if params.get("state_event") == "close" and mr.state == "opened":
            mr.state = "closed"
        elif params.get("state_event") == "reopen" and mr.state == "closed":
            mr.state = "opened"
        return Reply.json(200, self._mr_json(project, mr))

    def _list_notes(self, project: _Project, request: Request, match: re.Match[str]) -> Reply:
        """The MR's notes, newest first unless ``sort=asc`` (as GitLab), one page with its headers."""
        mr = project.merge_requests.get(int(match["iid"]))
        if mr is None:
            return Reply.json(404, {"message": "404 Not found"})
        if request.param("sort") not in {None, "asc", "desc"}:
            return Reply.json(400, {"error": "sort does not have a valid value"})
        if request.param("order_by") not in {None, "created_at", "updated_at"}:
            return Reply.json(400, {"error": "order_by does not have a valid value"})
        notes = mr.notes if request.param("sort") == "asc" else list(reversed(mr.notes))
        per_page = min(int(request.param("per_page") or 20), 100)
        page = max(int(request.param("page") or 1), 1)
        last = max((len(notes) + per_page - 1) // per_page, 1)
        shown = notes[(page - 1) * per_page : page * per_page]
        here = f"{self.api_url}/projects/{project.id}/merge_requests/{mr.iid}/notes?per_page={per_page}"
        headers = {
            "x-page": str(page),
            "x-per-page": str(per_page),
            "x-next-page": str(page + 1) if page < last else "",
            "x-total": str(len(notes)),
        }
        if page < last:
            headers["link"] = f'<{here}&page={page + 1}>; rel="next"'
        return Reply.json(200, [self._note_json(project, mr, n) for n in shown], headers=headers)

    def _add_note(self, project: _Project, request: Request, match: re.Match[str]) -> Reply:
        mr = project.merge_requests.get(int(match["iid"]))
        if mr is None:
            return Reply.json(404, {"message": "404 Not found"})
        params, problem = _params(request, allowed=_NOTE_KEYS, required=("body",))
        if problem is not None:
            return problem
        note = FakeNote(self._new_id(), _BOT, str(params["body"]))
        mr.notes.append(note)
        return Reply.json(
            201, self._note_json(project, mr, note) | {"internal": bool(params.get("internal", False))}
        )

    def _note_json(self, project: _Project, mr: FakeMergeRequest, note: FakeNote) -> dict[str, Any]:
        return {
            "id": note.id,
            "type": None,
            "body": note.body,
            "author": self._user_json(note.author),
            "created_at": _TIME,
            "updated_at": _TIME,
            "system": note.system,
            "noteable_id": project.id * 1000 + mr.iid,
            "noteable_type": "MergeRequest",
            "noteable_iid": mr.iid,
            "project_id": project.id,
            "resolvable": False,
            "confidential": False,
            "internal": False,
        }

    def _approvals(self, project: _Project, _: Request, match: re.Match[str]) -> Reply:
        mr = project.merge_requests.get(int(match["iid"]))
        if mr is None:
            return Reply.json(404, {"message": "404 Not found"})
        left = _approvals_left(project, mr)
        return Reply.json(
            200,
            {
                "id": project.id * 1000 + mr.iid,
                "iid": mr.iid,
                "project_id": project.id,
                "title": mr.title,
                "state": mr.state,
                "approved": left == 0,
                "approvals_required": project.approvals_required,
                "approvals_left": left,
                "approved_by": [{"user": self._user_json(name)} for name in mr.approved_by],
                "user_has_approved": _BOT in mr.approved_by,
                "user_can_approve": _BOT not in mr.approved_by,
            },
        )

    def _merge_mr(self, project: _Project, request: Request, match: re.Match[str]) -> Reply:
        """GitLab's checks in its order: open, head, draft; then merge now or when the pipeline succeeds."""
        mr = project.merge_requests.get(int(match["iid"]))
        if mr is None:
            return Reply.json(404, {"message": "404 Not found"})
        params, problem = _params(request, allowed=_MERGE_KEYS, required=())
        if problem is not None:
            return problem
        if mr.state != "opened":
            return Reply.json(405, _NOT_ALLOWED)
        if params.get("sha") not in {None, mr.sha}:
            return Reply.json(409, {"message": f"SHA does not match HEAD of source branch: {mr.sha}"})
        if mr.draft:
            return Reply.json(405, _NOT_ALLOWED)
        squash = _flag(params.get("squash"))
        pipeline = self._head_pipeline(project, mr)
        if _flag(params.get("merge_when_pipeline_succeeds")) or _flag(params.get("auto_merge")):
            # GitLab answers 405 when there is no pipeline to wait for, or the last one failed.
            if pipeline is None or pipeline.status in _FAILED_PIPELINE:
                return Reply.json(405, _NOT_ALLOWED)
            mr.merge_when_pipeline_succeeds, mr.squash = True, squash
            self._carry_out_auto_merges(project)
            return Reply.json(200, self._mr_json(project, mr))
        if _approvals_left(project, mr) > 0:
            return Reply.json(405, _NOT_ALLOWED)
        mr.squash = squash
        self._record_merge(project, mr)
        return Reply.json(200, self._mr_json(project, mr))

    def _carry_out_auto_merges(self, project: _Project) -> None:
        """Merge the MRs waiting for their pipeline once it succeeded; a failed one cancels the wait."""
        for mr in project.merge_requests.values():
            if mr.state != "opened" or not mr.merge_when_pipeline_succeeds:
                continue
            pipeline = self._head_pipeline(project, mr)
            if pipeline is not None and pipeline.status in _FAILED_PIPELINE:
                mr.merge_when_pipeline_succeeds = False
            elif pipeline is not None and pipeline.status == "success" and _approvals_left(project, mr) == 0:
                self._record_merge(project, mr)

    def _record_merge(self, project: _Project, mr: FakeMergeRequest) -> None:
        seed = f"{project.path}:{mr.iid}:{mr.sha}:{mr.squash}"
        mr.state, mr.merge_when_pipeline_succeeds = "merged", False
        mr.merge_commit_sha = hashlib.sha1(seed.encode()).hexdigest()  # noqa: S324

    def _head_pipeline(self, project: _Project, mr: FakeMergeRequest) -> FakePipeline | None:
        return max((p for p in project.pipelines if p.sha == mr.sha), key=lambda p: p.id, default=None)

    def _find_users(self, request: Request) -> Reply:
        wanted = (request.param("username") or "").lower()
        found = [name for name in self._users if not wanted or name.lower() == wanted]
        return Reply.json(200, [self._user_json(name) for name in found])

    def _user_json(self, username: str) -> dict[str, Any]:
        return {
            "id": self._users.get(username, 0),
            "username": username,
            "name": username,
            "state": "active",
            "web_url": f"{self.base_url}/{username}",
        }

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
            "merge_commit_sha": mr.merge_commit_sha,
            "squash_commit_sha": None,
            "squash": mr.squash,
            "merge_when_pipeline_succeeds": mr.merge_when_pipeline_succeeds,
            "reviewers": [self._user_json(name) for name in mr.reviewers],
            "author": self._user_json(_BOT),
            "detailed_merge_status": _merge_status(project, mr),
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


def _approvals_left(project: _Project, mr: FakeMergeRequest) -> int:
    return max(project.approvals_required - len(mr.approved_by), 0)


def _merge_status(project: _Project, mr: FakeMergeRequest) -> str:
    """GitLab's ``detailed_merge_status`` for what the fake knows of an MR."""
    if mr.state != "opened":
        return "not_open"
    if mr.draft:
        return "draft_status"
    return "not_approved" if _approvals_left(project, mr) else "mergeable"


def _flag(value: Any) -> bool:
    """A boolean parameter as Grape reads it from JSON or a form."""
    return value is True or str(value).lower() in {"true", "1"}


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
