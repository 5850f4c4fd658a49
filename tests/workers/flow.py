"""Driving a protocol over HTTP and waiting for what the workers do."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import eventually
from tests.workers.conftest import FORGE_REPO, Orchestra


async def get(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def wait_for(
    client: httpx.AsyncClient, path: str, predicate: Any, *, within: float = 30, what: str = ""
) -> Any:
    """GET ``path`` until ``predicate(body)`` holds; the body."""
    seen: dict[str, Any] = {}

    async def check() -> bool:
        response = await client.get(path)
        if response.status_code == 404:  # not in the read model yet
            return False
        assert response.status_code == 200, response.text
        seen["body"] = response.json()
        return bool(predicate(seen["body"]))

    try:
        await eventually(check, within=within, what=what or path)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {seen.get('body')}") from None
    return seen["body"]


async def action(client: httpx.AsyncClient, path: str, expect: int = 200) -> Any:
    response = await client.post(path)
    assert response.status_code == expect, response.text
    return response.json()


async def register(client: httpx.AsyncClient, o: Orchestra, **extra: Any) -> dict[str, Any]:
    """A project on the orchestra's origin and fake GitHub, onboarded and ready."""
    body = {
        "name": "demo",
        "git_url": o.origin.url,
        "ci_provider": "github",
        "forge_repo": FORGE_REPO,
        "default_engines": {
            "planning": "scripted",
            "decompose": "scripted",
            "exec": "scripted",
            "qa": "scripted",
        },
        # The flows here drive each step by hand; autopilot tests pass their own policy.
        "run_policy": {"mode": "manual"},
        **extra,
    }
    response = await client.post("/projects", json=body)
    assert response.status_code == 201, response.text
    project: dict[str, Any] = response.json()
    ready: dict[str, Any] = await wait_for(
        client, f"/projects/{project['id']}", lambda p: p["status"] == "ready", what="onboarding"
    )
    return ready


async def planned_protocol(
    client: httpx.AsyncClient, project_id: str, task: str = "Add greeting"
) -> dict[str, Any]:
    response = await client.post(
        f"/projects/{project_id}/protocols", json={"task_name": task, "description": "d"}
    )
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    await action(client, f"/protocols/{run['id']}/actions/start")
    planned: dict[str, Any] = await wait_for(
        client, f"/protocols/{run['id']}", lambda r: r["status"] in ("planned", "failed"), what="planning"
    )
    return planned
