"""GitLab (gitlab.com or self-hosted, also under a sub-path) through the REST API v4.

Projects are addressed by their URL-encoded path (``group%2Fsub%2Fproject``), so no lookup of the numeric
id is needed. Neither the create nor the update endpoint has a ``draft`` attribute: a merge request is a
draft while its title starts with ``Draft:``, so we open drafts with that prefix and make them ready by
removing it. The JSON readers are public for the glab fallback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from deksdenflow_git.forges.base import (
    GITLAB_TOKEN_NAME,
    CiFailure,
    CiState,
    CiStatus,
    Comment,
    ForgeError,
    LineComment,
    MergeMethod,
    MergeResult,
    PullRequest,
    PullRequestState,
    RepoRef,
    Reviews,
    log_tail,
)
from deksdenflow_git.forges.transport import RestTransport

_DRAFT_TITLE = re.compile(r"^\s*(?:\[draft\]|\(draft\)|draft:|draft\s+-\s)", re.IGNORECASE)
_MR_STATES: dict[str, PullRequestState] = {
    "opened": "open",
    "locked": "open",  # transient, while GitLab merges it
    "closed": "closed",
    "merged": "merged",
}
_PAGE = 100  # the most GitLab lists per page
_PIPELINE_STATES: dict[str, CiState] = {
    "success": "success",
    "failed": "failure",
    "canceled": "failure",
    "canceling": "failure",
    "skipped": "none",
}


def gitlab_api_base(repo: RepoRef, api_base_url: str | None) -> str:
    """``<base>/api/v4``; the base defaults to the repository's own host (gitlab.com or self-hosted)."""
    base = (api_base_url or f"https://{repo.host}").rstrip("/")
    return base if base.endswith("/api/v4") else f"{base}/api/v4"


def project_id(repo: RepoRef) -> str:
    """The project's path as GitLab wants it in a URL: every ``/`` encoded."""
    return quote(repo.path, safe="")


def draft_title(title: str) -> str:
    """``title`` marked as a draft the way GitLab recognises it (unless it already is)."""
    return title if _DRAFT_TITLE.match(title) else f"Draft: {title}"


def ready_title(title: str) -> str:
    """``title`` without the draft markers GitLab recognises (all of them, as GitLab's "ready" does)."""
    while match := _DRAFT_TITLE.match(title):
        title = title[match.end() :].lstrip()
    return title


class GitLabForge:
    """``Forge`` over the GitLab REST API v4 with a personal, project or group access token."""

    provider = "gitlab"

    def __init__(
        self,
        repo: RepoRef,
        *,
        token: str,
        api_base_url: str | None = None,
        token_name: str = GITLAB_TOKEN_NAME,
        timeout: float = 30.0,
    ) -> None:
        self.repo = repo
        self._prefix = f"/projects/{project_id(repo)}"
        self._http = RestTransport(
            repo=repo,
            base_url=gitlab_api_base(repo, api_base_url),
            headers={"PRIVATE-TOKEN": token, "Accept": "application/json"},
            token=token,
            token_name=token_name,
            timeout=timeout,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- merge requests -------------------------------------------------------------------------------

    async def find_open_pull_request(self, branch: str) -> PullRequest | None:
        found = await self._http.get_json(
            f"{self._prefix}/merge_requests", {"source_branch": branch, "state": "opened", "per_page": 10}
        )
        return open_merge_request(found, branch)

    async def open_draft_pull_request(self, *, branch: str, base: str, title: str, body: str) -> PullRequest:
        existing = await self.find_open_pull_request(branch)
        if existing is not None:
            return replace(existing, reused=True)
        path = f"{self._prefix}/merge_requests"
        payload = {
            "source_branch": branch,
            "target_branch": base,
            "title": draft_title(title),
            "description": body,
        }
        response = await self._http.request("POST", path, json=payload, accept=(201, 409))
        if response.status_code == 201:
            return merge_request_from_gitlab(response.json())
        # 409: an MR for this source branch was opened since our lookup (a concurrent worker or a retry).
        raced = await self.find_open_pull_request(branch)
        if raced is not None:
            return replace(raced, reused=True)
        raise self._http.error_for("POST", path, response)

    async def get_pull_request(self, number: int) -> PullRequest:
        return merge_request_from_gitlab(await self._mr(number))

    async def _mr(self, number: int) -> dict[str, Any]:
        return dict(await self._http.get_json(f"{self._prefix}/merge_requests/{number}"))

    # --- review and merge -----------------------------------------------------------------------------

    async def mark_ready(self, number: int) -> PullRequest:
        data = await self._mr(number)
        if not merge_request_from_gitlab(data).draft:
            return merge_request_from_gitlab(data)
        response = await self._http.request(
            "PUT", f"{self._prefix}/merge_requests/{number}", json={"title": ready_title(data["title"])}
        )
        return merge_request_from_gitlab(response.json())

    async def request_reviewers(self, number: int, reviewers: Sequence[str]) -> None:
        if not reviewers:
            return
        ids = [await self._user_id(name) for name in reviewers]
        # reviewer_ids replaces the MR's reviewers: keep those already asked, as GitHub would.
        asked = [int(r["id"]) for r in (await self._mr(number)).get("reviewers") or []]
        await self._http.request(
            "PUT",
            f"{self._prefix}/merge_requests/{number}",
            json={"reviewer_ids": list(dict.fromkeys([*asked, *ids]))},
        )

    async def _user_id(self, username: str) -> int:
        return user_id(await self._http.get_json("/users", {"username": username}), username, self.repo)

    async def update_pull_request_body(self, number: int, body: str) -> None:
        await self._http.request("PUT", f"{self._prefix}/merge_requests/{number}", json={"description": body})

    async def comment(self, number: int, body: str) -> str:
        response = await self._http.request(
            "POST", f"{self._prefix}/merge_requests/{number}/notes", json={"body": body}, accept=(201,)
        )
        # A note carries no URL of its own: it is an anchor on the MR's page.
        return note_url((await self._mr(number))["web_url"], response.json())

    async def comments(self, number: int) -> list[Comment]:
        path = f"{self._prefix}/merge_requests/{number}/notes"
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            params: dict[str, str | int] = {
                "sort": "asc",
                "order_by": "created_at",
                "per_page": _PAGE,
                "page": page,
            }
            response = await self._http.request("GET", path, params=params)
            found.extend(response.json())
            if not response.headers.get("x-next-page") and "next" not in response.links:
                break
            page += 1
        return comments_from_gitlab((await self._mr(number))["web_url"], found)

    async def review_comments(self, number: int, review_id: str) -> list[LineComment]:
        return []  # GitLab groups no notes under a review: each comes in its own Note Hook delivery

    async def merge(
        self, number: int, *, method: MergeMethod, sha: str, when_pipeline_succeeds: bool = False
    ) -> MergeResult:
        data = await self._mr(number)
        done = merge_result_if_settled(data, sha=sha, scheduling=when_pipeline_succeeds, repo=self.repo)
        if done is not None:
            return done
        path = f"{self._prefix}/merge_requests/{number}/merge"
        payload = {
            "sha": sha,
            "squash": method == "squash",
            "merge_when_pipeline_succeeds": when_pipeline_succeeds,
        }
        response = await self._http.request("PUT", path, json=payload, accept=(200, 405, 406, 422))
        if response.status_code == 200:
            return merge_result_from_gitlab(response.json())
        # Refused as not mergeable now, unless someone else merged it since we looked (then it is done).
        again = await self._mr(number)
        done = merge_result_if_settled(again, sha=sha, scheduling=when_pipeline_succeeds, repo=self.repo)
        if done is not None:
            return done
        raise not_mergeable(self._http.error_for("PUT", path, response), again)

    async def reviews(self, number: int) -> Reviews:
        return reviews_from_gitlab(
            await self._http.get_json(f"{self._prefix}/merge_requests/{number}/approvals")
        )

    # --- CI -------------------------------------------------------------------------------------------

    async def trigger_ci(self, *, ref: str, workflow: str | None = None) -> str:
        """Create a pipeline for ``ref``; ``workflow`` does not apply (a GitLab project has one pipeline)."""
        response = await self._http.request(
            "POST", f"{self._prefix}/pipeline", params={"ref": ref}, accept=(201,)
        )
        pipeline = response.json()
        return str(pipeline.get("web_url") or f"pipeline {pipeline['id']} on {ref}")

    async def ci_status(self, sha: str) -> CiStatus:
        pipelines = await self._http.get_json(
            f"{self._prefix}/pipelines", {"sha": sha, "order_by": "id", "sort": "desc", "per_page": 1}
        )
        return ci_status_from_gitlab(sha, pipelines)

    async def ci_failure(self, sha: str, *, max_lines: int = 80) -> CiFailure | None:
        pipelines = await self._http.get_json(
            f"{self._prefix}/pipelines", {"sha": sha, "order_by": "id", "sort": "desc", "per_page": 20}
        )
        pipeline = failed_pipeline(pipelines)
        if pipeline is None:
            return None
        jobs = await self._http.get_json(
            f"{self._prefix}/pipelines/{pipeline['id']}/jobs", {"scope[]": "failed", "per_page": 100}
        )
        job = failed_job(jobs)
        if job is None:
            return CiFailure(run_url=pipeline["web_url"], job_name="", log_excerpt="")
        trace = await self._http.request("GET", f"{self._prefix}/jobs/{job['id']}/trace")
        return CiFailure(
            run_url=pipeline["web_url"], job_name=job["name"], log_excerpt=log_tail(trace.text, max_lines)
        )


# --- reading GitLab JSON ------------------------------------------------------------------------------


def merge_request_from_gitlab(data: Mapping[str, Any]) -> PullRequest:
    """A PR from GitLab's merge request object (``work_in_progress`` is what GitLab < 13.2 called draft)."""
    return PullRequest(
        number=int(data["iid"]),
        url=data["web_url"],
        state=_MR_STATES.get(data["state"], "closed"),
        head_branch=data["source_branch"],
        head_sha=data.get("sha") or "",
        draft=bool(data.get("draft", data.get("work_in_progress", False))),
    )


def merge_result_from_gitlab(data: Mapping[str, Any]) -> MergeResult:
    """What an accepted merge did: merged, or set to merge when the pipeline succeeds, or neither."""
    url = str(data["web_url"])
    if data["state"] == "merged":
        # A fast-forward merge makes no merge commit: the MR's head is what landed.
        landed = data.get("merge_commit_sha") or data.get("squash_commit_sha") or data.get("sha") or ""
        return MergeResult(merged=True, scheduled=False, merge_commit_sha=str(landed), url=url)
    # "locked" is GitLab merging it right now; it finishes on its own.
    scheduled = data["state"] == "locked" or bool(data.get("merge_when_pipeline_succeeds"))
    return MergeResult(merged=False, scheduled=scheduled, merge_commit_sha="", url=url)


def merge_result_if_settled(
    data: Mapping[str, Any], *, sha: str, scheduling: bool, repo: RepoRef
) -> MergeResult | None:
    """The result of a merge that needs no request: merged already, or already set to merge ``sha`` when
    its pipeline succeeds; a closed MR is an error."""
    if data["state"] == "merged" or (
        scheduling
        and data["state"] == "opened"
        and data.get("merge_when_pipeline_succeeds")
        and data.get("sha") == sha
    ):
        return merge_result_from_gitlab(data)
    if data["state"] == "closed":
        raise ForgeError(
            f"gitlab merge request !{data['iid']} of {repo.path} is closed without being merged; "
            "reopen it to merge it",
            provider="gitlab",
            repo=repo.path,
            number=int(data["iid"]),
        )
    return None


def not_mergeable(error: Exception, data: Mapping[str, Any]) -> Exception:
    """GitLab's refusal ("405 Method Not Allowed" says little) with the MR's own account of why."""
    status = data.get("detailed_merge_status") or data.get("merge_status")
    if not status or not isinstance(error, ForgeError):
        return error
    return ForgeError(f"{error.message}; merge status: {status}", **{**error.fields, "merge_status": status})


def reviews_from_gitlab(approvals: Mapping[str, Any]) -> Reviews:
    """The approvers and the approvals still missing from ``GET .../merge_requests/:iid/approvals``."""
    approvers = [
        str(a["user"]["username"])
        for a in approvals.get("approved_by") or []
        if (a.get("user") or {}).get("username")
    ]
    return Reviews(
        approved_by=tuple(sorted(approvers)),
        changes_requested_by=(),
        approvals_required=int(approvals.get("approvals_left") or 0),
    )


def user_id(found: Sequence[Mapping[str, Any]], username: str, repo: RepoRef) -> int:
    """The id of ``username`` in the answer of ``GET /users?username=``; an unknown user is an error."""
    for user in found:
        if str(user.get("username", "")).lower() == username.lower():
            return int(user["id"])
    raise ForgeError(
        f"gitlab at {repo.host} has no user named {username!r} to ask for a review",
        provider="gitlab",
        repo=repo.path,
        user=username,
    )


def note_url(mr_url: str, note: Mapping[str, Any]) -> str:
    """Where a note on a merge request is shown: its anchor on the MR's page."""
    return f"{mr_url}#note_{note['id']}"


def comments_from_gitlab(mr_url: str, notes: Sequence[Mapping[str, Any]]) -> list[Comment]:
    """The comments among a merge request's notes (system notes are GitLab's records of changes)."""
    return [
        Comment(body=str(note.get("body") or ""), url=note_url(mr_url, note))
        for note in notes
        if not note.get("system")
    ]


def open_merge_request(found: Sequence[Mapping[str, Any]], branch: str) -> PullRequest | None:
    """The open MR from ``branch`` among a merge request listing."""
    for data in found:
        if data["source_branch"] == branch and data["state"] == "opened":
            return merge_request_from_gitlab(data)
    return None


def ci_status_from_gitlab(sha: str, pipelines: Sequence[Mapping[str, Any]]) -> CiStatus:
    """The verdict of the newest pipeline for ``sha``: anything not finished (pending, manual…) is running."""
    if not pipelines:
        return CiStatus(state="none", raw_state="none", url="", head_sha=sha)
    newest = max(pipelines, key=lambda p: int(p["id"]))
    raw = str(newest["status"])
    return CiStatus(
        state=_PIPELINE_STATES.get(raw, "running"),
        raw_state=raw,
        url=newest.get("web_url") or "",
        head_sha=sha,
    )


def failed_pipeline(pipelines: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The newest pipeline that ``ci_status`` would call a failure (failed or canceled)."""
    for pipeline in sorted(pipelines, key=lambda p: -int(p["id"])):
        if _PIPELINE_STATES.get(str(pipeline["status"])) == "failure":
            return dict(pipeline)
    return None


def failed_job(jobs: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The first failed job that was not allowed to fail (those do not fail the pipeline)."""
    for job in sorted(jobs, key=lambda j: int(j["id"])):
        if job.get("status") == "failed" and not job.get("allow_failure", False):
            return dict(job)
    return None
