"""The starter ``scripts/ci/report.sh``: the real script under ``/bin/sh`` against a local HTTP server.

Each run gets a minimal environment (PATH and HOME only, plus what the test sets) so the CI variables of the
machine running the tests never leak in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from deksdenflow_git_ci_worker.jobs.onboarding import starter_files

STARTER = Path(__file__).resolve().parents[2] / "services/git_ci_worker/src/deksdenflow_git_ci_worker/starter"
SCRIPT = STARTER / "scripts/ci/report.sh"
# The shell under test (dash on Debian). To try busybox: DEKSDENFLOW_TEST_SH=<dir>/sh, <dir> holding busybox
# applet links (sh, od, sed, tr, cut, head, mktemp, ...) and first on PATH.
SH = os.environ.get("DEKSDENFLOW_TEST_SH", "/bin/sh")
TOKEN = 't0ken-with-$pecial "chars" \\ and spaces'
HEAD_SHA = "a" * 40
MERGE_SHA = "b" * 40


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> dict[str, Any]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


@dataclass
class Api:
    """A stand-in for the deksdenflow API: records every request, answers with queued statuses (then 200)."""

    base: str = ""
    requests: list[Recorded] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, request: Recorded) -> int:
        with self.lock:
            self.requests.append(request)
            return self.statuses.pop(0) if self.statuses else 200

    def only(self) -> Recorded:
        assert len(self.requests) == 1, self.requests
        return self.requests[0]


def _handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = api.record(Recorded(self.command, self.path, headers, body))
            answer = json.dumps({"status": status, "detail": "bad signature" if status == 401 else "ok"})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def api() -> Iterator[Api]:
    recorder = Api()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    recorder.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository with one commit on ``feature/from-git``."""
    path = tmp_path / "repo"
    path.mkdir()
    env = _base_env(tmp_path) | {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    for args in (
        ["init", "-q"],
        ["symbolic-ref", "HEAD", "refs/heads/feature/from-git"],
        ["commit", "-q", "--allow-empty", "-m", "first"],
    ):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
    return path


def _base_env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}


def run_report(
    tmp_path: Path, *args: str, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``sh report.sh ARGS`` with only PATH, HOME and ``env``, in ``cwd`` (default: an empty directory that is
    not a git repository, so no git fallback answers)."""
    if cwd is None:
        cwd = tmp_path / "not-a-repo"
        cwd.mkdir(exist_ok=True)
    return subprocess.run(
        [SH, str(SCRIPT), *args],
        cwd=cwd,
        env=_base_env(tmp_path) | {"GIT_CEILING_DIRECTORIES": str(tmp_path)} | dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def configured(api: Api, **extra: str) -> dict[str, str]:
    return {"DEKSDENFLOW_API_BASE": api.base, "DEKSDENFLOW_WEBHOOK_TOKEN": TOKEN, **extra}


GITHUB_PR = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.example.com",
    "GITHUB_REPOSITORY": "acme/widgets",
    "GITHUB_RUN_ID": "4242",
    "GITHUB_HEAD_REF": "feature/pr-branch",
    "GITHUB_REF_NAME": "17/merge",
    "GITHUB_SHA": MERGE_SHA,
}


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def _is_uuid4(value: str) -> bool:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return str(parsed) == value and parsed.version == 4


# --- GitHub -------------------------------------------------------------------------------------------------


def test_github_success_is_a_signed_status_event(api: Api, tmp_path: Path) -> None:
    env = configured(api, **GITHUB_PR, DEKSDENFLOW_SHA=HEAD_SHA, DEKSDENFLOW_PROTOCOL_RUN_ID="pr-run-1")
    done = run_report(tmp_path, "success", env=env)

    assert done.returncode == 0, done.stderr
    req = api.only()
    assert (req.method, req.path) == ("POST", "/webhooks/github")
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-github-event"] == "status"
    assert req.headers["user-agent"] == "deksdenflow-report/1"
    assert _is_uuid4(req.headers["x-github-delivery"])
    expected = hmac.new(TOKEN.encode(), req.body, hashlib.sha256).hexdigest()
    assert req.headers["x-hub-signature-256"] == f"sha256={expected}"
    assert req.json() == {
        "sha": HEAD_SHA,
        "state": "success",
        "target_url": "https://github.example.com/acme/widgets/actions/runs/4242",
        "context": "deksdenflow/report",
        "description": "CI success",
        "branches": [{"name": "feature/pr-branch", "commit": {"sha": HEAD_SHA}}],
        "repository": {"full_name": "acme/widgets"},
        "protocol_run_id": "pr-run-1",
    }
    assert TOKEN not in done.stdout + done.stderr


def test_github_running_is_pending_without_optional_fields(api: Api, tmp_path: Path) -> None:
    env = configured(api, GITHUB_REF_NAME="main", GITHUB_SHA=MERGE_SHA)
    done = run_report(tmp_path, "running", env=env)

    assert done.returncode == 0, done.stderr
    body = api.only().json()
    assert body["state"] == "pending"
    assert body["sha"] == MERGE_SHA
    assert body["branches"] == [{"name": "main", "commit": {"sha": MERGE_SHA}}]
    assert body["target_url"] is None
    assert body["repository"] == {"full_name": None}
    assert "protocol_run_id" not in body


def test_github_failure_and_refs_heads_prefix(api: Api, tmp_path: Path) -> None:
    env = configured(api, DEKSDENFLOW_BRANCH="refs/heads/release/1.2", DEKSDENFLOW_SHA=HEAD_SHA)
    done = run_report(tmp_path, "failure", env=env)

    assert done.returncode == 0, done.stderr
    body = api.only().json()
    assert body["state"] == "failure"
    assert body["branches"][0]["name"] == "release/1.2"


@pytest.mark.parametrize("indent", [2, None], ids=["pretty", "compact"])
def test_github_pull_request_head_sha_comes_from_the_event_file(
    api: Api, tmp_path: Path, indent: int | None
) -> None:
    event = {
        "action": "synchronize",
        "number": 17,
        "pull_request": {
            "title": 'fix: "head": {"sha": "' + "c" * 40 + '"}',
            "merge_commit_sha": "d" * 40,
            "head": {
                "label": "acme:feature/pr-branch",
                "ref": "feature/pr-branch",
                "sha": HEAD_SHA,
                "user": {"login": "acme"},
                "repo": {"full_name": "acme/widgets"},
            },
            "base": {"ref": "main", "sha": "e" * 40},
        },
    }
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event, indent=indent))
    env = configured(api, **GITHUB_PR, GITHUB_EVENT_NAME="pull_request", GITHUB_EVENT_PATH=str(event_path))
    done = run_report(tmp_path, "success", env=env)

    assert done.returncode == 0, done.stderr
    body = api.only().json()
    assert body["sha"] == HEAD_SHA
    assert body["branches"] == [{"name": "feature/pr-branch", "commit": {"sha": HEAD_SHA}}]


def test_github_push_event_uses_github_sha(api: Api, tmp_path: Path) -> None:
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps({"ref": "refs/heads/main", "after": MERGE_SHA}))
    env = configured(
        api,
        GITHUB_EVENT_NAME="push",
        GITHUB_EVENT_PATH=str(event_path),
        GITHUB_SHA=MERGE_SHA,
        GITHUB_REF_NAME="main",
    )
    done = run_report(tmp_path, "success", env=env)

    assert done.returncode == 0, done.stderr
    assert api.only().json()["sha"] == MERGE_SHA


def test_strings_are_json_escaped(api: Api, tmp_path: Path) -> None:
    branch = 'we"ird\\branch\twith\x01ctl-é-✓'
    env = configured(
        api, DEKSDENFLOW_BRANCH=branch, DEKSDENFLOW_SHA=HEAD_SHA, DEKSDENFLOW_PROTOCOL_RUN_ID='r"\\'
    )
    done = run_report(tmp_path, "success", env=env)

    assert done.returncode == 0, done.stderr
    req = api.only()
    assert b"\\u0001" in req.body
    body = req.json()
    assert body["branches"][0]["name"] == branch
    assert body["protocol_run_id"] == 'r"\\'
    expected = hmac.new(TOKEN.encode(), req.body, hashlib.sha256).hexdigest()
    assert req.headers["x-hub-signature-256"] == f"sha256={expected}"


def test_two_runs_have_different_delivery_ids(api: Api, tmp_path: Path) -> None:
    env = configured(api, DEKSDENFLOW_BRANCH="main", DEKSDENFLOW_SHA=HEAD_SHA)
    for _ in range(2):
        assert run_report(tmp_path, "success", env=env).returncode == 0

    ids = [r.headers["x-github-delivery"] for r in api.requests]
    assert len(ids) == 2
    assert all(_is_uuid4(i) for i in ids)
    assert ids[0] != ids[1]


def test_git_fallback_for_branch_and_sha(api: Api, tmp_path: Path, repo: Path) -> None:
    done = run_report(tmp_path, "success", env=configured(api), cwd=repo)

    assert done.returncode == 0, done.stderr
    head = _git(repo, "rev-parse", "HEAD")
    body = api.only().json()
    assert body["sha"] == head
    assert body["branches"] == [{"name": "feature/from-git", "commit": {"sha": head}}]


# --- GitLab -------------------------------------------------------------------------------------------------


def test_gitlab_failure_is_a_failed_pipeline_hook(api: Api, tmp_path: Path) -> None:
    env = configured(
        api,
        GITLAB_CI="true",
        CI_PIPELINE_ID="98765",
        CI_PIPELINE_URL="https://gitlab.example.com/acme/widgets/-/pipelines/98765",
        CI_PROJECT_PATH="acme/widgets",
        CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="feature/mr",
        CI_COMMIT_BRANCH="other",
        CI_COMMIT_REF_NAME="other",
        CI_COMMIT_SHA=HEAD_SHA,
        DEKSDENFLOW_PROTOCOL_RUN_ID="pr-run-2",
    )
    done = run_report(tmp_path, "failure", env=env)

    assert done.returncode == 0, done.stderr
    req = api.only()
    assert (req.method, req.path) == ("POST", "/webhooks/gitlab")
    assert req.headers["x-gitlab-event"] == "Pipeline Hook"
    assert req.headers["x-gitlab-token"] == TOKEN
    assert req.headers["content-type"] == "application/json"
    assert _is_uuid4(req.headers["idempotency-key"])
    assert "x-hub-signature-256" not in req.headers
    assert req.json() == {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": 98765,
            "ref": "feature/mr",
            "tag": False,
            "sha": HEAD_SHA,
            "status": "failed",
            "url": "https://gitlab.example.com/acme/widgets/-/pipelines/98765",
        },
        "project": {"path_with_namespace": "acme/widgets"},
        "protocol_run_id": "pr-run-2",
    }
    assert TOKEN not in done.stdout + done.stderr


@pytest.mark.parametrize(("arg", "status"), [("success", "success"), ("running", "running")])
def test_gitlab_provider_chosen_explicitly(api: Api, tmp_path: Path, arg: str, status: str) -> None:
    env = configured(api, DEKSDENFLOW_CI_PROVIDER="gitlab", CI_COMMIT_REF_NAME="main", CI_COMMIT_SHA=HEAD_SHA)
    done = run_report(tmp_path, arg, env=env)

    assert done.returncode == 0, done.stderr
    req = api.only()
    assert req.path == "/webhooks/gitlab"
    attrs = req.json()["object_attributes"]
    assert (attrs["status"], attrs["id"], attrs["ref"], attrs["url"]) == (status, 0, "main", None)
    assert "protocol_run_id" not in req.json()


# --- failures and configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(("strict", "code"), [(True, 1), (False, 0)])
def test_rejected_report(api: Api, tmp_path: Path, strict: bool, code: int) -> None:
    api.statuses = [401]
    env = configured(api, DEKSDENFLOW_BRANCH="main", DEKSDENFLOW_SHA=HEAD_SHA)
    if strict:
        env["DEKSDENFLOW_REPORT_STRICT"] = "1"
    done = run_report(tmp_path, "success", env=env)

    assert done.returncode == code, done.stderr
    assert len(api.requests) == 1  # a 401 is not retried
    assert "401" in done.stderr
    assert "bad signature" in done.stderr  # the API's answer is shown
    if not strict:
        assert "DEKSDENFLOW_REPORT_STRICT=1" in done.stderr


def test_transient_error_is_retried_with_the_same_body(api: Api, tmp_path: Path) -> None:
    api.statuses = [503]
    env = configured(api, DEKSDENFLOW_BRANCH="main", DEKSDENFLOW_SHA=HEAD_SHA, DEKSDENFLOW_REPORT_STRICT="1")
    env["DEKSDENFLOW_REPORT_RETRIES"] = "1"
    done = run_report(tmp_path, "success", env=env)

    assert done.returncode == 0, done.stderr
    first, second = api.requests
    assert first.body == second.body
    assert first.headers["x-hub-signature-256"] == second.headers["x-hub-signature-256"]


@pytest.mark.parametrize(("strict", "code"), [(True, 1), (False, 0)])
def test_unreachable_api(tmp_path: Path, strict: bool, code: int) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the script runs: connection refused
    env = {
        "DEKSDENFLOW_API_BASE": f"http://127.0.0.1:{port}/",
        "DEKSDENFLOW_WEBHOOK_TOKEN": TOKEN,
        "DEKSDENFLOW_BRANCH": "main",
        "DEKSDENFLOW_SHA": HEAD_SHA,
        "DEKSDENFLOW_REPORT_RETRIES": "0",
    }
    if strict:
        env["DEKSDENFLOW_REPORT_STRICT"] = "1"
    done = run_report(tmp_path, "failure", env=env)

    assert done.returncode == code, done.stderr
    assert "failed" in done.stderr


@pytest.mark.parametrize("missing", ["DEKSDENFLOW_API_BASE", "DEKSDENFLOW_WEBHOOK_TOKEN"])
@pytest.mark.parametrize(("strict", "code"), [(True, 2), (False, 0)])
def test_missing_configuration(api: Api, tmp_path: Path, missing: str, strict: bool, code: int) -> None:
    env = configured(api, DEKSDENFLOW_BRANCH="main", DEKSDENFLOW_SHA=HEAD_SHA)
    del env[missing]
    if strict:
        env["DEKSDENFLOW_REPORT_STRICT"] = "1"
    done = run_report(tmp_path, "success", env=env)

    assert done.returncode == code
    assert len(done.stderr.strip().splitlines()) == 1
    assert "DEKSDENFLOW_API_BASE" in done.stderr
    assert api.requests == []


@pytest.mark.parametrize("args", [[], ["passed"], [""], ["success", "extra"], ["SUCCESS"]])
def test_bad_argument(api: Api, tmp_path: Path, args: list[str]) -> None:
    done = run_report(tmp_path, *args, env=configured(api))

    assert done.returncode == 2
    assert "usage:" in done.stderr
    assert api.requests == []


def test_unknown_provider(api: Api, tmp_path: Path) -> None:
    env = configured(api, DEKSDENFLOW_CI_PROVIDER="bitbucket", DEKSDENFLOW_SHA=HEAD_SHA)
    assert run_report(tmp_path, "success", env=env).returncode == 0
    env["DEKSDENFLOW_REPORT_STRICT"] = "1"
    assert run_report(tmp_path, "success", env=env).returncode == 2
    assert api.requests == []


# --- installation -------------------------------------------------------------------------------------------


def test_installed_executable_and_wired_into_both_templates() -> None:
    modes = {rel: mode for rel, _, mode in starter_files()}
    assert modes["scripts/ci/report.sh"] == 0o755
    assert SCRIPT.stat().st_mode & 0o777 == 0o755
    workflow = (STARTER / ".github/workflows/deksdenflow-ci.yml").read_text()
    assert "sh scripts/ci/report.sh success" in workflow
    assert "sh scripts/ci/report.sh failure" in workflow
    assert "secrets.DEKSDENFLOW_WEBHOOK_TOKEN" in workflow
    gitlab = (STARTER / ".gitlab-ci.yml").read_text()
    assert "after_script:" in gitlab
    assert "$CI_JOB_STATUS" in gitlab
    assert "sh scripts/ci/report.sh failure" in gitlab
