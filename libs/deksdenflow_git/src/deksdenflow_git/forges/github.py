"""GitHub (and GitHub Enterprise Server) through the REST API, version 2022-11-28.

The functions that read GitHub's JSON (pull requests, statuses, check runs, workflow runs) are public
because the gh fallback gets the very same JSON through ``gh api`` and reads it with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from deksdenflow_git.forges.base import (
    GITHUB_TOKEN_NAME,
    CiFailure,
    CiState,
    CiStatus,
    ForgeError,
    PullRequest,
    RepoRef,
    log_tail,
)
from deksdenflow_git.forges.transport import RestTransport

API_VERSION = "2022-11-28"
DEFAULT_WORKFLOW = "ci.yml"
_FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure"})
_PASSED_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})


def github_api_base(host: str) -> str:
    """github.com has its own API host; GitHub Enterprise Server serves the API under ``/api/v3``."""
    return "https://api.github.com" if host == "github.com" else f"https://{host}/api/v3"


def workflow_page(repo: RepoRef, workflow: str) -> str:
    """The web page listing the runs of ``workflow`` (where to watch a dispatched run)."""
    return f"https://{repo.host}/{repo.path}/actions/workflows/{quote(workflow, safe='')}"


class GitHubForge:
    """``Forge`` over the GitHub REST API with a token (PAT, fine-grained or app installation token)."""

    provider = "github"

    def __init__(
        self,
        repo: RepoRef,
        *,
        token: str,
        api_base_url: str | None = None,
        token_name: str = GITHUB_TOKEN_NAME,
        timeout: float = 30.0,
        default_workflow: str = DEFAULT_WORKFLOW,
    ) -> None:
        self.repo = repo
        self.owner = repo.path.split("/")[0]
        self._default_workflow = default_workflow
        self._prefix = f"/repos/{repo.path}"
        self._http = RestTransport(
            repo=repo,
            base_url=api_base_url or github_api_base(repo.host),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            },
            token=token,
            token_name=token_name,
            timeout=timeout,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- pull requests --------------------------------------------------------------------------------

    async def find_open_pull_request(self, branch: str) -> PullRequest | None:
        # ``head`` must carry the owner: without it GitHub ignores the filter and lists every open PR.
        found = await self._http.get_json(
            f"{self._prefix}/pulls", {"head": f"{self.owner}:{branch}", "state": "open", "per_page": 10}
        )
        for data in found:
            if data["head"]["ref"] == branch:
                return pull_request_from_github(data)
        return None

    async def open_draft_pull_request(self, *, branch: str, base: str, title: str, body: str) -> PullRequest:
        existing = await self.find_open_pull_request(branch)
        if existing is not None:
            return replace(existing, reused=True)
        path = f"{self._prefix}/pulls"
        payload = {"title": title, "head": branch, "base": base, "body": body, "draft": True}
        response = await self._http.request("POST", path, json=payload, accept=(201, 422))
        if response.status_code == 201:
            return pull_request_from_github(response.json())
        # A PR opened between our lookup and our POST (another worker, a retry after a lost answer).
        if _already_exists(response.json()):
            raced = await self.find_open_pull_request(branch)
            if raced is not None:
                return replace(raced, reused=True)
        raise self._http.error_for("POST", path, response)

    async def get_pull_request(self, number: int) -> PullRequest:
        return pull_request_from_github(await self._http.get_json(f"{self._prefix}/pulls/{number}"))

    # --- CI -------------------------------------------------------------------------------------------

    async def trigger_ci(self, *, ref: str, workflow: str | None = None) -> str:
        name = workflow or self._default_workflow
        await self._http.request(
            "POST",
            f"{self._prefix}/actions/workflows/{quote(name, safe='')}/dispatches",
            json={"ref": ref},
            accept=(204,),
        )
        return workflow_page(self.repo, name)

    async def ci_status(self, sha: str) -> CiStatus:
        combined = await self._http.get_json(f"{self._prefix}/commits/{sha}/status", {"per_page": 100})
        checks = await self._http.get_json(f"{self._prefix}/commits/{sha}/check-runs", {"per_page": 100})
        return ci_status_from_github(sha, combined, checks)

    async def ci_failure(self, sha: str, *, max_lines: int = 80) -> CiFailure | None:
        runs = await self._http.get_json(f"{self._prefix}/actions/runs", {"head_sha": sha, "per_page": 30})
        run = failed_run(runs)
        if run is None:
            return None
        jobs = await self._http.get_json(
            f"{self._prefix}/actions/runs/{run['id']}/jobs", {"filter": "latest", "per_page": 100}
        )
        job = failed_job(jobs)
        if job is None:
            return CiFailure(run_url=run["html_url"], job_name=run.get("name") or "", log_excerpt="")
        log = await self._job_log(int(job["id"]))
        return CiFailure(run_url=run["html_url"], job_name=job["name"], log_excerpt=log_tail(log, max_lines))

    async def _job_log(self, job_id: int) -> str:
        """GitHub answers 302 to a short-lived pre-signed URL; the log itself comes from there."""
        path = f"{self._prefix}/actions/jobs/{job_id}/logs"
        response = await self._http.request("GET", path, accept=(200, 302))
        if response.status_code == 200:
            return response.text
        location = response.headers.get("location")
        if not location:
            raise ForgeError(
                f"github answered 302 to GET {path} without a Location header", repo=self.repo.path
            )
        return await self._http.fetch_presigned(location)


# --- reading GitHub JSON ------------------------------------------------------------------------------


def pull_request_from_github(data: Mapping[str, Any]) -> PullRequest:
    """A PR from GitHub's pull request object (list items lack ``merged``; ``merged_at`` is always there)."""
    merged = bool(data.get("merged") or data.get("merged_at"))
    return PullRequest(
        number=int(data["number"]),
        url=data["html_url"],
        state="merged" if merged else ("open" if data["state"] == "open" else "closed"),
        head_branch=data["head"]["ref"],
        head_sha=data["head"]["sha"],
        draft=bool(data.get("draft", False)),
    )


def ci_status_from_github(sha: str, combined: Mapping[str, Any], checks: Mapping[str, Any]) -> CiStatus:
    """One verdict from the legacy commit statuses and the check runs (GitHub Actions reports as checks).

    A failure anywhere wins (the commit cannot go green any more), then anything unfinished; with neither
    statuses nor check runs there is no CI at all. ``raw_state``/``url`` come from the deciding item.
    """
    items: list[tuple[CiState, str, str]] = []
    for status in combined.get("statuses") or []:
        raw = status["state"]
        verdict: CiState = "success" if raw == "success" else "running" if raw == "pending" else "failure"
        items.append((verdict, raw, status.get("target_url") or ""))
    for run in checks.get("check_runs") or []:
        url = run.get("html_url") or run.get("details_url") or ""
        if run["status"] != "completed":
            items.append(("running", run["status"], url))
        else:
            conclusion = run.get("conclusion") or "unknown"
            items.append(("success" if conclusion in _PASSED_CONCLUSIONS else "failure", conclusion, url))
    for wanted in ("failure", "running", "success"):
        for verdict, raw, url in items:
            if verdict == wanted:
                return CiStatus(state=verdict, raw_state=raw, url=url, head_sha=sha)
    return CiStatus(state="none", raw_state="none", url="", head_sha=sha)


def failed_run(runs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The most recent failed workflow run (GitHub lists the newest first)."""
    for run in runs.get("workflow_runs") or []:
        if run.get("conclusion") in _FAILED_CONCLUSIONS:
            return dict(run)
    return None


def failed_job(jobs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first failed job of a run, in the order GitHub ran them."""
    listed: Sequence[Mapping[str, Any]] = jobs.get("jobs") or []
    for job in listed:
        if job.get("conclusion") in _FAILED_CONCLUSIONS:
            return dict(job)
    return None


def _already_exists(payload: Any) -> bool:
    errors = payload.get("errors") if isinstance(payload, dict) else None
    return any(
        isinstance(e, dict) and "already exists" in str(e.get("message", "")).lower() for e in errors or []
    )
