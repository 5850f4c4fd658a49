"""``POST /webhooks/github|gitlab`` against the running API (real NATS, PostgreSQL, projector).

Authentication by the provider's mechanism only, durable deduplication, mapping to the run by branch or
explicit id, unknown runs recorded as ignored with 202, the body limit, and per-project secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
from deksdenflow_core.readmodel import WRITER_LOCK_KEY

from tests.api.conftest import ADMIN_TOKEN, WEBHOOK_TOKEN, System
from tests.webhooks.payloads import load


async def _run(system: System, git_url: str = "https://github.com/acme/demo.git") -> dict[str, Any]:
    """A project on acme/demo and a protocol in it (named 0001-add-login), visible in the read model."""
    async with system.admin() as api:
        project = await api.post("/projects", json={"name": "demo", "git_url": git_url, "onboard": False})
        assert project.status_code == 201, project.text
        run = await api.post(
            f"/projects/{project.json()['id']}/protocols", json={"task_name": "Add login", "description": "d"}
        )
        assert run.status_code == 201, run.text
        body: dict[str, Any] = run.json()
        assert body["protocol_name"] == "0001-add-login"
        seen = await api.get(
            f"/protocols/{body['id']}", headers={"X-Min-Event-Sequence": run.headers["X-Event-Sequence"]}
        )
        assert seen.status_code == 200, seen.text
        return body


def _sign(body: bytes, secret: str = WEBHOOK_TOKEN) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def _github(
    system: System,
    event: str,
    body: bytes,
    *,
    secret: str = WEBHOOK_TOKEN,
    delivery: str | None = None,
    **headers: str,
) -> httpx.Response:
    async with system.client() as client:
        return await client.post(
            "/webhooks/github",
            content=body,
            headers={
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
                "X-Hub-Signature-256": _sign(body, secret),
                "Content-Type": "application/json",
                **headers,
            },
        )


async def _webhook_events(system: System, webhook_id: str) -> list[Any]:
    loaded = await system.store.load("webhook", webhook_id)
    return [e.event for e in loaded.events]


async def test_a_signed_delivery_is_recorded_for_the_run_of_its_branch(system: System) -> None:
    run = await _run(system)
    body = load("github_workflow_run_completed_failure")
    response = await _github(system, "workflow_run", body, delivery="d-1")
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "accepted"
    assert answer["protocol_run_id"] == run["id"]
    (received,) = await _webhook_events(system, answer["webhook_id"])
    assert received.protocol_run_id == run["id"]
    assert received.project_id == run["project_id"]
    assert (received.event, received.kind, received.raw_status) == ("workflow_run", "ci", "failure")
    assert received.body_sha256 == hashlib.sha256(body).hexdigest()
    assert received.authenticated_by == "global"

    # The same delivery again — GitHub's "redeliver" — is recorded once, however late.
    again = await _github(system, "workflow_run", body, delivery="d-1")
    assert again.status_code == 202
    assert again.json()["status"] == "duplicate"
    assert len(await _webhook_events(system, answer["webhook_id"])) == 1


async def test_signatures_are_checked_and_the_bearer_token_is_not_a_credential(system: System) -> None:
    await _run(system)
    body = load("github_check_run_completed_failure")
    wrong = await _github(system, "check_run", body, secret="not-the-secret")
    assert wrong.status_code == 401
    async with system.client() as client:
        tampered = await client.post(
            "/webhooks/github",
            content=body + b" ",
            headers={"X-GitHub-Event": "check_run", "X-Hub-Signature-256": _sign(body)},
        )
        assert tampered.status_code == 401
        bearer_only = await client.post(
            "/webhooks/github",
            content=body,
            headers={"X-GitHub-Event": "check_run", "Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert bearer_only.status_code == 401
        assert bearer_only.json()["code"] == "unauthorized"
        # A malformed payload is told apart only once the sender is known.
        garbage = b"{not json"
        unsigned_garbage = await client.post(
            "/webhooks/github", content=garbage, headers={"X-GitHub-Event": "check_run"}
        )
        assert unsigned_garbage.status_code == 401
    signed_garbage = await _github(system, "check_run", garbage)
    assert signed_garbage.status_code == 422


async def test_an_unknown_run_is_accepted_as_ignored_not_an_error(system: System) -> None:
    await _run(system)
    response = await _github(
        system, "workflow_run", load("github_workflow_run_completed_success", branch="9999-nothing")
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "ignored"
    assert "9999-nothing" in answer["reason"]
    (received,) = await _webhook_events(system, answer["webhook_id"])
    assert received.ignored_reason == answer["reason"]
    explicit = load_with_run_id("github_status_success", "no-such-run")
    response = await _github(system, "status", explicit)
    assert response.json()["status"] == "ignored"
    assert "no-such-run" in response.json()["reason"]
    ping = await _github(system, "ping", load("github_ping"))
    assert ping.status_code == 202
    assert ping.json()["status"] == "ignored"


def load_with_run_id(name: str, run_id: str) -> bytes:
    """A fixture with the explicit ``protocol_run_id`` our CI callback sends."""
    data = json.loads(load(name))
    data["protocol_run_id"] = run_id
    return json.dumps(data).encode()


async def test_explicit_run_id_wins_over_the_branch(system: System) -> None:
    run = await _run(system)
    body = load_with_run_id("github_status_success", run["id"])
    body = body.replace(b"0001-add-login", b"some-other-branch")
    response = await _github(system, "status", body)
    assert response.json()["protocol_run_id"] == run["id"]


async def test_bodies_over_the_limit_are_refused(system: System) -> None:
    big = b'{"zen": "' + b"x" * (70 * 1024) + b'"}'
    response = await _github(system, "ping", big)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_gitlab_token_and_its_own_idempotency_key(system: System) -> None:
    run = await _run(system, git_url="https://gitlab.com/acme/demo.git")
    body = load("gitlab_pipeline_failed")
    async with system.client() as client:

        async def post(token: str, key: str) -> httpx.Response:
            return await client.post(
                "/webhooks/gitlab",
                content=body,
                headers={"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": token, "Idempotency-Key": key},
            )

        assert (await post("wrong", "k1")).status_code == 401
        first = await post(WEBHOOK_TOKEN, "k1")
        assert first.status_code == 202, first.text
        assert first.json()["status"] == "accepted"
        assert first.json()["protocol_run_id"] == run["id"]
        assert (await post(WEBHOOK_TOKEN, "k1")).json()["status"] == "duplicate"
        # Another delivery (another key) of the same body is another delivery.
        assert (await post(WEBHOOK_TOKEN, "k2")).json()["status"] == "accepted"


async def test_a_project_secret_signs_for_its_project_only_and_rotation_revokes_it(system: System) -> None:
    mine = await _run(system)
    other = await _run(system, git_url="https://github.com/other/repo.git")
    async with system.admin() as api:
        issued = await api.post(f"/projects/{mine['project_id']}/webhook-secret")
        assert issued.status_code == 201, issued.text
        secret = issued.json()["webhook_secret"]
        assert secret.startswith("dfw_")
        assert secret != WEBHOOK_TOKEN
    # The branch 0001-add-login exists in both projects: the repository tells them apart.
    body = load("github_workflow_run_completed_success")
    ok = await _github(system, "workflow_run", body, secret=secret)
    assert ok.status_code == 202, ok.text
    assert ok.json()["protocol_run_id"] == mine["id"]
    (received,) = await _webhook_events(system, ok.json()["webhook_id"])
    assert received.authenticated_by == "project"
    # It cannot sign for the other project's run.
    foreign = await _github(
        system, "workflow_run", load_with_run_id("github_status_success", other["id"]), secret=secret
    )
    assert foreign.status_code == 401
    async with system.admin() as api:
        rotated = await api.post(f"/projects/{mine['project_id']}/webhook-secret")
        assert rotated.json()["generation"] == 2
    stale = await _github(system, "workflow_run", body, secret=secret)
    assert stale.status_code == 401
    fresh = await _github(system, "workflow_run", body, secret=rotated.json()["webhook_secret"])
    assert fresh.status_code == 202


async def test_a_form_encoded_delivery_githubs_default_is_accepted_like_json(system: System) -> None:
    run = await _run(system)
    payload = load("github_workflow_run_completed_failure")
    form = urlencode({"payload": payload.decode()}).encode()
    # The signature covers the raw form body, as GitHub signs it.
    response = await _github(
        system, "workflow_run", form, **{"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["status"], answer["protocol_run_id"]) == ("accepted", run["id"])
    (received,) = await _webhook_events(system, answer["webhook_id"])
    assert (received.event, received.raw_status, received.head_sha) == ("workflow_run", "failure", "1" * 40)
    assert received.body_sha256 == hashlib.sha256(form).hexdigest()
    # Signed over the JSON inside instead of the body as sent: refused.
    forged = await _github(
        system,
        "workflow_run",
        form,
        **{"Content-Type": "application/x-www-form-urlencoded", "X-Hub-Signature-256": _sign(payload)},
    )
    assert forged.status_code == 401
    # A signed form without its payload field is told apart as bad input.
    empty = await _github(
        system, "workflow_run", b"other=1", **{"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert empty.status_code == 422
    assert empty.json()["code"] == "invalid_webhook"


async def test_a_run_named_by_id_is_matched_while_the_read_model_is_behind(system: System) -> None:
    """The run a delivery names by id is found in the log: a read model that lags (here: its writer is
    held) does not turn the delivery into an 'ignored' one, which its redeliveries would then repeat."""
    async with system.admin() as api:
        project = await api.post(
            "/projects", json={"name": "lag", "git_url": "https://github.com/acme/lag.git"}
        )
        assert project.status_code == 201, project.text
        seen = await api.get(
            f"/projects/{project.json()['id']}",
            headers={"X-Min-Event-Sequence": project.headers["X-Event-Sequence"]},
        )
        assert seen.status_code == 200, seen.text
        holder = await asyncpg.connect(system.db_url)
        held = holder.transaction()
        await held.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK_KEY)
        try:
            run = await api.post(f"/projects/{project.json()['id']}/protocols", json={"task_name": "Lagging"})
            assert run.status_code == 201, run.text
            response = await _github(
                system, "status", load_with_run_id("github_status_success", run.json()["id"])
            )
            assert response.status_code == 202, response.text
            assert response.json()["status"] == "accepted", response.text
            assert response.json()["protocol_run_id"] == run.json()["id"]
        finally:
            await held.rollback()
            await holder.close()


async def test_a_review_is_signed_recorded_with_the_reviewers_words_and_deduplicated(system: System) -> None:
    run = await _run(system)
    body = load("github_pull_request_review_changes_requested")
    assert (await _github(system, "pull_request_review", body, secret="not-the-secret")).status_code == 401
    response = await _github(system, "pull_request_review", body, delivery="review-1")
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["status"], answer["protocol_run_id"]) == ("accepted", run["id"])
    (received,) = await _webhook_events(system, answer["webhook_id"])
    assert (received.kind, received.pr_number) == ("review", 17)
    assert received.review is not None
    assert (received.review.review_id, received.review.reviewer) == ("2345678901", "ann-reviewer")
    assert received.review.state.name == "CHANGES_REQUESTED"
    assert "add a test for an empty password" in received.review.body

    again = await _github(system, "pull_request_review", body, delivery="review-1")
    assert again.json()["status"] == "duplicate"
    assert len(await _webhook_events(system, answer["webhook_id"])) == 1


async def test_a_gitlab_note_is_a_review_and_deksdenflows_own_reply_is_ignored(system: System) -> None:
    run = await _run(system, git_url="https://gitlab.com/acme/demo.git")
    note = load("gitlab_note_merge_request_diff")
    async with system.client() as client:

        async def post(body: bytes, token: str, key: str) -> httpx.Response:
            return await client.post(
                "/webhooks/gitlab",
                content=body,
                headers={"X-Gitlab-Event": "Note Hook", "X-Gitlab-Token": token, "Idempotency-Key": key},
            )

        assert (await post(note, "wrong", "n1")).status_code == 401
        first = await post(note, WEBHOOK_TOKEN, "n1")
        assert first.status_code == 202, first.text
        assert (first.json()["status"], first.json()["protocol_run_id"]) == ("accepted", run["id"])
        (received,) = await _webhook_events(system, first.json()["webhook_id"])
        assert received.review is not None
        assert [(c.path, c.line) for c in received.review.comments] == [("app/login.py", 2)]
        assert (await post(note, WEBHOOK_TOKEN, "n1")).json()["status"] == "duplicate"

        data = json.loads(note)
        data["object_attributes"]["note"] = "Renamed it.\n\n<!-- deksdenflow:review-reply review_id=7 -->"
        own = await post(json.dumps(data).encode(), WEBHOOK_TOKEN, "n2")
        assert own.status_code == 202, own.text
        assert own.json()["status"] == "ignored"
        assert "reply marker" in own.json()["reason"]
