"""Run policies over HTTP: set at registration, replaced with PUT, overridden per protocol, shown in reads;
plan approval and rejection as actions. API + projector + NATS + PostgreSQL (no workers: a test records
the planner's result through the real repository)."""

from __future__ import annotations

from typing import Any

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd

from tests.api.conftest import System
from tests.api.helpers import as_worker, create_project
from tests.domain.builders import plan_steps

DEFAULTS: dict[str, Any] = {
    "mode": "autopilot",
    "plan_approval": "auto",
    "qa_after_execution": True,
    "pr": {"open": "after_first_push", "ready_when_done": True, "reviewers": []},
    "merge": {"mode": "never", "method": "merge", "required_checks": [], "required_approvals": 0},
    "review_fix_attempts": 2,
    "max_parallel_steps": 1,
}


async def _register(admin: Any, **extra: Any) -> dict[str, Any]:
    body = {"name": "p", "git_url": "file:///repos/p.git", "onboard": False, **extra}
    response = await admin.post("/projects", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_new_project_gets_autopilot_to_a_ready_pr_and_no_merge(system: System) -> None:
    async with system.admin() as admin:
        project = await _register(admin)
        assert project["run_policy"] == DEFAULTS
        read = await admin.get(
            f"/projects/{project['id']}", headers={"X-Min-Event-Sequence": str(project["event_sequence"])}
        )
        assert read.json()["run_policy"] == DEFAULTS


async def test_the_project_policy_is_replaced_with_put_and_protocols_take_it_with_their_overrides(
    system: System,
) -> None:
    async with system.admin() as admin:
        project = await _register(admin, run_policy={"merge": {"mode": "when_green", "method": "squash"}})
        assert project["run_policy"]["merge"]["mode"] == "when_green"
        assert project["run_policy"]["mode"] == "autopilot"
        put = await admin.put(
            f"/projects/{project['id']}/run-policy",
            json={"plan_approval": "required", "pr": {"reviewers": ["octocat", "acme/reviewers"]}},
        )
        assert put.status_code == 200, put.text
        policy = put.json()["run_policy"]
        # a whole policy: what it leaves unset takes the defaults again (merge back to never)
        assert policy == {
            **DEFAULTS,
            "plan_approval": "required",
            "pr": {**DEFAULTS["pr"], "reviewers": ["octocat", "acme/reviewers"]},
        }
        created = await admin.post(
            f"/projects/{project['id']}/protocols",
            json={
                "task_name": "t",
                "run_policy": {
                    "merge": {"mode": "when_green", "required_checks": ["test"]},
                    "review_fix_attempts": 1,
                },
            },
        )
        assert created.status_code == 201, created.text
        run = created.json()
        assert run["run_policy"]["review_fix_attempts"] == 1
        assert policy["review_fix_attempts"] == 2, "the project keeps the default"
        assert run["run_policy"]["plan_approval"] == "required", "taken from the project"
        assert run["run_policy"]["pr"]["reviewers"] == ["octocat", "acme/reviewers"]
        assert run["run_policy"]["merge"] == {
            "mode": "when_green",
            "method": "merge",
            "required_checks": ["test"],
            "required_approvals": 0,
        }
        # the project's later change does not touch the run
        await admin.put(f"/projects/{project['id']}/run-policy", json={"mode": "manual"})
        read = await admin.get(
            f"/protocols/{run['id']}", headers={"X-Min-Event-Sequence": str(run["event_sequence"])}
        )
        assert read.json()["run_policy"] == run["run_policy"]
        assert read.json()["waiting_for"] is None


async def test_policies_that_cannot_be_followed_are_refused_with_422(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin)
        bad_bodies = [
            {"mode": "turbo"},
            {"pr": {"reviewers": ["has space"]}},
            {"merge": {"required_approvals": 11}},
            {"merge": {"required_checks": [""]}},
            {"review_fix_attempts": 11},
            {"review_fix_attempts": -1},
            {"max_parallel_steps": 0},
            {"max_parallel_steps": 9},
            {"unknown": 1},
        ]
        for bad in bad_bodies:
            response = await admin.put(f"/projects/{project['id']}/run-policy", json=bad)
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["code"]
        refused = await admin.post(
            f"/projects/{project['id']}/protocols", json={"task_name": "t", "run_policy": {"mode": "x"}}
        )
        assert refused.status_code == 422


async def test_plan_approval_and_rejection_as_actions(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin, run_policy={"plan_approval": "required"})
        created = await admin.post(f"/projects/{project['id']}/protocols", json={"task_name": "t"})
        run_id = created.json()["id"]
        assert (await admin.post(f"/protocols/{run_id}/actions/start")).status_code == 200
        seq = await as_worker(
            system.repo, run_id, cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(3))
        )
        read = await admin.get(f"/protocols/{run_id}", headers={"X-Min-Event-Sequence": str(seq)})
        assert (read.json()["status"], read.json()["waiting_for"]) == ("planned", "plan_approval")
        refused = await admin.post(f"/protocols/{run_id}/actions/run_next_step")
        assert refused.status_code == 409
        assert "awaits approval" in refused.json()["message"]

        no_reason = await admin.post(f"/protocols/{run_id}/actions/reject_plan", json={"reason": ""})
        assert no_reason.status_code == 422
        rejected = await admin.post(
            f"/protocols/{run_id}/actions/reject_plan", json={"reason": "one step per migration"}
        )
        assert rejected.status_code == 200, rejected.text
        assert rejected.json()["events"] == ["protocol_run.plan_rejected", "protocol_run.planning_requested"]
        assert rejected.json()["status"] == "planning"

        seq = await as_worker(
            system.repo, run_id, cmd.RecordPlanningCompleted(attempt=2, steps=plan_steps(4))
        )
        read = await admin.get(f"/protocols/{run_id}", headers={"X-Min-Event-Sequence": str(seq)})
        assert read.json()["waiting_for"] == "plan_approval"
        approved = await admin.post(f"/protocols/{run_id}/actions/approve_plan")
        assert approved.status_code == 200, approved.text
        assert approved.json()["events"] == [
            "protocol_run.plan_approved",
            "protocol_run.step_execution_requested",
        ]
        assert approved.json()["status"] == "running"
        again = await admin.post(f"/protocols/{run_id}/actions/approve_plan")
        assert again.status_code == 409
        late = await admin.post(f"/protocols/{run_id}/actions/reject_plan", json={"reason": "too late"})
        assert late.status_code == 409
