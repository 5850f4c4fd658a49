"""Secrets the API hands out are never kept, and credentials never get into the log by a git URL."""

from __future__ import annotations

import pytest

from tests.api.conftest import ADMIN_TOKEN, WEBHOOK_TOKEN, System
from tests.secret_scan import Scanner, Secrets, describe


async def test_answers_replayed_for_an_idempotency_key_keep_no_secret_in_the_bucket(system: System) -> None:
    secrets = Secrets()
    secrets.add("admin_token", ADMIN_TOKEN)
    secrets.add("webhook_secret_global", WEBHOOK_TOKEN)
    async with system.admin() as admin:
        requests = [("/projects", {"name": "sealed", "git_url": "file:///sealed.git", "onboard": False})]
        first = await admin.post(requests[0][0], json=requests[0][1], headers={"Idempotency-Key": "p-1"})
        assert first.status_code == 201, first.text
        project_id = first.json()["id"]
        secrets.add("project_token", first.json()["project_token"])
        requests += [
            (f"/projects/{project_id}/tokens", {"label": "ci"}),
            (f"/projects/{project_id}/webhook-secret", {}),
        ]
        answers = [first]
        for path, body in requests[1:]:
            answer = await admin.post(path, json=body, headers={"Idempotency-Key": "p-1"})
            assert answer.status_code == 201, answer.text
            answers.append(answer)
        secrets.add("project_token", answers[1].json()["project_token"])
        secrets.add("webhook_secret_project", answers[2].json()["webhook_secret"])
        last_seq = await system.store.stream_last_seq()
        for (path, body), answer in zip(requests, answers, strict=True):
            replay = await admin.post(path, json=body, headers={"Idempotency-Key": "p-1"})
            assert replay.headers["Idempotent-Replayed"] == "true"
            assert (replay.status_code, replay.content) == (answer.status_code, answer.content)
            assert replay.headers.get("Location") == answer.headers.get("Location")
        assert await system.store.stream_last_seq() == last_seq, "a replay appended events"
    hits = await Scanner(secrets).stream(system.store_nc, f"KV_{system.store.stream}_IDEMPOTENCY")
    assert hits == [], describe(hits)


@pytest.mark.parametrize(
    "git_url",
    [
        "https://user:hunter2secret@github.com/acme/app.git",
        "https://ghp_0123456789abcdefSECRET@github.com/acme/app.git",
        "https://oauth2:glpat-SECRET0123456789@gitlab.com/acme/app.git",
        "http://user:hunter2secret@example.com/app.git",
        "ssh://git:hunter2secret@example.com/acme/app.git",
        "git:hunter2secret@example.com:acme/app.git",
        "https://github.com/acme/app.git?private_token=SECRET0123456789",
    ],
)
async def test_a_git_url_with_credentials_is_refused_and_says_where_credentials_go(
    system: System, git_url: str
) -> None:
    async with system.admin() as admin:
        last_seq = await system.store.stream_last_seq()
        refused = await admin.post("/projects", json={"name": "creds", "git_url": git_url, "onboard": False})
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "invalid_request"
        message = refused.json()["errors"][0]["msg"]
        assert "SSH" in message, message
        assert "DEKSDENFLOW_GITHUB_TOKEN" in message, message
        assert "SECRET" not in refused.text
        assert "hunter2" not in refused.text
        assert await system.store.stream_last_seq() == last_seq


@pytest.mark.parametrize(
    "git_url",
    [
        "ssh://git@example.com/acme/app.git",
        "git@github.com:acme/app.git",
        "https://github.com/acme/app.git",
        "file:///srv/repos/app.git",
        "/srv/repos/app.git",
    ],
)
async def test_a_git_url_without_credentials_is_accepted(system: System, git_url: str) -> None:
    async with system.admin() as admin:
        created = await admin.post("/projects", json={"name": "ok", "git_url": git_url, "onboard": False})
        assert created.status_code == 201, created.text
        assert created.json()["git_url"] == git_url
