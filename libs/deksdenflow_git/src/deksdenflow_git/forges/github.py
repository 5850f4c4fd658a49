"""GitHub (and GitHub Enterprise Server) through the REST API, version 2022-11-28.

One thing REST cannot do: take a pull request out of draft. That goes through the GraphQL mutation
``markPullRequestReadyForReview``. The functions that read GitHub's JSON (pull requests, statuses, check
runs, workflow runs, reviews) are public because the gh fallback gets the very same JSON through
``gh api`` and reads it with them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from deksdenflow_git.forges.base import (
    GITHUB_TOKEN_NAME,
    CiFailure,
    CiState,
    CiStatus,
    Comment,
    ForgeAuthError,
    ForgeError,
    ForgeNotFound,
    ForgeUnavailable,
    LineComment,
    MergeMethod,
    MergeResult,
    PullRequest,
    RepoRef,
    Reviews,
    api_message,
    log_tail,
)
from deksdenflow_git.forges.transport import RestTransport

API_VERSION = "2022-11-28"
DEFAULT_WORKFLOW = "ci.yml"
_FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure"})
_PASSED_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})
_PAGE = 100  # the most GitHub lists per page
MARK_READY_MUTATION = (
    "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) "
    "{ pullRequest { isDraft } } }"
)


def github_api_base(host: str) -> str:
    """github.com has its own API host; GitHub Enterprise Server serves the API under ``/api/v3``."""
    return "https://api.github.com" if host == "github.com" else f"https://{host}/api/v3"


def github_graphql_base(api_base: str) -> str:
    """Where ``/graphql`` lives: next to the REST root on github.com, at ``/api/graphql`` on GHES."""
    base = api_base.rstrip("/")
    return base.removesuffix("/v3") if base.endswith("/api/v3") else base


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
        self._token_name = token_name
        self._default_workflow = default_workflow
        self._prefix = f"/repos/{repo.path}"
        api_base = api_base_url or github_api_base(repo.host)
        self._graphql_base = github_graphql_base(api_base)
        self._http = RestTransport(
            repo=repo,
            base_url=api_base,
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
        return pull_request_from_github(await self._pull(number))

    async def _pull(self, number: int) -> dict[str, Any]:
        return dict(await self._http.get_json(f"{self._prefix}/pulls/{number}"))

    # --- review and merge -----------------------------------------------------------------------------

    async def mark_ready(self, number: int) -> PullRequest:
        data = await self._pull(number)
        pr = pull_request_from_github(data)
        if not pr.draft:
            return pr
        response = await self._http.request(
            "POST",
            "/graphql",
            json={"query": MARK_READY_MUTATION, "variables": {"id": data["node_id"]}},
            base_url=self._graphql_base,
        )
        graphql_data(response.json(), repo=self.repo, token_name=self._token_name, scrub=self._http.scrub)
        return replace(pr, draft=False)

    async def request_reviewers(self, number: int, reviewers: Sequence[str]) -> None:
        if not reviewers:
            return
        await self._http.request(
            "POST",
            f"{self._prefix}/pulls/{number}/requested_reviewers",
            json={"reviewers": list(reviewers)},
            accept=(201,),
        )

    async def update_pull_request_body(self, number: int, body: str) -> None:
        await self._http.request("PATCH", f"{self._prefix}/pulls/{number}", json={"body": body})

    async def comment(self, number: int, body: str) -> str:
        # A pull request is an issue too: its conversation comments are issue comments.
        response = await self._http.request(
            "POST", f"{self._prefix}/issues/{number}/comments", json={"body": body}, accept=(201,)
        )
        return str(response.json()["html_url"])

    async def comments(self, number: int) -> list[Comment]:
        found = await self._pages(f"{self._prefix}/issues/{number}/comments")
        return [comment_from_github(data) for data in found]

    async def review_comments(self, number: int, review_id: str) -> list[LineComment]:
        found = await self._pages(
            f"{self._prefix}/pulls/{number}/reviews/{quote(review_id, safe='')}/comments"
        )
        return [line_comment_from_github(data) for data in found]

    async def _pages(self, path: str) -> list[dict[str, Any]]:
        """Every item of a paginated listing, following its ``Link: rel="next"``."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            response = await self._http.request("GET", path, params={"per_page": _PAGE, "page": page})
            found.extend(response.json())
            if "next" not in response.links:
                return found
            page += 1

    async def merge(
        self, number: int, *, method: MergeMethod, sha: str, when_pipeline_succeeds: bool = False
    ) -> MergeResult:
        data = await self._pull(number)
        done = merge_result_if_settled(data, repo=self.repo)
        if done is not None:
            return done
        if when_pipeline_succeeds and (await self.ci_status(sha)).state != "success":
            return MergeResult(merged=False, scheduled=False, merge_commit_sha="", url=data["html_url"])
        path = f"{self._prefix}/pulls/{number}/merge"
        response = await self._http.request(
            "PUT", path, json={"merge_method": method, "sha": sha}, accept=(200, 405)
        )
        if response.status_code == 200:
            return MergeResult(
                merged=True, scheduled=False, merge_commit_sha=response.json()["sha"], url=data["html_url"]
            )
        # 405: not mergeable now, unless someone else merged it since we looked (then it is done).
        done = merge_result_if_settled(await self._pull(number), repo=self.repo)
        if done is not None:
            return done
        raise self._http.error_for("PUT", path, response)

    async def reviews(self, number: int) -> Reviews:
        return reviews_from_github(await self._pages(f"{self._prefix}/pulls/{number}/reviews"))

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


def merge_result_if_settled(data: Mapping[str, Any], *, repo: RepoRef) -> MergeResult | None:
    """The result of merging a PR that needs no merge request: merged already, or closed (an error)."""
    pr = pull_request_from_github(data)
    if pr.state == "merged":
        sha = str(data.get("merge_commit_sha") or "")
        return MergeResult(merged=True, scheduled=False, merge_commit_sha=sha, url=pr.url)
    if pr.state == "closed":
        raise ForgeError(
            f"github pull request #{pr.number} of {repo.path} is closed without being merged; "
            "reopen it to merge it",
            provider="github",
            repo=repo.path,
            number=pr.number,
        )
    return None


def comment_from_github(data: Mapping[str, Any]) -> Comment:
    """A conversation comment from GitHub's issue comment JSON."""
    return Comment(body=str(data.get("body") or ""), url=str(data.get("html_url") or ""))


def line_comment_from_github(data: Mapping[str, Any]) -> LineComment:
    """A review comment from GitHub's JSON; an outdated one (its line gone from the diff) keeps the line it
    was made on."""
    return LineComment(
        path=str(data.get("path") or ""),
        line=int(data.get("line") or data.get("original_line") or 0),
        body=str(data.get("body") or ""),
        url=str(data.get("html_url") or ""),
    )


def reviews_from_github(reviews: Sequence[Mapping[str, Any]]) -> Reviews:
    """Each user's standing from their reviews in submission order (as GitHub lists them).

    An approval or a change request replaces the user's previous one; a dismissal clears it; a plain
    comment (or a pending review) changes nothing.
    """
    latest: dict[str, str] = {}
    for review in reviews:
        login = (review.get("user") or {}).get("login")
        state = review.get("state")
        if not login:
            continue  # a deleted ("ghost") account
        if state in {"APPROVED", "CHANGES_REQUESTED"}:
            latest[login] = state
        elif state == "DISMISSED":
            latest.pop(login, None)
    return Reviews(
        approved_by=tuple(sorted(u for u, s in latest.items() if s == "APPROVED")),
        changes_requested_by=tuple(sorted(u for u, s in latest.items() if s == "CHANGES_REQUESTED")),
        approvals_required=0,
    )


def graphql_data(
    payload: Any, *, repo: RepoRef, token_name: str, scrub: Callable[[str], str]
) -> dict[str, Any]:
    """The ``data`` of a GraphQL answer; its ``errors`` (GraphQL answers 200 even then) raised as ours."""
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not errors:
        return dict(payload.get("data") or {}) if isinstance(payload, dict) else {}
    detail = scrub(api_message({"errors": errors}))
    kinds = {e.get("type") for e in errors if isinstance(e, dict)}
    fields = {"provider": "github", "repo": repo.path, "request": "POST /graphql"}
    if "RATE_LIMITED" in kinds:
        raise ForgeUnavailable(f"github rate-limited GraphQL requests for {repo.path}: {detail}", **fields)
    if "NOT_FOUND" in kinds:
        raise ForgeNotFound(f"github GraphQL found nothing for {repo.path}: {detail}", **fields)
    if "FORBIDDEN" in kinds:
        raise ForgeAuthError(
            f"github GraphQL refused the request for {repo.path}: {detail}; check that the token named "
            f"{token_name} may write to the repository",
            **fields,
        )
    raise ForgeError(f"github GraphQL refused the request for {repo.path}: {detail}", **fields)


def _already_exists(payload: Any) -> bool:
    errors = payload.get("errors") if isinstance(payload, dict) else None
    return any(
        isinstance(e, dict) and "already exists" in str(e.get("message", "")).lower() for e in errors or []
    )
