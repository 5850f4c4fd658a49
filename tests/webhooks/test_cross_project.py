"""A project's webhook secret never moves another project's run (real API, NATS, PostgreSQL).

Project A holds a per-project secret (any A token can fetch it, every CI job of A has it). A delivery signed
with it that points at project B's run — by B's protocol branch while naming A's own repository, or by B's
``protocol_run_id`` — is refused with 401 and records nothing; the global secret still reaches B's run, so
the refusal is about the signer, not the payload.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import WEBHOOK_TOKEN, System
from tests.webhooks.payloads import load_json
from tests.webhooks.test_endpoints import _sign

A_REPO = "acme/demo"
B_BRANCH = "0001-pay-bills"


async def _projects(system: System, host: str) -> tuple[str, str, dict[str, Any]]:
    """Project A (with its own webhook secret) and project B's run, visible in the read model."""
    async with system.admin() as api:
        a = await api.post(
            "/projects", json={"name": "a", "git_url": f"https://{host}/{A_REPO}.git", "onboard": False}
        )
        b = await api.post(
            "/projects", json={"name": "b", "git_url": f"https://{host}/other/b.git", "onboard": False}
        )
        assert a.status_code == b.status_code == 201, (a.text, b.text)
        secret = await api.post(f"/projects/{a.json()['id']}/webhook-secret")
        assert secret.status_code == 201, secret.text
        run = await api.post(
            f"/projects/{b.json()['id']}/protocols", json={"task_name": "Pay bills", "description": "d"}
        )
        assert run.status_code == 201, run.text
        body: dict[str, Any] = run.json()
        assert body["protocol_name"] == B_BRANCH
        seen = await api.get(
            f"/protocols/{body['id']}", headers={"X-Min-Event-Sequence": run.headers["X-Event-Sequence"]}
        )
        assert seen.status_code == 200, seen.text
        return a.json()["id"], secret.json()["webhook_secret"], body


def _payload(fixture: str, run_id: str | None) -> bytes:
    """A delivery naming A's repository and B's branch (and, if given, B's run id explicitly)."""
    data = load_json(fixture, branch=B_BRANCH if run_id is None else "0001-somewhere-else", repo=A_REPO)
    if run_id is not None:
        data["protocol_run_id"] = run_id
    return json.dumps(data).encode()


async def _post_github(system: System, body: bytes, secret: str) -> httpx.Response:
    async with system.client() as client:
        return await client.post(
            "/webhooks/github",
            content=body,
            headers={
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": _sign(body, secret),
                "Content-Type": "application/json",
            },
        )


async def _post_gitlab(system: System, body: bytes, secret: str) -> httpx.Response:
    async with system.client() as client:
        return await client.post(
            "/webhooks/gitlab",
            content=body,
            headers={
                "X-Gitlab-Event": "Merge Request Hook",
                "X-Gitlab-Token": secret,
                "Idempotency-Key": str(uuid.uuid4()),
                "Content-Type": "application/json",
            },
        )


async def _webhooks_of(system: System, project_id: str) -> list[Any]:
    async with system.admin() as api:
        listed = await api.get(f"/events?project_id={project_id}&type=webhook.received&limit=100")
        assert listed.status_code == 200, listed.text
        data: list[Any] = listed.json()["data"]
        return data


@pytest.mark.parametrize("explicit_run_id", [False, True], ids=["by-branch", "by-protocol-run-id"])
@pytest.mark.parametrize("provider", ["github", "gitlab"])
async def test_a_project_secret_cannot_move_another_projects_run(
    system: System, provider: str, explicit_run_id: bool
) -> None:
    host = "github.com" if provider == "github" else "gitlab.com"
    a_id, a_secret, b_run = await _projects(system, host)
    fixture = "github_pull_request_closed_merged" if provider == "github" else "gitlab_merge_request_merged"
    body = _payload(fixture, b_run["id"] if explicit_run_id else None)
    post = _post_github if provider == "github" else _post_gitlab
    before = await system.store.load("protocol_run", b_run["id"])

    refused = await post(system, body, a_secret)

    assert refused.status_code == 401, refused.text
    assert refused.json()["code"] == "unauthorized"
    after = await system.store.load("protocol_run", b_run["id"])
    assert [e.event for e in after.events] == [e.event for e in before.events]
    assert await _webhooks_of(system, b_run["project_id"]) == []
    assert await _webhooks_of(system, a_id) == []
    # The same delivery signed with the global secret does reach B's run: what was refused is the signer.
    accepted = await post(system, body, WEBHOOK_TOKEN)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["protocol_run_id"] == b_run["id"]
