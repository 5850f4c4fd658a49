"""The same ``Forge`` through the gh and glab CLIs, for machines where a person logged in with them but no
token is configured for deksdenflow.

Porcelain commands do what they are good at (``gh pr create --draft``, ``gh workflow run``,
``glab mr create --draft``, ``glab ci run``); reads that need the raw API objects, and the review and
merge calls, go through ``gh api``/``glab api`` with the REST clients' requests and JSON readers, so both
paths behave alike. Arguments are passed as an argv list, never through a shell; request bodies go in as
JSON on stdin (``--input -``), never as ``-f`` fields whose values the CLIs would interpret.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

from deksdenflow_core.errors import MissingDependency

from deksdenflow_git.forges.base import (
    GITHUB_TOKEN_NAME,
    GITLAB_TOKEN_NAME,
    CiFailure,
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
    log_tail,
)
from deksdenflow_git.forges.github import (
    DEFAULT_WORKFLOW,
    MARK_READY_MUTATION,
    ci_status_from_github,
    comment_from_github,
    failed_run,
    graphql_data,
    line_comment_from_github,
    pull_request_from_github,
    reviews_from_github,
    workflow_page,
)
from deksdenflow_git.forges.github import failed_job as github_failed_job
from deksdenflow_git.forges.github import merge_result_if_settled as github_settled
from deksdenflow_git.forges.gitlab import (
    ci_status_from_gitlab,
    comments_from_gitlab,
    draft_title,
    failed_pipeline,
    merge_request_from_gitlab,
    merge_result_from_gitlab,
    not_mergeable,
    note_url,
    open_merge_request,
    project_id,
    ready_title,
    reviews_from_gitlab,
    user_id,
)
from deksdenflow_git.forges.gitlab import failed_job as gitlab_failed_job
from deksdenflow_git.forges.gitlab import merge_result_if_settled as gitlab_settled

_GH_PR_FIELDS = "number,url,state,isDraft,headRefName,headRefOid"
_AUTH_HINTS = re.compile(r"\b401\b|bad credentials|auth login|not logged in|unauthorized|authenticat", re.I)
_NOT_FOUND_HINTS = re.compile(r"\b404\b|not found|could not resolve to a repository", re.I)
_UNAVAILABLE_HINTS = re.compile(
    r"\b50[0-4]\b|\b429\b|rate limit|timed? ?out|connection (?:refused|reset)|no such host|"
    r"error connecting|temporary failure|network is unreachable",
    re.I,
)
_GLAB_MR_URL = re.compile(r"https?://\S+?/-/merge_requests/(\d+)")
_PAGE = 100  # the most either forge lists per page
# Both CLIs send an --input body as is, without a content type; GitLab reads a body only when it is typed.
_JSON_BODY = ("--header", "Content-Type: application/json", "--input", "-")


@dataclass(frozen=True)
class CliResult:
    """What a CLI run left behind."""

    returncode: int
    stdout: str
    stderr: str


class CliRunner:
    """Runs one forge CLI binary without prompts or colours and maps its failures to forge errors."""

    def __init__(self, binary: str, *, repo: RepoRef, token_name: str, timeout: float) -> None:
        path = shutil.which(binary)
        if path is None:
            raise MissingDependency(
                f"no token is configured for {repo.provider} (set {token_name}) and the {binary} CLI is "
                f"not on PATH; install {binary} and log in with `{binary} auth login`, or set the token",
                binary=binary,
                provider=repo.provider,
            )
        self.binary = binary
        self._path = path
        self._repo = repo
        self._token_name = token_name
        self._timeout = timeout
        # Never ask a question on a terminal nobody watches; plain text is easier to parse.
        self._env = {**os.environ, "GH_PROMPT_DISABLED": "1", "NO_PROMPT": "1", "NO_COLOR": "1"}

    async def run(self, *args: str, check: bool = True, stdin: str | None = None) -> CliResult:
        """Run ``binary args`` (fed ``stdin``); with ``check`` a non-zero exit raises the matching error."""
        process = await asyncio.create_subprocess_exec(
            self._path,
            *args,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
        )
        try:
            fed = None if stdin is None else stdin.encode()
            out, err = await asyncio.wait_for(process.communicate(fed), self._timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ForgeUnavailable(
                f"{self.binary} {args[0]} did not finish within {self._timeout:g}s",
                binary=self.binary,
                repo=self._repo.path,
            ) from None
        result = CliResult(
            process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
        )
        if check and result.returncode != 0:
            raise self.error_for(args, result)
        return result

    async def json(self, *args: str) -> Any:
        return self.parse(args, await self.run(*args))

    def parse(self, args: Sequence[str], result: CliResult) -> Any:
        """The JSON a run printed."""
        try:
            return json.loads(result.stdout)
        except ValueError:
            raise ForgeError(
                f"{self.binary} {' '.join(args[:2])} printed no JSON: {result.stdout[-300:]!r}",
                binary=self.binary,
            ) from None

    def error_for(self, args: Sequence[str], result: CliResult) -> Exception:
        said = (result.stderr.strip() or result.stdout.strip())[-500:]
        command = f"{self.binary} {' '.join(args[:2])}"
        fields = {"binary": self.binary, "repo": self._repo.path, "returncode": result.returncode}
        if _AUTH_HINTS.search(said):
            return ForgeAuthError(
                f"{command} failed for {self._repo.path}: {said}; run `{self.binary} auth login` for "
                f"{self._repo.host}, or check the token named {self._token_name}",
                **fields,
            )
        if _UNAVAILABLE_HINTS.search(said):
            return ForgeUnavailable(f"{command} failed for {self._repo.path}: {said}", **fields)
        if _NOT_FOUND_HINTS.search(said):
            return ForgeNotFound(
                f"{command}: repository {self._repo.path} on {self._repo.host} or the item asked for was "
                f"not found: {said}",
                **fields,
            )
        return ForgeError(f"{command} failed for {self._repo.path}: {said}", **fields)


class GhCli:
    """``Forge`` through the GitHub CLI, authenticated however ``gh`` is (``gh auth login``, env)."""

    provider = "github"

    def __init__(
        self,
        repo: RepoRef,
        *,
        token_name: str = GITHUB_TOKEN_NAME,
        timeout: float = 120.0,
        default_workflow: str = DEFAULT_WORKFLOW,
    ) -> None:
        self.repo = repo
        self._token_name = token_name
        self._gh = CliRunner("gh", repo=repo, token_name=token_name, timeout=timeout)
        self._repo_arg = f"{repo.host}/{repo.path}"
        self._default_workflow = default_workflow

    async def aclose(self) -> None:
        return None

    async def find_open_pull_request(self, branch: str) -> PullRequest | None:
        found = await self._gh.json(
            "pr",
            "list",
            "--repo",
            self._repo_arg,
            "--head",
            branch,
            "--state",
            "open",
            "--json",
            _GH_PR_FIELDS,
        )
        for data in found:
            if data["headRefName"] == branch:
                return pull_request_from_gh(data)
        return None

    async def open_draft_pull_request(self, *, branch: str, base: str, title: str, body: str) -> PullRequest:
        existing = await self.find_open_pull_request(branch)
        if existing is not None:
            return replace(existing, reused=True)
        args = (
            "pr", "create", "--repo", self._repo_arg, "--draft",
            "--head", branch, "--base", base, "--title", title, "--body", body,
        )  # fmt: skip
        result = await self._gh.run(*args, check=False)
        if result.returncode != 0:
            raced = await self.find_open_pull_request(branch) if "already exists" in result.stderr else None
            if raced is None:
                raise self._gh.error_for(args, result)
            return replace(raced, reused=True)
        # gh prints the new PR's URL as its last line; read the PR back for the fields we need.
        url = result.stdout.strip().splitlines()[-1].strip()
        return await self._view(url)

    async def get_pull_request(self, number: int) -> PullRequest:
        return await self._view(str(number))

    async def _view(self, selector: str) -> PullRequest:
        data = await self._gh.json("pr", "view", selector, "--repo", self._repo_arg, "--json", _GH_PR_FIELDS)
        return pull_request_from_gh(data)

    async def trigger_ci(self, *, ref: str, workflow: str | None = None) -> str:
        name = workflow or self._default_workflow
        await self._gh.run("workflow", "run", name, "--repo", self._repo_arg, "--ref", ref)
        return workflow_page(self.repo, name)

    async def ci_status(self, sha: str) -> CiStatus:
        combined = await self._api(f"commits/{sha}/status?per_page=100")
        checks = await self._api(f"commits/{sha}/check-runs?per_page=100")
        return ci_status_from_github(sha, combined, checks)

    async def ci_failure(self, sha: str, *, max_lines: int = 80) -> CiFailure | None:
        run = failed_run(await self._api(f"actions/runs?{urlencode({'head_sha': sha, 'per_page': 30})}"))
        if run is None:
            return None
        job = github_failed_job(await self._api(f"actions/runs/{run['id']}/jobs?filter=latest&per_page=100"))
        if job is None:
            return CiFailure(run_url=run["html_url"], job_name=run.get("name") or "", log_excerpt="")
        # gh api follows the redirect to the pre-signed log URL itself.
        log = await self._gh.run(
            "api", "--hostname", self.repo.host, self._endpoint(f"actions/jobs/{job['id']}/logs")
        )
        return CiFailure(
            run_url=run["html_url"], job_name=job["name"], log_excerpt=log_tail(log.stdout, max_lines)
        )

    # --- review and merge, through the REST API as GitHubForge does it ----------------------------

    async def mark_ready(self, number: int) -> PullRequest:
        data = await self._api(f"pulls/{number}")
        pr = pull_request_from_github(data)
        if not pr.draft:
            return pr
        args = (
            "api", "--hostname", self.repo.host, "graphql",
            "-f", f"query={MARK_READY_MUTATION}", "-f", f"id={data['node_id']}",
        )  # fmt: skip
        result = await self._gh.run(*args, check=False)
        # A GraphQL error exits non-zero with the answer on stdout: read it as GitHubForge does.
        answer = _json_or_none(result.stdout)
        if result.returncode != 0 and not (isinstance(answer, dict) and answer.get("errors")):
            raise self._gh.error_for(args, result)
        graphql_data(answer, repo=self.repo, token_name=self._token_name, scrub=str)
        return replace(pr, draft=False)

    async def request_reviewers(self, number: int, reviewers: Sequence[str]) -> None:
        if reviewers:
            await self._send("POST", f"pulls/{number}/requested_reviewers", {"reviewers": list(reviewers)})

    async def update_pull_request_body(self, number: int, body: str) -> None:
        await self._send("PATCH", f"pulls/{number}", {"body": body})

    async def comment(self, number: int, body: str) -> str:
        args, result = await self._send("POST", f"issues/{number}/comments", {"body": body})
        return str(self._gh.parse(args, result)["html_url"])

    async def merge(
        self, number: int, *, method: MergeMethod, sha: str, when_pipeline_succeeds: bool = False
    ) -> MergeResult:
        data = await self._api(f"pulls/{number}")
        done = github_settled(data, repo=self.repo)
        if done is not None:
            return done
        if when_pipeline_succeeds and (await self.ci_status(sha)).state != "success":
            return MergeResult(merged=False, scheduled=False, merge_commit_sha="", url=data["html_url"])
        payload = {"merge_method": method, "sha": sha}
        args, result = await self._send("PUT", f"pulls/{number}/merge", payload, check=False)
        if result.returncode == 0:
            merged = self._gh.parse(args, result)
            return MergeResult(
                merged=True, scheduled=False, merge_commit_sha=merged["sha"], url=data["html_url"]
            )
        done = github_settled(await self._api(f"pulls/{number}"), repo=self.repo)
        if done is not None:
            return done
        raise self._gh.error_for(args, result)

    async def comments(self, number: int) -> list[Comment]:
        return [comment_from_github(data) for data in await self._pages(f"issues/{number}/comments")]

    async def review_comments(self, number: int, review_id: str) -> list[LineComment]:
        found = await self._pages(f"pulls/{number}/reviews/{quote(review_id, safe='')}/comments")
        return [line_comment_from_github(data) for data in found]

    async def reviews(self, number: int) -> Reviews:
        return reviews_from_github(await self._pages(f"pulls/{number}/reviews"))

    async def _pages(self, endpoint: str) -> list[dict[str, Any]]:
        """Every item of a paginated listing: pages are asked for until one comes back short."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = await self._api(f"{endpoint}?per_page={_PAGE}&page={page}")
            found.extend(batch)
            if len(batch) < _PAGE:
                return found
            page += 1

    async def _send(
        self, method: str, endpoint: str, payload: dict[str, Any], *, check: bool = True
    ) -> tuple[tuple[str, ...], CliResult]:
        args = (
            "api",
            "--hostname",
            self.repo.host,
            "--method",
            method,
            *_JSON_BODY,
            self._endpoint(endpoint),
        )
        return args, await self._gh.run(*args, check=check, stdin=json.dumps(payload))

    async def _api(self, endpoint: str) -> Any:
        return await self._gh.json("api", "--hostname", self.repo.host, self._endpoint(endpoint))

    def _endpoint(self, rest: str) -> str:
        return f"repos/{self.repo.path}/{rest}"


class GlabCli:
    """``Forge`` through the GitLab CLI, authenticated however ``glab`` is (``glab auth login``, env)."""

    provider = "gitlab"

    def __init__(self, repo: RepoRef, *, token_name: str = GITLAB_TOKEN_NAME, timeout: float = 120.0) -> None:
        self.repo = repo
        self._glab = CliRunner("glab", repo=repo, token_name=token_name, timeout=timeout)
        # A full URL names the host too, so self-hosted instances need no GITLAB_HOST.
        self._repo_arg = f"https://{repo.host}/{repo.path}"
        self._project = f"projects/{project_id(repo)}"

    async def aclose(self) -> None:
        return None

    async def find_open_pull_request(self, branch: str) -> PullRequest | None:
        query = urlencode({"source_branch": branch, "state": "opened", "per_page": 10})
        return open_merge_request(await self._api(f"merge_requests?{query}"), branch)

    async def open_draft_pull_request(self, *, branch: str, base: str, title: str, body: str) -> PullRequest:
        existing = await self.find_open_pull_request(branch)
        if existing is not None:
            return replace(existing, reused=True)
        args = (
            "mr", "create", "--repo", self._repo_arg, "--source-branch", branch, "--target-branch", base,
            "--title", draft_title(title), "--description", body, "--draft", "--yes", "--no-editor",
        )  # fmt: skip
        result = await self._glab.run(*args, check=False)
        said = result.stdout + result.stderr
        if result.returncode != 0:
            raced = await self.find_open_pull_request(branch) if "already exists" in said else None
            if raced is None:
                raise self._glab.error_for(args, result)
            return replace(raced, reused=True)
        match = _GLAB_MR_URL.search(said)
        if match is None:
            raise ForgeError(
                f"glab mr create printed no merge request URL: {said[-300:]!r}", repo=self.repo.path
            )
        return await self.get_pull_request(int(match[1]))

    async def get_pull_request(self, number: int) -> PullRequest:
        return merge_request_from_gitlab(await self._api(f"merge_requests/{number}"))

    async def trigger_ci(self, *, ref: str, workflow: str | None = None) -> str:
        """``glab ci run -b ref``; ``workflow`` does not apply to GitLab. Returns glab's one-line report."""
        result = await self._glab.run("ci", "run", "--repo", self._repo_arg, "--branch", ref)
        return result.stdout.strip() or f"pipeline created on {ref}"

    async def ci_status(self, sha: str) -> CiStatus:
        query = urlencode({"sha": sha, "order_by": "id", "sort": "desc", "per_page": 1})
        return ci_status_from_gitlab(sha, await self._api(f"pipelines?{query}"))

    async def ci_failure(self, sha: str, *, max_lines: int = 80) -> CiFailure | None:
        query = urlencode({"sha": sha, "order_by": "id", "sort": "desc", "per_page": 20})
        pipeline = failed_pipeline(await self._api(f"pipelines?{query}"))
        if pipeline is None:
            return None
        job = gitlab_failed_job(
            await self._api(f"pipelines/{pipeline['id']}/jobs?scope[]=failed&per_page=100")
        )
        if job is None:
            return CiFailure(run_url=pipeline["web_url"], job_name="", log_excerpt="")
        trace = await self._glab.run(
            "api", "--hostname", self.repo.host, f"{self._project}/jobs/{job['id']}/trace"
        )
        return CiFailure(
            run_url=pipeline["web_url"], job_name=job["name"], log_excerpt=log_tail(trace.stdout, max_lines)
        )

    # --- review and merge, through the REST API as GitLabForge does it ----------------------------

    async def mark_ready(self, number: int) -> PullRequest:
        data = await self._api(f"merge_requests/{number}")
        if not merge_request_from_gitlab(data).draft:
            return merge_request_from_gitlab(data)
        args, result = await self._send(
            "PUT", f"merge_requests/{number}", {"title": ready_title(data["title"])}
        )
        return merge_request_from_gitlab(self._glab.parse(args, result))

    async def request_reviewers(self, number: int, reviewers: Sequence[str]) -> None:
        if not reviewers:
            return
        ids = [
            user_id(await self._get(f"users?{urlencode({'username': name})}"), name, self.repo)
            for name in reviewers
        ]
        asked = [int(r["id"]) for r in (await self._api(f"merge_requests/{number}")).get("reviewers") or []]
        await self._send(
            "PUT", f"merge_requests/{number}", {"reviewer_ids": list(dict.fromkeys([*asked, *ids]))}
        )

    async def update_pull_request_body(self, number: int, body: str) -> None:
        await self._send("PUT", f"merge_requests/{number}", {"description": body})

    async def comment(self, number: int, body: str) -> str:
        args, result = await self._send("POST", f"merge_requests/{number}/notes", {"body": body})
        note = self._glab.parse(args, result)
        return note_url((await self._api(f"merge_requests/{number}"))["web_url"], note)

    async def merge(
        self, number: int, *, method: MergeMethod, sha: str, when_pipeline_succeeds: bool = False
    ) -> MergeResult:
        data = await self._api(f"merge_requests/{number}")
        done = gitlab_settled(data, sha=sha, scheduling=when_pipeline_succeeds, repo=self.repo)
        if done is not None:
            return done
        payload = {
            "sha": sha,
            "squash": method == "squash",
            "merge_when_pipeline_succeeds": when_pipeline_succeeds,
        }
        args, result = await self._send("PUT", f"merge_requests/{number}/merge", payload, check=False)
        if result.returncode == 0:
            return merge_result_from_gitlab(self._glab.parse(args, result))
        again = await self._api(f"merge_requests/{number}")
        done = gitlab_settled(again, sha=sha, scheduling=when_pipeline_succeeds, repo=self.repo)
        if done is not None:
            return done
        raise not_mergeable(self._glab.error_for(args, result), again)

    async def comments(self, number: int) -> list[Comment]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            query = f"sort=asc&order_by=created_at&per_page={_PAGE}&page={page}"
            batch = await self._api(f"merge_requests/{number}/notes?{query}")
            found.extend(batch)
            if len(batch) < _PAGE:
                break
            page += 1
        return comments_from_gitlab((await self._api(f"merge_requests/{number}"))["web_url"], found)

    async def review_comments(self, number: int, review_id: str) -> list[LineComment]:
        return []  # GitLab groups no notes under a review: each comes in its own Note Hook delivery

    async def reviews(self, number: int) -> Reviews:
        return reviews_from_gitlab(await self._api(f"merge_requests/{number}/approvals"))

    async def _send(
        self, method: str, endpoint: str, payload: dict[str, Any], *, check: bool = True
    ) -> tuple[tuple[str, ...], CliResult]:
        args = (
            "api",
            "--hostname",
            self.repo.host,
            "--method",
            method,
            *_JSON_BODY,
            f"{self._project}/{endpoint}",
        )
        return args, await self._glab.run(*args, check=check, stdin=json.dumps(payload))

    async def _api(self, endpoint: str) -> Any:
        return await self._get(f"{self._project}/{endpoint}")

    async def _get(self, endpoint: str) -> Any:
        return await self._glab.json("api", "--hostname", self.repo.host, endpoint)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def pull_request_from_gh(data: dict[str, Any]) -> PullRequest:
    """A PR from ``gh pr list/view --json number,url,state,isDraft,headRefName,headRefOid``."""
    state = str(data["state"]).lower()
    return PullRequest(
        number=int(data["number"]),
        url=data["url"],
        state="merged" if state == "merged" else "open" if state == "open" else "closed",
        head_branch=data["headRefName"],
        head_sha=data.get("headRefOid") or "",
        draft=bool(data.get("isDraft", False)),
    )
