"""Every kind of secret, a whole ``deksdenflow run`` with failures, then a search of everything it stored.

The run gets every secret the system knows (admin token, global webhook secret, the key that seals
Idempotency-Key answers, forge tokens for the git worker, model API keys for the codex worker); the test
makes the API issue the others (project tokens, a project's webhook secret, all with Idempotency-Keys),
and drives failures: an onboarding job that fails (its repository does not exist), webhooks with a wrong
signature or a bad body, a git URL with a password. Then no secret is found, in any encoding, in the
event stream and every KV bucket, in any table of the read model, in any file under the run's home
(logs and git mirrors included), in the remote it pushed to, or in the run's own output.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import subprocess
import uuid
from pathlib import Path

import httpx
import nats
import pytest
from deksdenflow_runtime.credentials import Credentials, credentials_file
from deksdenflow_runtime.embedded import free_port

from tests.runtime.cli_support import cli_env
from tests.runtime.run_support import Ports, Run
from tests.secret_scan import Scanner, Secrets, describe
from tests.support import eventually

_GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]


def _remote(root: Path) -> Path:
    """A bare repository with one commit on main, like a forge's."""
    bare, work = root / "remote.git", root / "seed"
    subprocess.run([*_GIT, "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run([*_GIT, "init", "-q", str(work)], check=True)
    (work / "README.md").write_text("seed\n")
    subprocess.run([*_GIT, "-C", str(work), "add", "."], check=True)
    subprocess.run([*_GIT, "-C", str(work), "commit", "-qm", "seed"], check=True)
    subprocess.run([*_GIT, "-C", str(work), "push", "-q", str(bare), "main"], check=True)
    return bare


def every_kind_of_secret() -> Secrets:
    """The secrets given to a run; the API-issued ones are added as the test gets them."""
    secrets = Secrets()
    secrets.add("admin_token", f"adm-{uuid.uuid4().hex}")
    secrets.add("webhook_secret_global", f"whk-{uuid.uuid4().hex}")
    secrets.add("idempotency_secret", f"idem-{uuid.uuid4().hex}")
    secrets.add("github_token", f"ghp_{uuid.uuid4().hex}")
    secrets.add("gitlab_token", f"glpat-{uuid.uuid4().hex}")
    secrets.add("openai_api_key", f"sk-{uuid.uuid4().hex}")
    secrets.add("anthropic_api_key", f"sk-ant-{uuid.uuid4().hex}")
    secrets.add("git_url_password", f"pw-{uuid.uuid4().hex}")
    return secrets


def _one(secrets: Secrets, kind: str) -> str:
    return secrets.by_kind[kind][0]


@pytest.mark.slow
async def test_no_secret_in_the_log_buckets_read_model_files_or_mirrors(home: Path, tmp_path: Path) -> None:
    secrets = every_kind_of_secret()
    ports = Ports(nats=free_port(), pg=free_port(), api=free_port())
    env = cli_env(
        DEKSDENFLOW_HOME=str(home),
        DEKSDENFLOW_EMBEDDED_NATS_PORT=str(ports.nats),
        DEKSDENFLOW_EMBEDDED_PG_PORT=str(ports.pg),
        DEKSDENFLOW_API_PORT=str(ports.api),
        DEKSDENFLOW_PROJECTOR_PORT=str(free_port()),
        DEKSDENFLOW_CODEX_WORKER_PORT=str(free_port()),
        DEKSDENFLOW_GIT_CI_WORKER_PORT=str(free_port()),
        DEKSDENFLOW_API_TOKEN=_one(secrets, "admin_token"),
        DEKSDENFLOW_WEBHOOK_TOKEN=_one(secrets, "webhook_secret_global"),
        DEKSDENFLOW_IDEMPOTENCY_SECRET=_one(secrets, "idempotency_secret"),
        DEKSDENFLOW_GITHUB_TOKEN=_one(secrets, "github_token"),
        DEKSDENFLOW_GITLAB_TOKEN=_one(secrets, "gitlab_token"),
        OPENAI_API_KEY=_one(secrets, "openai_api_key"),
        ANTHROPIC_API_KEY=_one(secrets, "anthropic_api_key"),
        DEKSDENFLOW_LOG_LEVEL="DEBUG",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    remote = await asyncio.to_thread(_remote, tmp_path)
    run = Run(env, tmp_path, tmp_path / "run.log")
    try:
        await run.wait_healthy(ports.api)
        await _issue_secrets_and_fail(ports.api, secrets, remote)
        # The embedded servers' own credentials, made by the run: its services' NATS users and
        # PostgreSQL roles are secrets like any other.
        logins = Credentials.load(credentials_file(home))
        for user, password in logins.nats.items():
            secrets.add(f"nats_password_{user}", password)
        for role, password in logins.postgres.items():
            secrets.add(f"postgres_password_{role}", password)
        nc = await nats.connect(
            f"nats://127.0.0.1:{ports.nats}", user="supervisor", password=logins.nats["supervisor"]
        )
        try:
            scanner = Scanner(secrets)
            in_nats = await scanner.all_streams(nc)
        finally:
            await nc.close()
        pg_password = logins.postgres["postgres"]
        in_db = await scanner.database(
            f"postgresql://postgres:{pg_password}@127.0.0.1:{ports.pg}/deksdenflow"
        )
    finally:
        assert await run.interrupt() == 0, run.output()
    # credentials.json is where the run keeps the servers' passwords (owner-only): the one place allowed.
    in_files = (
        scanner.files(home, exclude=[credentials_file(home)])
        + scanner.files(remote)
        + scanner.blob(run.output().encode(), "run output")
    )
    hits = in_nats + in_db + in_files
    assert hits == [], describe(hits)
    assert "onboarding" in run.output().lower()


async def _issue_secrets_and_fail(api_port: int, secrets: Secrets, remote: Path) -> None:
    admin = {"Authorization": f"Bearer {_one(secrets, 'admin_token')}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", headers=admin, timeout=30) as api:
        good = await api.post(
            "/projects",
            json={"name": "good", "git_url": f"file://{remote}"},
            headers={"Idempotency-Key": "good"},
        )
        assert good.status_code == 201, good.text
        project = good.json()["id"]
        secrets.add("project_token", good.json()["project_token"])
        issued = await api.post(
            f"/projects/{project}/tokens", json={"label": "ci"}, headers={"Idempotency-Key": "tok"}
        )
        assert issued.status_code == 201, issued.text
        secrets.add("project_token", issued.json()["project_token"])
        as_project = {"X-Project-Token": issued.json()["project_token"], "Idempotency-Key": "whs"}
        rotated = await api.post(f"/projects/{project}/webhook-secret", headers=as_project)
        assert rotated.status_code == 201, rotated.text
        secrets.add("webhook_secret_project", rotated.json()["webhook_secret"])
        for path, sent, key in (  # replays answer from the (sealed) store
            ("/projects", {"name": "good", "git_url": f"file://{remote}"}, {"Idempotency-Key": "good"}),
            (f"/projects/{project}/tokens", {"label": "ci"}, {"Idempotency-Key": "tok"}),
        ):
            replay = await api.post(path, json=sent, headers=key)
            assert replay.headers.get("Idempotent-Replayed") == "true", replay.text

        # Failures: a job that fails, refused credentials, webhooks that do not authenticate or parse.
        missing = await api.post("/projects", json={"name": "gone", "git_url": "file:///nonexistent/x.git"})
        assert missing.status_code == 201, missing.text
        secrets.add("project_token", missing.json()["project_token"])
        password = _one(secrets, "git_url_password")
        refused = await api.post("/projects", json={"name": "pw", "git_url": f"https://u:{password}@h/r.git"})
        assert refused.status_code == 422, refused.text
        delivery = b'{"action": "completed"}'
        wrong = hmac.new(b"not-the-secret", delivery, hashlib.sha256).hexdigest()
        for signed in (
            {"X-GitHub-Event": "workflow_run", "X-Hub-Signature-256": f"sha256={wrong}"},
            {"X-GitHub-Event": "ping", "X-Hub-Signature-256": f"sha256={wrong}", "X-Project-Token": "x" * 20},
        ):
            answer = await api.post("/webhooks/github", content=delivery, headers=signed)
            assert answer.status_code == 401, answer.text
        bad = await api.post(
            "/webhooks/gitlab",
            content=b"{not json",
            headers={"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": rotated.json()["webhook_secret"]},
        )
        assert bad.status_code in (400, 401, 422), bad.text

        async def onboarded() -> bool:
            states = []
            for pid in (project, missing.json()["id"]):
                got = await api.get(f"/projects/{pid}")
                states.append(got.json()["status"] if got.status_code == 200 else None)
            return states[0] not in (None, "registered", "onboarding") and states[1] == "onboarding_failed"

        await eventually(onboarded, within=90, what="one onboarding to end and the other to fail")
