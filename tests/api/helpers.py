"""Helpers for API tests: create things over HTTP, play a worker through the real event store."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import httpx
from deksdenflow_core.aggregates import PROTOCOL_RUN, Repository
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    LoopCause,
    QaPolicy,
    StepCheckpointPolicy,
    StepLoopPolicy,
    StepPlan,
    StepPolicies,
    StepTriggerPolicy,
    StepType,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run.audit import SPEC_RULES_VERSION
from deksdenflow_core.eventstore import AppendMeta
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from tests.domain.builders import plan_steps
from tests.support import eventually

if TYPE_CHECKING:
    from tests.api.conftest import System


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
    client: httpx.AsyncClient, repo: Repository, project_id: str, steps: int = 3, **plan: Any
) -> tuple[str, list[str], int]:
    """A protocol started over HTTP and planned by a (test) worker (``plan``: more fields of its
    ``RecordPlanningCompleted``); returns run id, step ids, sequence."""
    run = await create_protocol(client, project_id)
    started = await client.post(f"/protocols/{run['id']}/actions/start")
    assert started.status_code == 200, started.text
    completed = cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(steps), **plan)
    seq = await as_worker(repo, run["id"], completed)
    listed = await client.get(f"/protocols/{run['id']}/steps", headers={"X-Min-Event-Sequence": str(seq)})
    assert listed.status_code == 200, listed.text
    return run["id"], [s["id"] for s in listed.json()["data"]], seq


# A plan with a parallel group and every kind of step policy (the spec's pages and reads show them).
POLICY_PLAN = (
    StepPlan(index=0, name="00-setup.md", step_type=StepType.SETUP),
    StepPlan(
        index=1,
        name="01-models.md",
        step_type=StepType.WORK,
        labels=("US1",),
        parallel_group="phase-3-1",
        fallbacks=("claude-code:sonnet",),
        critical=True,
    ),
    StepPlan(
        index=2,
        name="02-views.md",
        step_type=StepType.WORK,
        labels=("US1", "US2"),
        parallel_group="phase-3-1",
        engine_id="codex",
        model="gpt-5",
    ),
    StepPlan(
        index=3,
        name="03-review.md",
        step_type=StepType.WORK,
        qa_policy=QaPolicy.LIGHT,
        policies=StepPolicies(
            loop=StepLoopPolicy(
                back_to="01-models.md",
                on=(LoopCause.EXECUTION_FAILED,),
                max_iterations=3,
                skip=("02-views.md",),
            ),
            trigger=StepTriggerPolicy(agent="qa-agent", prompt="Check the albums"),
            checkpoint=StepCheckpointPolicy(reason="Look at the albums page"),
        ),
    ),
)


# A plan today's spec rules refuse (step 0 is not the setup step), accepted under older ones.
OLD_PLAN = (
    StepPlan(index=0, name="00-build.md", step_type=StepType.WORK, labels=["US1"]),
    StepPlan(index=1, name="01-test.md", step_type=StepType.WORK),
)
FINDING = "step 0 must be the setup step"


async def planned_under_older_rules(
    system: System, client: httpx.AsyncClient, project_id: str, task: str
) -> tuple[str, int]:
    """A run started over HTTP whose plan (``OLD_PLAN``) was accepted under older spec rules: its
    planning_completed appended as the log holds it (today's rules would refuse it); run id, sequence."""
    run = await create_protocol(client, project_id, task)
    assert (await client.post(f"/protocols/{run['id']}/actions/start")).status_code == 200
    loaded = await system.store.load("protocol_run", run["id"])
    steps = tuple(s.model_copy(update={"step_run_id": f"{run['id']}-{s.index}"}) for s in OLD_PLAN)
    appended = await system.store.append(
        project_id=project_id,
        aggregate_type="protocol_run",
        aggregate_id=run["id"],
        events=[ev.PlanningCompleted(attempt=1, steps=steps, spec_hash="0123456789ab")],
        expected=loaded.position,
        meta=AppendMeta(
            source="tests", actor="worker:old", correlation_id=run["id"], causation_id=uuid.uuid4().hex
        ),
    )
    return run["id"], appended.last_seq


async def spec_audit_marker(system: System) -> KeyValue:
    """Where the deployment keeps the spec rules version of its last audit."""
    return await system.store_nc.jetstream().key_value(f"{system.event_store.stream_name}_SPEC_AUDIT")


async def audited_on_start(system: System) -> None:
    """Wait for the starting API's spec audit to be recorded (by today's rules)."""

    async def recorded() -> bool:
        try:
            entry = await (await spec_audit_marker(system)).get("last")
        except (BucketNotFoundError, KeyNotFoundError):
            return False
        return bool(json.loads(entry.value or b"{}").get("rules_version") == SPEC_RULES_VERSION)

    await eventually(recorded, what="the spec audit of the starting API")
