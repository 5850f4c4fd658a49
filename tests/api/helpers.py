"""Helpers for API tests: create things over HTTP, play a worker through the real event store."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from deksdenflow_core.aggregates import PROTOCOL_RUN, Repository
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.eventstore import AppendMeta

from tests.domain.builders import plan_steps


async def create_project(
    client: httpx.AsyncClient, name: str = "demo", run_policy: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A project whose runs a test drives by hand (manual), unless ``run_policy`` says otherwise."""
    response = await client.post(
        "/projects",
        json={
            "name": name,
            "git_url": f"file:///repos/{name}.git",
            "onboard": False,
            "run_policy": run_policy or {"mode": "manual"},
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    body["_seq"] = int(response.headers["X-Event-Sequence"])
    return body


async def create_protocol(
    client: httpx.AsyncClient, project_id: str, task: str = "Add login page"
) -> dict[str, Any]:
    response = await client.post(
        f"/projects/{project_id}/protocols", json={"task_name": task, "description": "d"}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def as_worker(repo: Repository, run_id: str, command: Any) -> int:
    """Record a worker result through the real repository (what the codex worker will do)."""
    meta = AppendMeta(
        source="tests/worker", actor="worker:test", correlation_id=run_id, causation_id=str(uuid.uuid4())
    )
    outcome = await repo.execute(PROTOCOL_RUN, run_id, command, meta)
    return outcome.appended.last_seq


async def planned(
    client: httpx.AsyncClient, repo: Repository, project_id: str, steps: int = 3
) -> tuple[str, list[str], int]:
    """A protocol started over HTTP and planned by a (test) worker; returns run id, step ids, sequence."""
    run = await create_protocol(client, project_id)
    started = await client.post(f"/protocols/{run['id']}/actions/start")
    assert started.status_code == 200, started.text
    seq = await as_worker(repo, run["id"], cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(steps)))
    listed = await client.get(f"/protocols/{run['id']}/steps", headers={"X-Min-Event-Sequence": str(seq)})
    assert listed.status_code == 200, listed.text
    return run["id"], [s["id"] for s in listed.json()["data"]], seq
