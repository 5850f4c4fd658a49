"""Run limits: runs beyond them wait as ``queued``, in order, and are admitted as slots free — through the
API, the projector and the git worker's admission on real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.settings import RunLimits
from deksdenflow_git_ci_worker.admission import Admission, admit

from tests.api.conftest import System
from tests.api.helpers import as_worker, create_project
from tests.support import eventually
from tests.workers.flow import get


def test_admit_takes_the_oldest_first_and_skips_a_full_project_without_holding_back_others() -> None:
    queued = [("r1", "a"), ("r2", "a"), ("r3", "b"), ("r4", "c"), ("r5", "b")]
    chosen = admit(queued, Counter({"a": 1}), RunLimits(max_active_runs=4, max_active_runs_per_project=1))
    assert [a.run_id for a in chosen] == ["r3", "r4"]
    assert [(a.active_in_project, a.active_total) for a in chosen] == [(0, 1), (0, 2)]
    assert [a.run_id for a in admit(queued, Counter(), RunLimits(max_active_runs=2))] == ["r1", "r2"]
    assert admit(queued, Counter({"x": 2}), RunLimits(max_active_runs=2)) == []


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    return {"max_active_runs": 3, "max_active_runs_per_project": 2}


async def test_runs_beyond_the_limits_wait_in_order_and_are_admitted_as_slots_free(system: System) -> None:
    limits = RunLimits(max_active_runs=3, max_active_runs_per_project=2)
    admission = Admission(
        system.repo,
        system.store,
        system.db_url,
        limits,
        durable=f"admission_{uuid.uuid4().hex[:8]}",
        worker_id="admission-test",
    )
    admitting = asyncio.create_task(admission.run())
    try:
        async with system.admin() as admin:
            a = await create_project(admin, "a", run_policy={})
            b = await create_project(admin, "b", run_policy={})
            runs: list[dict[str, Any]] = []
            for project, n in ((a, 3), (b, 2)):
                for i in range(n):
                    created = await admin.post(
                        f"/projects/{project['id']}/protocols", json={"task_name": f"t{i}"}
                    )
                    runs.append(created.json())
            for run in runs:  # started in this order
                started = await admin.post(f"/protocols/{run['id']}/actions/start")
                assert started.status_code == 200, started.text
                assert started.json()["events"] == ["protocol_run.queued"]

            def statuses(body: dict[str, Any]) -> list[str]:
                order = {r["id"]: i for i, r in enumerate(runs)}
                return [r["status"] for r in sorted(body["data"], key=lambda r: order[r["id"]])]

            async def all_runs() -> dict[str, Any]:
                listed = [await get(admin, f"/projects/{p['id']}/protocols") for p in (a, b)]
                return {"data": [r for body in listed for r in body["data"]]}

            # a's first two (the project limit), then b's first (the total limit); the others wait
            await _until(
                all_runs,
                lambda body: statuses(body) == ["planning", "planning", "queued", "planning", "queued"],
            )
            waiting = await get(admin, f"/protocols/{runs[2]['id']}")
            assert waiting["waiting_for"] == "queue"
            # a slot frees in project a: a's third is admitted (it was queued before b's second)
            await admin.post(f"/protocols/{runs[0]['id']}/actions/cancel")
            await _until(
                all_runs,
                lambda body: statuses(body) == ["cancelled", "planning", "planning", "planning", "queued"],
            )
            # planning fails for one of b: a slot frees and b's second goes
            await as_worker(system.repo, runs[3]["id"], cmd.RecordPlanningFailed(attempt=1, reason="bench"))
            await _until(
                all_runs,
                lambda body: statuses(body) == ["cancelled", "planning", "planning", "failed", "planning"],
            )
            admitted = (await get(admin, f"/protocols/{runs[4]['id']}/events"))["data"]
            assert [e["type"] for e in admitted][-2:] == [
                "protocol_run.admitted",
                "protocol_run.planning_requested",
            ]
            assert admission.admitted == 5
    finally:
        admission.stop()
        await asyncio.wait_for(admitting, 15)


async def _until(read: Any, predicate: Any) -> None:
    seen: dict[str, Any] = {}

    async def check() -> bool:
        seen["body"] = await read()
        return bool(predicate(seen["body"]))

    try:
        await eventually(check, within=30, what="the admission")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; last: {[(r['task_name'], r['status']) for r in seen['body']['data']]}"
        ) from None
