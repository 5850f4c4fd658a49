"""A real API process that fails a request logs no secret: not the admin token, not a header, not a setting.

The 500 is a real one: the read model's ``projects`` table is not the one the API reads (a database of
another version), so listing projects fails inside the route, with every credential of the request in
the stack's local variables.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # no py.typed in asyncpg
import httpx
import pytest
from deksdenflow_core.readmodel import SCHEMA
from deksdenflow_runtime.embedded import free_port

from tests.runtime.api_support import api_env, start_api
from tests.secret_scan import Scanner, Secrets, describe
from tests.support import eventually


def _secrets() -> Secrets:
    secrets = Secrets()
    secrets.add("admin_token", f"admin-{uuid.uuid4().hex}")
    secrets.add("webhook_secret_global", f"webhook-{uuid.uuid4().hex}")
    secrets.add("project_token", f"dfp_{uuid.uuid4().hex}")
    secrets.add("gitlab_token_header", f"glwh-{uuid.uuid4().hex}")
    secrets.add("github_signature", f"sha256={uuid.uuid4().hex}{uuid.uuid4().hex}")
    secrets.add("gitlab_signature", f"v1,{uuid.uuid4().hex}")
    secrets.add("idempotency_secret", f"seal-{uuid.uuid4().hex}")
    secrets.add("model_api_key", f"sk-{uuid.uuid4().hex}")
    return secrets


async def _broken_read_model(db_url: str) -> None:
    """A projects table without the columns the API reads: every GET /projects fails with a 500."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            f'CREATE SCHEMA "{SCHEMA}"; '
            f'CREATE TABLE "{SCHEMA}".projects (id text, created_at timestamptz DEFAULT now()); '
            f"INSERT INTO \"{SCHEMA}\".projects (id) VALUES ('p1')"
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("mode", ["console", "json"])
async def test_a_failed_request_logs_no_secret(
    nats_url: str, fresh_db_url: str, tmp_path: Path, mode: str
) -> None:
    secrets = _secrets()
    values = dict(secrets.items())
    await _broken_read_model(fresh_db_url)
    port = free_port()
    env = api_env(
        nats_url,
        fresh_db_url,
        port,
        DEKSDENFLOW_API_TOKEN=values["admin_token"],
        DEKSDENFLOW_WEBHOOK_TOKEN=values["webhook_secret_global"],
        DEKSDENFLOW_IDEMPOTENCY_SECRET=values["idempotency_secret"],
        OPENAI_API_KEY=values["model_api_key"],
        DEKSDENFLOW_LOG_LEVEL="DEBUG",
        DEKSDENFLOW_LOG_JSON="1" if mode == "json" else "0",
    )
    log = tmp_path / "api.log"
    proc = start_api(env, log)
    headers = {
        "Authorization": f"Bearer {values['admin_token']}",
        "X-Project-Token": values["project_token"],
        "X-Gitlab-Token": values["gitlab_token_header"],
        "X-Hub-Signature-256": values["github_signature"],
        "webhook-signature": values["gitlab_signature"],
    }
    try:
        answers: list[int] = []

        async def failed() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    response = await client.get(f"http://127.0.0.1:{port}/projects", headers=headers)
            except httpx.HTTPError:
                return False
            answers.append(response.status_code)
            return response.status_code == 500

        await eventually(failed, within=30, what=f"the API to fail the request (answers: {answers})")
        await eventually(
            lambda: "Traceback" in log.read_text(errors="replace"), within=10, what="the traceback"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    # The failure is there (the table has no column "name"), only the secrets are not.
    assert "UndefinedColumnError" in text, text
    hits = Scanner(secrets).blob(text.encode(), f"the API's {mode} log")
    assert hits == [], describe(hits) + "\n" + text
