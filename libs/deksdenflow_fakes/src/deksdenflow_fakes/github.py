"""A local GitHub REST API (version 2022-11-28) for the endpoints deksdenflow uses.

It checks requests the way GitHub does: a User-Agent is required (403 without), the token must match
(401 ``Bad credentials``), bodies are validated (422 for unknown or missing keys, wrong types), unknown
paths and methods are 404. It is stricter than GitHub in one place, on purpose: the ``Accept`` and
``X-GitHub-Api-Version`` headers must be the documented ones, so a client that forgets them fails here
instead of drifting when GitHub changes its defaults.

Served: pull requests (list/get/create/update), their requested reviewers, reviews and each review's
line comments, conversation comments (listed and posted) and merges (listings paginated with a ``Link``
header); workflow dispatches, combined commit status, check
runs, workflow runs and their jobs, and job logs — which answer 302 to a pre-signed-like URL on
``/_blobs/`` that, like real blob storage, refuses requests carrying an ``Authorization`` header. GraphQL
(``/graphql``, ``/api/graphql`` under GitHub Enterprise) serves one mutation, the one REST lacks:
``markPullRequestReadyForReview``.

A merge is recorded, not performed: the fake knows branch heads only as shas (``set_branch``), so a merge
marks the pull request merged with a made-up, deterministic merge commit sha.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from deksdenflow_fakes.httpserver import FakeServer, Reply, Request

API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
DOCS = "https://docs.github.com/rest"
_TIME = "2024-01-01T00:00:00Z"
_PULL_KEYS = {"title", "head", "head_repo", "base", "body", "maintainer_can_modify", "draft", "issue"}
_PULL_UPDATE_KEYS = {"title", "body", "state", "base", "maintainer_can_modify"}
_MERGE_KEYS = {"commit_title", "commit_message", "sha", "merge_method"}
_BOOL_KEYS = {"maintainer_can_modify", "draft"}
_MERGE_METHODS = ("merge", "squash", "rebase")
_NOT_ALLOWED = {
    "merge": "Merge commits are not allowed on this repository.",
    "squash": "Squash merges are not allowed on this repository.",
    "rebase": "Rebase merges are not allowed on this repository.",
}
_BOT = "deksdenflow-bot"  # the user the token belongs to: author of PRs and comments made through the API
_GRAPHQL_DOCS = "https://docs.github.com/graphql"

CiOutcome = Literal["success", "failure", "running"]
ReviewState = Literal["APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING"]


@dataclass(frozen=True)
class FakeReviewComment:
    """A review's comment on a line of the pull request's diff."""

    id: int
    path: str
    line: int
    body: str


@dataclass
class FakeReview:
    """A pull request review as GitHub lists it (a dismissal changes its state to ``DISMISSED``)."""

    id: int
    user: str
    state: ReviewState
    body: str
    commit_id: str
    comments: list[FakeReviewComment] = field(default_factory=list)


@dataclass(frozen=True)
class FakeComment:
    """A conversation (issue) comment on a pull request."""

    id: int
    user: str
    body: str


@dataclass
class FakePull:
    """A pull request as the fake stores it."""

    number: int
    head: str
    base: str
    title: str
    body: str
    draft: bool
    head_sha: str
    state: Literal["open", "closed"] = "open"
    merged: bool = False
    merge_commit_sha: str | None = None
    merge_method: str | None = None
    mergeable: bool = True  # False: GitHub found conflicts with the base
    requested_reviewers: list[str] = field(default_factory=list)
    reviews: list[FakeReview] = field(default_factory=list)
    comments: list[FakeComment] = field(default_factory=list)


@dataclass
class FakeJob:
    """A workflow job (GitHub also shows each job as a check run with the same id)."""

    id: int
    run_id: int
    name: str
    status: str
    conclusion: str | None
    log: str


@dataclass
class FakeRun:
    """A workflow run for one commit."""

    id: int
    workflow: str
    head_sha: str
    head_branch: str
    status: str
    conclusion: str | None
    jobs: list[FakeJob] = field(default_factory=list)


@dataclass(frozen=True)
class Dispatch:
    """A ``workflow_dispatch`` the fake accepted."""

    repo: str
    workflow: str
    ref: str
    inputs: dict[str, Any]


@dataclass
class _Repo:
    path: str
    workflows: set[str]
    default_branch: str = "main"
    pulls: dict[int, FakePull] = field(default_factory=dict)
    runs: list[FakeRun] = field(default_factory=list)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    merge_methods: set[str] = field(default_factory=lambda: set(_MERGE_METHODS))
    collaborators: set[str] | None = None  # None: anyone may be asked for a review
    # A bare repository whose branches are this repository's (pushes to it are pushes to the forge).
    git_dir: Path | None = None


_Handler = Callable[[_Repo, Request, re.Match[str]], Reply]


class FakeGitHub(FakeServer):
    """GitHub on 127.0.0.1. Repositories exist on demand unless ``repos`` lists the only ones that do.

    ``base_path`` serves the API under a prefix, as GitHub Enterprise Server does (``/api/v3``).
    """

    def __init__(self, *, token: str, repos: Iterable[str] | None = None, base_path: str = "") -> None:
        super().__init__()
        self.token = token
        self.base_path = base_path.rstrip("/")
        self.dispatches: list[Dispatch] = []
        self._state = threading.RLock()
        self._on_demand = repos is None
        self._repos: dict[str, _Repo] = {}
        self._next_id = 1000
        self._signed: dict[str, FakeJob] = {}  # signature of a log URL -> the job whose log it serves
        for path in repos or ():
            self.add_repo(path)
        self._routes: list[tuple[str, re.Pattern[str], _Handler]] = [
            ("GET", re.compile(r"/pulls"), self._list_pulls),
            ("POST", re.compile(r"/pulls"), self._create_pull),
            ("GET", re.compile(r"/pulls/(?P<number>\d+)"), self._get_pull),
            ("PATCH", re.compile(r"/pulls/(?P<number>\d+)"), self._update_pull),
            ("POST", re.compile(r"/pulls/(?P<number>\d+)/requested_reviewers"), self._request_reviewers),
            ("GET", re.compile(r"/pulls/(?P<number>\d+)/reviews"), self._list_reviews),
            ("PUT", re.compile(r"/pulls/(?P<number>\d+)/merge"), self._merge_pull),
            (
                "GET",
                re.compile(r"/pulls/(?P<number>\d+)/reviews/(?P<review>\d+)/comments"),
                self._review_comments,
            ),
            ("GET", re.compile(r"/issues/(?P<number>\d+)/comments"), self._list_comments),
            ("POST", re.compile(r"/issues/(?P<number>\d+)/comments"), self._comment),
            ("POST", re.compile(r"/actions/workflows/(?P<workflow>[^/]+)/dispatches"), self._dispatch),
            ("GET", re.compile(r"/commits/(?P<ref>[^/]+)/status"), self._combined_status),
            ("GET", re.compile(r"/commits/(?P<ref>[^/]+)/check-runs"), self._check_runs),
            ("GET", re.compile(r"/actions/runs"), self._list_runs),
            ("GET", re.compile(r"/actions/runs/(?P<run>\d+)/jobs"), self._list_jobs),
            ("GET", re.compile(r"/actions/jobs/(?P<job>\d+)/logs"), self._job_logs),
        ]

    @property
    def api_url(self) -> str:
        """What a client uses as its API base URL."""
        return f"{self.url}{self.base_path}"

    @property
    def _graphql_path(self) -> str:
        """github.com: ``/graphql`` next to the REST root; GitHub Enterprise: ``/api/graphql``."""
        return "/api/graphql" if self.base_path.endswith("/api/v3") else f"{self.base_path}/graphql"

    # --- test helpers ---------------------------------------------------------------------------------

    def add_repo(
        self,
        path: str,
        *,
        workflows: Sequence[str] = ("ci.yml",),
        default_branch: str = "main",
        merge_methods: Iterable[str] = _MERGE_METHODS,
    ) -> None:
        """Declare a repository (needed when the fake was built with an explicit ``repos`` list).

        ``merge_methods`` are the repository's allowed merge methods (its settings on GitHub).
        """
        with self._state:
            self._repos[path] = _Repo(
                path=path,
                workflows=set(workflows),
                default_branch=default_branch,
                merge_methods=set(merge_methods),
            )

    def link_git(self, repo: str, git_dir: Path) -> None:
        """Take ``repo``'s branches from the bare repository ``git_dir``, as GitHub knows what was pushed
        to it: a branch's head, and so an open pull request's head, is what git says at each request
        (a branch ``set_branch`` moved keeps that sha)."""
        with self._state:
            self._repo_or_fail(repo).git_dir = git_dir

    def set_branch(self, repo: str, branch: str, sha: str) -> None:
        """Make ``branch`` point at ``sha`` (otherwise a branch's head is a stable made-up sha).

        Like a push, it moves the head of the open pull requests from that branch.
        """
        with self._state:
            found = self._repo_or_fail(repo)
            found.branches[branch] = sha
            for pull in found.pulls.values():
                if pull.state == "open" and pull.head == branch:
                    pull.head_sha = sha

    def set_collaborators(self, repo: str, logins: Iterable[str]) -> None:
        """Only these users may be asked for a review (by default anyone may)."""
        with self._state:
            self._repo_or_fail(repo).collaborators = set(logins)

    def add_review(
        self,
        repo: str,
        number: int,
        user: str,
        state: ReviewState,
        *,
        body: str = "",
        comments: Iterable[tuple[str, int, str]] = (),
    ) -> FakeReview:
        """``user`` submits a review of the PR's current head, with line ``comments`` (path, line, body); it
        answers their review request, if any."""
        with self._state:
            pull = self._repo_or_fail(repo).pulls[number]
            review = FakeReview(self._new_id(), user, state, body, pull.head_sha)
            review.comments.extend(
                FakeReviewComment(self._new_id(), path, line, text) for path, line, text in comments
            )
            pull.reviews.append(review)
            if state != "PENDING" and user in pull.requested_reviewers:
                pull.requested_reviewers.remove(user)
            return review

    def add_comment(self, repo: str, number: int, user: str, body: str) -> FakeComment:
        """``user`` comments on the PR's conversation, as on its web page."""
        with self._state:
            comment = FakeComment(self._new_id(), user, body)
            self._repo_or_fail(repo).pulls[number].comments.append(comment)
            return comment

    def dismiss_review(self, repo: str, number: int, user: str) -> None:
        """Dismiss ``user``'s latest approval or change request, as a maintainer would on GitHub."""
        with self._state:
            pull = self._repo_or_fail(repo).pulls[number]
            for review in reversed(pull.reviews):
                if review.user == user and review.state in {"APPROVED", "CHANGES_REQUESTED"}:
                    review.state = "DISMISSED"
                    return
            raise KeyError(f"{user} has no approval or change request on #{number} to dismiss")

    def pull(self, repo: str, number: int) -> FakePull:
        with self._state:
            return self._repo_or_fail(repo).pulls[number]

    def node_id(self, repo: str, number: int) -> str:
        """The PR's GraphQL global id (its ``node_id`` in REST answers)."""
        return _node_id(repo, number)

    def prs(self, repo: str) -> list[FakePull]:
        with self._state:
            return list(self._repo_or_fail(repo).pulls.values())

    def add_pull(
        self, repo: str, *, head: str, base: str = "main", title: str = "", draft: bool = True
    ) -> FakePull:
        """An open PR that exists before the test's client looks (as another worker would have made it)."""
        with self._state:
            return self._new_pull(
                self._repo_or_fail(repo), head=head, base=base, title=title, body="", draft=draft
            )

    def merge(self, repo: str, number: int, *, method: str = "merge") -> None:
        """Merge the PR as someone on the web page would."""
        with self._state:
            found = self._repo_or_fail(repo)
            self._record_merge(found, found.pulls[number], method)

    def close(self, repo: str, number: int) -> None:
        with self._state:
            self._repo_or_fail(repo).pulls[number].state = "closed"

    def set_ci(
        self,
        repo: str,
        sha: str,
        *,
        state: CiOutcome,
        job_name: str = "test",
        log: str = "",
        workflow: str = "ci.yml",
        branch: str = "main",
        passing_jobs: Sequence[str] = (),
    ) -> FakeRun:
        """Record a workflow run for ``sha``: ``passing_jobs`` pass, then ``job_name`` ends as ``state``."""
        status, conclusion = ("in_progress", None) if state == "running" else ("completed", state)
        with self._state:
            run = FakeRun(self._new_id(), workflow, sha, branch, status, conclusion)
            for name in passing_jobs:
                run.jobs.append(
                    FakeJob(self._new_id(), run.id, name, "completed", "success", f"{name}: ok\n")
                )
            run.jobs.append(FakeJob(self._new_id(), run.id, job_name, status, conclusion, log))
            self._repo_or_fail(repo).runs.append(run)
            return run

    def add_status(
        self, repo: str, sha: str, *, state: str, context: str = "ci/external", target_url: str = ""
    ) -> None:
        """A legacy commit status (``success``, ``pending``, ``failure`` or ``error``) from an outside CI."""
        with self._state:
            statuses = self._repo_or_fail(repo).statuses.setdefault(sha, [])
            statuses.append({"state": state, "context": context, "target_url": target_url or None})

    # --- dispatch -------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        with self._state:
            if request.path.startswith("/_blobs/job-logs/"):
                return self._blob(request)
            if request.path == self._graphql_path:
                return self._graphql(request)
            if not request.path.startswith(f"{self.base_path}/"):
                return _not_found()
            refused = self._refuse(request)
            if refused is not None:
                return refused
            return self._route(request, request.path[len(self.base_path) :])

    def _refuse(self, request: Request) -> Reply | None:
        """GitHub's checks before it looks at the path: user agent, credentials, media type, version."""
        refused = self._refuse_caller(request, docs=DOCS)
        if refused is not None:
            return refused
        if request.header("accept") != MEDIA_TYPE:
            return Reply.json(
                415,
                {"message": f"Unsupported 'Accept' header: {request.header('accept')!r}; use {MEDIA_TYPE}"},
            )
        version = request.header("x-github-api-version")
        if version != API_VERSION:
            return Reply.json(
                400, {"message": f"API version {version!r} is not supported.", "documentation_url": DOCS}
            )
        return None

    def _refuse_caller(self, request: Request, *, docs: str) -> Reply | None:
        """The checks REST and GraphQL share: a user agent and the right token."""
        if not request.header("user-agent"):
            return Reply.json(
                403,
                {"message": "Request forbidden by administrative rules. "
                 "Please make sure your request has a User-Agent header"},
            )  # fmt: skip
        auth = request.header("authorization")
        if auth is None:
            return Reply.json(401, {"message": "Requires authentication", "documentation_url": docs})
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() not in {"bearer", "token"} or credential != self.token:
            return Reply.json(401, {"message": "Bad credentials", "documentation_url": docs})
        return None

    def _route(self, request: Request, path: str) -> Reply:
        match = re.fullmatch(r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)", path)
        if match is None:
            return _not_found()
        repo = self._repo(f"{match['owner']}/{match['name']}")
        if repo is None:
            return _not_found()
        if repo.git_dir is not None:
            for pull in repo.pulls.values():
                if pull.state == "open" and pull.head not in repo.branches:
                    pull.head_sha = self._branch_sha(repo, pull.head)
        for method, pattern, handler in self._routes:
            found = pattern.fullmatch(match["rest"])
            if found is not None and method == request.method:
                return handler(repo, request, found)
        return _not_found()

    # --- pull requests --------------------------------------------------------------------------------

    def _list_pulls(self, repo: _Repo, request: Request, _match: re.Match[str]) -> Reply:
        state = request.param("state") or "open"
        head = request.param("head")
        pulls = [p for p in repo.pulls.values() if state in {"all", p.state}]
        # As on GitHub, a head filter without its "owner:" part is ignored.
        if head is not None and ":" in head:
            owner, _sep, branch = head.partition(":")
            pulls = [p for p in pulls if owner == _owner(repo) and p.head == branch]
        if base := request.param("base"):
            pulls = [p for p in pulls if p.base == base]
        pulls.sort(key=lambda p: p.number, reverse=True)
        return Reply.json(200, [self._pull_json(repo, p, detailed=False) for p in pulls])

    def _get_pull(self, repo: _Repo, _: Request, match: re.Match[str]) -> Reply:
        pull = repo.pulls.get(int(match["number"]))
        if pull is None:
            return _not_found()
        return Reply.json(200, self._pull_json(repo, pull, detailed=True))

    def _create_pull(self, repo: _Repo, request: Request, _match: re.Match[str]) -> Reply:
        body, problem = _json_object(request)
        if problem is not None:
            return problem
        invalid = _invalid_keys(body, allowed=_PULL_KEYS, required=("head", "base"), booleans=_BOOL_KEYS)
        if invalid is None and "title" not in body and "issue" not in body:
            invalid = '"title" wasn\'t supplied.'
        if invalid is not None:
            return Reply.json(422, {"message": f"Invalid request.\n\n{invalid}", "documentation_url": DOCS})
        head = str(body["head"])
        if ":" in head:
            owner, _sep, head = head.partition(":")
            if owner != _owner(repo):
                return _validation_failed({"resource": "PullRequest", "field": "head", "code": "invalid"})
        base = str(body["base"])
        if head == base:
            return _validation_failed(
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"No commits between {base} and {head}",
                }
            )
        if any(p.state == "open" and p.head == head and p.base == base for p in repo.pulls.values()):
            message = f"A pull request already exists for {_owner(repo)}:{head}."
            return _validation_failed({"resource": "PullRequest", "code": "custom", "message": message})
        pull = self._new_pull(
            repo,
            head=head,
            base=base,
            title=str(body.get("title", "")),
            body=str(body.get("body") or ""),
            draft=bool(body.get("draft", False)),
        )
        return Reply.json(201, self._pull_json(repo, pull, detailed=True))

    def _new_pull(self, repo: _Repo, *, head: str, base: str, title: str, body: str, draft: bool) -> FakePull:
        number = max(repo.pulls, default=0) + 1
        pull = FakePull(number, head, base, title, body, draft, self._branch_sha(repo, head))
        repo.pulls[number] = pull
        return pull

    def _pull_json(self, repo: _Repo, pull: FakePull, *, detailed: bool) -> dict[str, Any]:
        owner = _owner(repo)
        data: dict[str, Any] = {
            "url": f"{self.api_url}/repos/{repo.path}/pulls/{pull.number}",
            "id": 10_000 + pull.number,
            "node_id": _node_id(repo.path, pull.number),
            "html_url": f"{self.url}/{repo.path}/pull/{pull.number}",
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "body": pull.body,
            "draft": pull.draft,
            "user": {"login": _BOT, "type": "User"},
            "created_at": _TIME,
            "updated_at": _TIME,
            "closed_at": _TIME if pull.state == "closed" else None,
            "merged_at": _TIME if pull.merged else None,
            "merge_commit_sha": pull.merge_commit_sha,
            "requested_reviewers": [{"login": login, "type": "User"} for login in pull.requested_reviewers],
            "auto_merge": None,
            "head": {"label": f"{owner}:{pull.head}", "ref": pull.head, "sha": pull.head_sha,
                     "repo": {"full_name": repo.path}},
            "base": {"label": f"{owner}:{pull.base}", "ref": pull.base,
                     "sha": self._branch_sha(repo, pull.base), "repo": {"full_name": repo.path}},
        }  # fmt: skip
        if detailed:  # only the single-PR endpoints carry these
            data.update(
                {
                    "merged": pull.merged,
                    "mergeable": None if pull.state == "closed" else pull.mergeable,
                    "mergeable_state": _mergeable_state(pull),
                    "merged_by": {"login": _BOT, "type": "User"} if pull.merged else None,
                    "commits": 1,
                }
            )
        return data

    def _update_pull(self, repo: _Repo, request: Request, match: re.Match[str]) -> Reply:
        pull = repo.pulls.get(int(match["number"]))
        if pull is None:
            return _not_found()
        body, problem = _json_object(request)
        if problem is not None:
            return problem
        invalid = _invalid_keys(body, allowed=_PULL_UPDATE_KEYS, required=(), booleans=_BOOL_KEYS)
        if invalid is None and body.get("state", "open") not in {"open", "closed"}:
            invalid = f"For 'properties/state', {body['state']!r} is not one of open, closed."
        if invalid is not None:
            return _invalid(invalid)
        if "title" in body:
            pull.title = str(body["title"])
        if "body" in body:
            pull.body = str(body["body"])
        if "base" in body:
            pull.base = str(body["base"])
        if body.get("state") == "closed" and not pull.merged:
            pull.state = "closed"
        elif body.get("state") == "open" and not pull.merged:
            pull.state = "open"
        return Reply.json(200, self._pull_json(repo, pull, detailed=True))

    def _request_reviewers(self, repo: _Repo, request: Request, match: re.Match[str]) -> Reply:
        pull = repo.pulls.get(int(match["number"]))
        if pull is None:
            return _not_found()
        body, problem = _json_object(request)
        if problem is not None:
            return problem
        for key, value in body.items():
            if key not in {"reviewers", "team_reviewers"}:
                return _invalid(f'"{key}" is not a permitted key.')
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return _invalid(f"For 'properties/{key}', {value!r} is not an array of strings.")
        if body.get("team_reviewers"):
            return _invalid("the fake GitHub has no teams; ask users with reviewers")
        logins: list[str] = body.get("reviewers") or []
        if not logins:
            return _invalid('"reviewers" wasn\'t supplied.')
        if _BOT in logins:
            return _validation_failed(
                {"resource": "PullRequest", "code": "custom",
                 "message": "Review cannot be requested from pull request author."}
            )  # fmt: skip
        if repo.collaborators is not None and not set(logins) <= repo.collaborators:
            message = (
                "Reviews may only be requested from collaborators. One or more of the users or teams you "
                f"specified is not a collaborator of the {repo.path} repository."
            )
            return Reply.json(422, {"message": message, "documentation_url": DOCS})
        for login in logins:
            if login not in pull.requested_reviewers:
                pull.requested_reviewers.append(login)
        return Reply.json(201, self._pull_json(repo, pull, detailed=False))

    def _list_reviews(self, repo: _Repo, request: Request, match: re.Match[str]) -> Reply:
        number = int(match["number"])
        pull = repo.pulls.get(number)
        if pull is None:
            return _not_found()
        reviews = [
            {"id": r.id, "node_id": f"PRR_{r.id}", "user": {"login": r.user, "type": "User"},
             "body": r.body, "state": r.state, "commit_id": r.commit_id, "submitted_at": _TIME,
             "author_association": "MEMBER",
             "html_url": f"{self.url}/{repo.path}/pull/{number}#pullrequestreview-{r.id}"}
            for r in pull.reviews
        ]  # fmt: skip
        return self._page(request, reviews, f"/repos/{repo.path}/pulls/{number}/reviews")

    def _review_comments(self, repo: _Repo, request: Request, match: re.Match[str]) -> Reply:
        number = int(match["number"])
        pull = repo.pulls.get(number)
        review = next((r for r in pull.reviews if r.id == int(match["review"])), None) if pull else None
        if pull is None or review is None:
            return _not_found()
        comments = [
            {"id": c.id, "node_id": f"PRRC_{c.id}", "pull_request_review_id": review.id, "path": c.path,
             "line": c.line, "original_line": c.line, "position": c.line, "original_position": c.line,
             "commit_id": review.commit_id, "original_commit_id": review.commit_id,
             "user": {"login": review.user, "type": "User"}, "body": c.body, "created_at": _TIME,
             "updated_at": _TIME, "author_association": "MEMBER",
             "html_url": f"{self.url}/{repo.path}/pull/{number}#discussion_r{c.id}"}
            for c in review.comments
        ]  # fmt: skip
        return self._page(
            request, comments, f"/repos/{repo.path}/pulls/{number}/reviews/{review.id}/comments"
        )

    def _list_comments(self, repo: _Repo, request: Request, match: re.Match[str]) -> Reply:
        number = int(match["number"])
        pull = repo.pulls.get(number)
        if pull is None:
            return _not_found()
        comments = [self._comment_json(repo, number, c) for c in pull.comments]
        return self._page(request, comments, f"/repos/{repo.path}/issues/{number}/comments")

    def _page(self, request: Request, items: list[dict[str, Any]], path: str) -> Reply:
        """One page of a listing (``per_page``, default 30, at most 100) with GitHub's ``Link`` header."""
        per_page = min(int(request.param("per_page") or 30), 100)
        page = max(int(request.param("page") or 1), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        here = f"{self.api_url}{path}?per_page={per_page}"
        links = (
            [f'<{here}&page={page + 1}>; rel="next"', f'<{here}&page={last}>; rel="last"']
            if page < last
            else []
        )
        shown = items[(page - 1) * per_page : page * per_page]
        return Reply.json(200, shown, headers={"link": ", ".join(links)} if links else None)

    def _comment(self, repo: _Repo, request: Request, match: re.Match[str]) -> Reply:
        # The fake has no issues besides pull requests (GitHub numbers both in one sequence).
        number = int(match["number"])
        pull = repo.pulls.get(number)
        if pull is None:
            return _not_found()
        body, problem = _json_object(request)
        if problem is not None:
            return problem
        invalid = _invalid_keys(body, allowed={"body"}, required=("body",), booleans=set())
        if invalid is not None:
            return _invalid(invalid)
        comment = FakeComment(self._new_id(), _BOT, str(body["body"]))
        pull.comments.append(comment)
        return Reply.json(201, self._comment_json(repo, number, comment))

    def _comment_json(self, repo: _Repo, number: int, comment: FakeComment) -> dict[str, Any]:
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": f"{self.api_url}/repos/{repo.path}/issues/comments/{comment.id}",
            "html_url": f"{self.url}/{repo.path}/pull/{number}#issuecomment-{comment.id}",
            "issue_url": f"{self.api_url}/repos/{repo.path}/issues/{number}",
            "body": comment.body,
            "user": {"login": comment.user, "type": "User"},
            "created_at": _TIME,
            "updated_at": _TIME,
            "author_association": "MEMBER",
        }

    def _merge_pull(self, repo: _Repo, request: Request, match: re.Match[str]) -> Reply:
        pull = repo.pulls.get(int(match["number"]))
        if pull is None:
            return _not_found()
        body, problem = _json_object(request)
        if problem is not None:
            return problem
        invalid = _invalid_keys(body, allowed=_MERGE_KEYS, required=(), booleans=set())
        method = str(body.get("merge_method", "merge"))
        if invalid is None and method not in _MERGE_METHODS:
            invalid = f"For 'properties/merge_method', {method!r} is not one of {', '.join(_MERGE_METHODS)}."
        if invalid is not None:
            return _invalid(invalid)
        if pull.state != "open":
            return _not_mergeable("Pull Request is not mergeable")
        if pull.draft:
            return _not_mergeable("Pull Request is still a draft")
        if "sha" in body and body["sha"] != pull.head_sha:
            return Reply.json(
                409,
                {
                    "message": "Head branch was modified. Review and try the merge again.",
                    "documentation_url": DOCS,
                },
            )
        if method not in repo.merge_methods:
            return _not_mergeable(_NOT_ALLOWED[method])
        if not pull.mergeable:
            return _not_mergeable("Pull Request is not mergeable")
        self._record_merge(repo, pull, method)
        return Reply.json(
            200, {"sha": pull.merge_commit_sha, "merged": True, "message": "Pull Request successfully merged"}
        )

    def _record_merge(self, repo: _Repo, pull: FakePull, method: str) -> None:
        seed = f"{repo.path}:{pull.number}:{pull.head_sha}:{method}"
        pull.state, pull.merged, pull.merge_method = "closed", True, method
        pull.merge_commit_sha = hashlib.sha1(seed.encode()).hexdigest()  # noqa: S324

    # --- GraphQL --------------------------------------------------------------------------------------

    def _graphql(self, request: Request) -> Reply:
        """Just enough GraphQL for ``markPullRequestReadyForReview``: the mutation is found in the query text,
        its ``pullRequestId`` inline or as a variable; the reply carries the requested fields it knows."""
        if request.method != "POST":
            return _not_found()
        refused = self._refuse_caller(request, docs=_GRAPHQL_DOCS)
        if refused is not None:
            return refused
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return Reply.json(
                200, {"errors": [{"message": "A query attribute must be specified and must be a string."}]}
            )
        query: str = body["query"]
        variables = body.get("variables") or {}
        if "markPullRequestReadyForReview" not in query:
            message = "the fake GitHub's GraphQL serves only the mutation markPullRequestReadyForReview"
            return Reply.json(200, {"errors": [{"message": message}]})
        found = re.search(r"pullRequestId\s*:\s*(?:\"(?P<inline>[^\"]*)\"|\$(?P<variable>\w+))", query)
        if found is None:
            return _graphql_error(
                "Argument 'pullRequestId' on InputObject 'MarkPullRequestReadyForReviewInput' is required.",
                kind=None,
            )
        node = found["inline"] if found["variable"] is None else variables.get(found["variable"])
        located = _pull_of_node(str(node)) if isinstance(node, str) else None
        repo = self._repos.get(located[0]) if located else None
        pull = repo.pulls.get(located[1]) if repo is not None and located else None
        if repo is None or pull is None:
            return _graphql_error(
                f"Could not resolve to a node with the global id of '{node}'", kind="NOT_FOUND"
            )
        if pull.state != "open":
            return _graphql_error(f"Pull request #{pull.number} is closed", kind="UNPROCESSABLE")
        pull.draft = False
        known = {
            "id": _node_id(repo.path, pull.number),
            "number": pull.number,
            "isDraft": False,
            "url": f"{self.url}/{repo.path}/pull/{pull.number}",
            "state": "OPEN",
        }
        asked = re.search(r"pullRequest\s*\{(?P<fields>[^}]*)\}", query)
        wanted = asked["fields"] if asked else ""
        selected = {k: v for k, v in known.items() if re.search(rf"\b{k}\b", wanted)}
        return Reply.json(200, {"data": {"markPullRequestReadyForReview": {"pullRequest": selected}}})

    # --- actions and statuses -------------------------------------------------------------------------

    def _dispatch(self, repo: _Repo, request: Request, match: re.Match[str]) -> Reply:
        workflow = unquote(match["workflow"])
        if workflow not in repo.workflows:
            return _not_found()
        body, problem = _json_object(request)
        if problem is not None:
            return problem
        invalid = _invalid_keys(body, allowed={"ref", "inputs"}, required=("ref",), booleans=set())
        if invalid is not None:
            return Reply.json(422, {"message": f"Invalid request.\n\n{invalid}", "documentation_url": DOCS})
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict):
            return Reply.json(
                422, {"message": "Invalid request.\n\nFor 'properties/inputs', is not an object."}
            )
        self.dispatches.append(Dispatch(repo.path, workflow, str(body["ref"]), inputs))
        return Reply.empty(204)

    def _combined_status(self, repo: _Repo, _: Request, match: re.Match[str]) -> Reply:
        sha = self._resolve(repo, match["ref"])
        statuses = repo.statuses.get(sha, [])
        states = {s["state"] for s in statuses}
        combined = (
            "failure" if states & {"failure", "error"}
            else "pending" if not statuses or "pending" in states
            else "success"
        )  # fmt: skip
        return Reply.json(
            200, {"state": combined, "sha": sha, "total_count": len(statuses), "statuses": statuses}
        )

    def _check_runs(self, repo: _Repo, _: Request, match: re.Match[str]) -> Reply:
        sha = self._resolve(repo, match["ref"])
        checks = [
            {
                "id": job.id,
                "name": job.name,
                "head_sha": sha,
                "status": job.status,
                "conclusion": job.conclusion,
                "html_url": self._job_url(repo, job),
                "details_url": self._job_url(repo, job),
                "app": {"slug": "github-actions"},
            }
            for run in repo.runs
            if run.head_sha == sha
            for job in run.jobs
        ]
        return Reply.json(200, {"total_count": len(checks), "check_runs": checks})

    def _list_runs(self, repo: _Repo, request: Request, _: re.Match[str]) -> Reply:
        runs = list(reversed(repo.runs))  # newest first
        if sha := request.param("head_sha"):
            runs = [r for r in runs if r.head_sha == sha]
        if branch := request.param("branch"):
            runs = [r for r in runs if r.head_branch == branch]
        if status := request.param("status"):  # a status or a conclusion, as on GitHub
            runs = [r for r in runs if status in {r.status, r.conclusion}]
        return Reply.json(
            200, {"total_count": len(runs), "workflow_runs": [self._run_json(repo, r) for r in runs]}
        )

    def _list_jobs(self, repo: _Repo, request: Request, match: re.Match[str]) -> Reply:
        if request.param("filter") not in {None, "latest", "all"}:
            return Reply.json(422, {"message": "Invalid request.\n\nfilter must be one of: latest, all"})
        run = next((r for r in repo.runs if r.id == int(match["run"])), None)
        if run is None:
            return _not_found()
        jobs = [
            {"id": j.id, "run_id": run.id, "name": j.name, "status": j.status, "conclusion": j.conclusion,
             "head_sha": run.head_sha, "html_url": self._job_url(repo, j), "started_at": _TIME}
            for j in run.jobs
        ]  # fmt: skip
        return Reply.json(200, {"total_count": len(jobs), "jobs": jobs})

    def _job_logs(self, repo: _Repo, _: Request, match: re.Match[str]) -> Reply:
        job = next((j for r in repo.runs for j in r.jobs if j.id == int(match["job"])), None)
        if job is None:
            return _not_found()
        key = secrets.token_hex(8)
        self._signed[key] = job
        return Reply(status=302, headers={"location": f"{self.url}/_blobs/job-logs/{job.id}?sig={key}"})

    def _blob(self, request: Request) -> Reply:
        """The storage behind a log redirect: a signed URL, and no second credential accepted."""
        if request.header("authorization") is not None:
            return Reply(
                status=400, body=b"InvalidAuthenticationInfo: a signed URL takes no Authorization header"
            )
        job = self._signed.get(request.param("sig") or "")
        if job is None or request.path != f"/_blobs/job-logs/{job.id}":
            return Reply(status=403, body=b"AuthenticationFailed: signature mismatch")
        return Reply(status=200, body=job.log.encode(), headers={"content-type": "text/plain; charset=utf-8"})

    def _run_json(self, repo: _Repo, run: FakeRun) -> dict[str, Any]:
        return {
            "id": run.id,
            "name": run.workflow.rsplit(".", 1)[0].upper(),
            "path": f".github/workflows/{run.workflow}",
            "head_sha": run.head_sha,
            "head_branch": run.head_branch,
            "event": "push",
            "status": run.status,
            "conclusion": run.conclusion,
            "html_url": f"{self.url}/{repo.path}/actions/runs/{run.id}",
            "jobs_url": f"{self.api_url}/repos/{repo.path}/actions/runs/{run.id}/jobs",
            "created_at": _TIME,
        }

    # --- internals ------------------------------------------------------------------------------------

    def _repo(self, path: str) -> _Repo | None:
        if path not in self._repos and self._on_demand:
            self.add_repo(path)
        return self._repos.get(path)

    def _repo_or_fail(self, path: str) -> _Repo:
        repo = self._repo(path)
        if repo is None:
            raise KeyError(f"the fake has no repository {path!r}; declare it with add_repo()")
        return repo

    def _branch_sha(self, repo: _Repo, branch: str) -> str:
        if branch in repo.branches:
            return repo.branches[branch]
        if repo.git_dir is not None and (live := _git_head(repo.git_dir, branch)):
            return live
        return hashlib.sha1(f"{repo.path}:{branch}".encode()).hexdigest()  # noqa: S324

    def _resolve(self, repo: _Repo, ref: str) -> str:
        """A commit ref as GitHub accepts it: a sha, or a branch name."""
        ref = unquote(ref)
        return ref if re.fullmatch(r"[0-9a-f]{40}", ref) else self._branch_sha(repo, ref)

    def _job_url(self, repo: _Repo, job: FakeJob) -> str:
        return f"{self.url}/{repo.path}/actions/runs/{job.run_id}/job/{job.id}"

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


def _git_head(git_dir: Path, branch: str) -> str:
    """The sha ``refs/heads/<branch>`` points at in the bare repository, "" if there is no such branch."""
    done = subprocess.run(
        [
            "git",
            "--git-dir",
            str(git_dir),
            "rev-parse",
            "--verify",
            "--quiet",
            f"refs/heads/{branch}^{{commit}}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def _owner(repo: _Repo) -> str:
    return repo.path.split("/")[0]


def _node_id(repo: str, number: int) -> str:
    """An opaque-looking global node id that the fake can map back to its pull request."""
    return "PR_" + base64.urlsafe_b64encode(f"{repo}#{number}".encode()).decode().rstrip("=")


def _pull_of_node(node: str) -> tuple[str, int] | None:
    if not node.startswith("PR_"):
        return None
    try:
        repo, _, number = (
            base64.urlsafe_b64decode(node[3:] + "=" * (-len(node[3:]) % 4)).decode().rpartition("#")
        )
        return repo, int(number)
    except ValueError:
        return None


def _mergeable_state(pull: FakePull) -> str:
    if pull.state != "open":
        return "unknown"
    return "draft" if pull.draft else "clean" if pull.mergeable else "dirty"


def _graphql_error(message: str, *, kind: str | None) -> Reply:
    error: dict[str, Any] = {"message": message, "path": ["markPullRequestReadyForReview"]}
    if kind is not None:
        error["type"] = kind
    return Reply.json(200, {"data": {"markPullRequestReadyForReview": None}, "errors": [error]})


def _not_mergeable(message: str) -> Reply:
    return Reply.json(405, {"message": message, "documentation_url": DOCS})


def _invalid(reason: str) -> Reply:
    return Reply.json(422, {"message": f"Invalid request.\n\n{reason}", "documentation_url": DOCS})


def _not_found() -> Reply:
    return Reply.json(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})


def _validation_failed(error: dict[str, Any]) -> Reply:
    return Reply.json(422, {"message": "Validation Failed", "errors": [error], "documentation_url": DOCS})


def _json_object(request: Request) -> tuple[dict[str, Any], Reply | None]:
    try:
        body = request.json()
    except ValueError:
        return {}, Reply.json(400, {"message": "Problems parsing JSON", "documentation_url": DOCS})
    if not isinstance(body, dict):
        return {}, Reply.json(400, {"message": "Problems parsing JSON", "documentation_url": DOCS})
    return body, None


def _invalid_keys(
    body: dict[str, Any], *, allowed: set[str], required: Sequence[str], booleans: set[str]
) -> str | None:
    """GitHub's schema validation messages for unknown, missing and mistyped keys."""
    for key in body:
        if key not in allowed:
            return f'"{key}" is not a permitted key.'
    for key in required:
        if key not in body:
            return f'"{key}" wasn\'t supplied.'
    for key, value in body.items():
        if key in booleans and not isinstance(value, bool):
            return f"For 'properties/{key}', {value!r} is not a boolean."
        if key not in booleans and key not in {"inputs", "issue"} and not isinstance(value, str):
            return f"For 'properties/{key}', {value!r} is not a string."
    return None
