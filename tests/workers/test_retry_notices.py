"""A worker's job that fails with an error that may pass is retried, and says so on its project: what
failed, which try, and when the next comes — read back through the API, from the real git worker."""

from __future__ import annotations

import socket
from datetime import datetime

from tests.workers.conftest import Orchestra
from tests.workers.flow import wait_for


def closed_port() -> int:
    """A local port nobody listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_an_onboarding_that_cannot_reach_its_remote_says_it_retries_and_when(
    orchestra: Orchestra,
) -> None:
    git_url = f"http://127.0.0.1:{closed_port()}/acme/demo.git"
    async with orchestra.system.admin() as client:
        created = await client.post(
            "/projects", json={"name": "unreachable", "git_url": git_url, "run_policy": {"mode": "manual"}}
        )
        assert created.status_code == 201, created.text
        project = await wait_for(
            client,
            f"/projects/{created.json()['id']}",
            lambda p: p["retry"] is not None,
            what="the onboarding's retry notice",
        )
    assert project["status"] == "onboarding"
    retry = project["retry"]
    assert retry["job"] == "project.onboarding_requested"
    assert retry["delivery"] >= 1
    assert retry["max_deliveries"] == 6
    assert "refused" in retry["error"].lower() or "connect" in retry["error"].lower()
    assert datetime.fromisoformat(retry["next_try_at"]) > datetime.fromisoformat(retry["failed_at"])
    assert project["last_error"] == retry["error"]
