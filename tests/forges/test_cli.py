"""The gh/glab fallback: the argv it runs and how it reads the output, with fake CLIs first on PATH
(the ``fake_cli`` fixture of conftest.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from deksdenflow_git.forges import ForgeAuthError, ForgeUnavailable, GhCli, GlabCli, make_forge, parse_repo

from tests.forges.conftest import FakeCli

BRANCH = "0007-add-search"
SHA = "c" * 40
# Quotes, $(...) and newlines reach the CLI untouched: the argv is never shell-interpreted.
BODY = 'See `.protocols/0007`; $(rm -rf ~) "quoted"\nsecond line'


def _gh_pr(number: int, *, state: str = "OPEN") -> str:
    return json.dumps(
        {
            "number": number,
            "url": f"https://github.com/acme/widgets/pull/{number}",
            "state": state,
            "isDraft": True,
            "headRefName": BRANCH,
            "headRefOid": SHA,
        }
    )


def _gh() -> GhCli:
    return GhCli(parse_repo("https://github.com/acme/widgets.git", "github"), timeout=20)


def _glab() -> GlabCli:
    return GlabCli(parse_repo("git@gitlab.example.com:platform/api.git", "gitlab"), timeout=20)


def _mr(iid: int, *, state: str = "opened") -> dict[str, Any]:
    return {
        "iid": iid,
        "web_url": f"https://gitlab.example.com/platform/api/-/merge_requests/{iid}",
        "state": state,
        "source_branch": BRANCH,
        "sha": SHA,
        "draft": True,
    }


# --- gh -----------------------------------------------------------------------------------------------


async def test_gh_opens_a_draft_pull_request(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {"when": ["pr", "list"], "stdout": "[]"},
        {"when": ["pr", "create"], "stdout": "https://github.com/acme/widgets/pull/7\n"},
        {"when": ["pr", "view"], "stdout": _gh_pr(7)},
    )

    pr = await _gh().open_draft_pull_request(
        branch=BRANCH, base="main", title="WIP: 0007 - add search", body=BODY
    )

    assert (pr.number, pr.state, pr.draft, pr.reused, pr.head_sha) == (7, "open", True, False, SHA)
    lookup, create, view = fake_cli.calls()
    repo = ["--repo", "github.com/acme/widgets"]
    fields = "number,url,state,isDraft,headRefName,headRefOid"
    assert lookup == ["gh", "pr", "list", *repo, "--head", BRANCH, "--state", "open", "--json", fields]
    assert create == [
        *["gh", "pr", "create", *repo, "--draft", "--head", BRANCH, "--base", "main"],
        *["--title", "WIP: 0007 - add search", "--body", BODY],
    ]
    assert view[:5] == ["gh", "pr", "view", "https://github.com/acme/widgets/pull/7", "--repo"]


async def test_gh_reuses_the_pull_request_when_create_says_it_already_exists(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {"when": ["pr", "list"], "stdout": "[]", "once": True},
        {
            "when": ["pr", "create"],
            "rc": 1,
            "stderr": f'a pull request for branch "{BRANCH}" into branch "main" already exists:\n'
            "https://github.com/acme/widgets/pull/3\n",
        },
        {"when": ["pr", "list"], "stdout": f"[{_gh_pr(3)}]"},
    )

    pr = await _gh().open_draft_pull_request(branch=BRANCH, base="main", title="t", body="b")

    assert (pr.number, pr.reused) == (3, True)
    assert [call[1:3] for call in fake_cli.calls()] == [["pr", "list"], ["pr", "create"], ["pr", "list"]]


async def test_gh_not_logged_in_is_a_non_retryable_auth_error(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {
            "when": ["pr", "list"],
            "rc": 1,
            "stderr": "HTTP 401: Bad credentials (https://api.github.com/graphql)\n"
            "Try authenticating with:  gh auth login\n",
        },
    )
    with pytest.raises(ForgeAuthError) as caught:
        await _gh().find_open_pull_request(BRANCH)
    assert not caught.value.retryable
    assert "gh auth login" in caught.value.message
    assert "GITHUB_TOKEN" in caught.value.message


async def test_gh_network_trouble_is_retryable(fake_cli: FakeCli) -> None:
    fake_cli.rules({"when": ["pr", "view"], "rc": 1, "stderr": "error connecting to api.github.com\n"})
    with pytest.raises(ForgeUnavailable):
        await _gh().get_pull_request(3)


async def test_a_cli_that_hangs_is_killed_and_retryable(fake_cli: FakeCli) -> None:
    fake_cli.rules({"when": ["pr", "view"], "sleep": 30, "stdout": _gh_pr(3)})
    gh = GhCli(parse_repo("https://github.com/acme/widgets.git", "github"), timeout=0.5)
    with pytest.raises(ForgeUnavailable) as caught:
        await gh.get_pull_request(3)
    assert "did not finish within 0.5s" in caught.value.message


async def test_gh_merged_pull_request(fake_cli: FakeCli) -> None:
    fake_cli.rules({"when": ["pr", "view", "12"], "stdout": _gh_pr(12, state="MERGED")})
    assert (await _gh().get_pull_request(12)).state == "merged"


async def test_gh_triggers_the_workflow(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {"when": ["workflow", "run"], "stderr": "✓ Created workflow_dispatch event for ci.yml at main\n"}
    )

    where = await _gh().trigger_ci(ref=BRANCH)

    assert fake_cli.calls() == [
        ["gh", "workflow", "run", "ci.yml", "--repo", "github.com/acme/widgets", "--ref", BRANCH]
    ]
    assert where == "https://github.com/acme/widgets/actions/workflows/ci.yml"


async def test_gh_reads_ci_status_and_failure_through_the_api(fake_cli: FakeCli) -> None:
    repo_api = "repos/acme/widgets"
    failed_run = {
        "id": 55,
        "conclusion": "failure",
        "html_url": "https://github.com/acme/widgets/actions/runs/55",
    }
    fake_cli.rules(
        {"when": [f"{repo_api}/commits/{SHA}/status?per_page=100"], "stdout": json.dumps({"statuses": []})},
        {
            "when": [f"{repo_api}/commits/{SHA}/check-runs?per_page=100"],
            "stdout": json.dumps(
                {
                    "check_runs": [
                        {
                            "status": "completed",
                            "conclusion": "failure",
                            "html_url": "https://github.com/x/job/9",
                        }
                    ]
                }
            ),
        },
        {
            "when": [f"{repo_api}/actions/runs?head_sha={SHA}&per_page=30"],
            "stdout": json.dumps({"workflow_runs": [failed_run]}),
        },
        {
            "when": [f"{repo_api}/actions/runs/55/jobs?filter=latest&per_page=100"],
            "stdout": json.dumps({"jobs": [{"id": 9, "name": "build", "conclusion": "failure"}]}),
        },
        {"when": [f"{repo_api}/actions/jobs/9/logs"], "stdout": "one\ntwo\nthree\n"},
    )
    gh = _gh()

    status = await gh.ci_status(SHA)
    failure = await gh.ci_failure(SHA, max_lines=2)

    assert (status.state, status.raw_state, status.url) == (
        "failure",
        "failure",
        "https://github.com/x/job/9",
    )
    assert failure is not None
    assert (failure.run_url, failure.job_name, failure.log_excerpt) == (
        failed_run["html_url"],
        "build",
        "two\nthree",
    )
    assert all(call[1:4] == ["api", "--hostname", "github.com"] for call in fake_cli.calls())


# --- glab ---------------------------------------------------------------------------------------------


async def test_glab_opens_a_draft_merge_request(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {"when": ["api"], "stdout": "[]", "once": True},
        {
            "when": ["mr", "create"],
            "stdout": f"\nCreating merge request for {BRANCH} into main in platform/api\n\n"
            f"!4 Draft: t ({BRANCH})\n https://gitlab.example.com/platform/api/-/merge_requests/4\n\n",
        },
        {"when": ["projects/platform%2Fapi/merge_requests/4"], "stdout": json.dumps(_mr(4))},
    )

    pr = await _glab().open_draft_pull_request(branch=BRANCH, base="main", title="t", body=BODY)

    assert (pr.number, pr.draft, pr.reused, pr.url) == (4, True, False, _mr(4)["web_url"])
    lookup, create, view = fake_cli.calls()
    query = f"source_branch={BRANCH}&state=opened&per_page=10"
    assert lookup == [
        "glab",
        "api",
        "--hostname",
        "gitlab.example.com",
        f"projects/platform%2Fapi/merge_requests?{query}",
    ]
    assert create == [
        *["glab", "mr", "create", "--repo", "https://gitlab.example.com/platform/api"],
        *["--source-branch", BRANCH, "--target-branch", "main", "--title", "Draft: t", "--description", BODY],
        *["--draft", "--yes", "--no-editor"],
    ]
    assert view[-1] == "projects/platform%2Fapi/merge_requests/4"


async def test_glab_reuses_the_merge_request_on_conflict(fake_cli: FakeCli) -> None:
    fake_cli.rules(
        {"when": ["api"], "stdout": "[]", "once": True},
        {
            "when": ["mr", "create"],
            "rc": 1,
            "stderr": "failed to create merge request: POST https://gitlab.example.com/api/v4/projects/platform%2Fapi/"
            "merge_requests: 409 {message: [Another open merge request already exists for this source "
            "branch: !4]}\n",
        },
        {"when": ["api"], "stdout": json.dumps([_mr(4)])},
    )

    pr = await _glab().open_draft_pull_request(branch=BRANCH, base="main", title="t", body="b")

    assert (pr.number, pr.reused) == (4, True)


async def test_glab_runs_a_pipeline_on_the_branch(fake_cli: FakeCli) -> None:
    report = "Created pipeline (id: 901), status: created, ref: 0007-add-search, weburl: https://gitlab.example.com/platform/api/-/pipelines/901"
    fake_cli.rules({"when": ["ci", "run"], "stdout": report + "\n"})

    assert await _glab().trigger_ci(ref=BRANCH) == report
    assert fake_cli.calls() == [
        ["glab", "ci", "run", "--repo", "https://gitlab.example.com/platform/api", "--branch", BRANCH]
    ]


async def test_glab_reads_ci_status_and_failure_through_the_api(fake_cli: FakeCli) -> None:
    pipeline = {
        "id": 77,
        "status": "failed",
        "web_url": "https://gitlab.example.com/platform/api/-/pipelines/77",
    }
    fake_cli.rules(
        {"when": ["projects/platform%2Fapi/jobs/31/trace"], "stdout": "\x1b[0Kcompiling\nerror: boom\n"},
        {
            "when": ["projects/platform%2Fapi/pipelines/77/jobs?scope[]=failed&per_page=100"],
            "stdout": json.dumps([{"id": 31, "name": "build", "status": "failed"}]),
        },
        {"when": ["api"], "stdout": json.dumps([pipeline])},
    )
    glab = _glab()

    status = await glab.ci_status(SHA)
    failure = await glab.ci_failure(SHA)

    assert (status.state, status.raw_state, status.url) == ("failure", "failed", pipeline["web_url"])
    assert failure is not None
    assert (failure.run_url, failure.job_name, failure.log_excerpt) == (
        pipeline["web_url"],
        "build",
        "compiling\nerror: boom",
    )


async def test_make_forge_falls_back_to_the_cli_without_a_token(fake_cli: FakeCli) -> None:
    assert isinstance(make_forge("github", "git@github.com:a/b.git", token=None), GhCli)
    assert isinstance(make_forge("gitlab", "git@gitlab.com:a/b.git", token=None), GlabCli)
