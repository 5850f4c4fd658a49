"""GitLab (gitlab.com or self-hosted, also under a sub-path) through the REST API v4.

Projects are addressed by their URL-encoded path (``group%2Fsub%2Fproject``), so no lookup of the numeric
id is needed. The create-MR endpoint has no ``draft`` attribute: a merge request is a draft when its title
starts with ``Draft:``, which is what we send. The JSON readers are public for the glab fallback.
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
    PullRequest,
    PullRequestState,
    RepoRef,
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
        return merge_request_from_gitlab(await self._http.get_json(f"{self._prefix}/merge_requests/{number}"))

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
