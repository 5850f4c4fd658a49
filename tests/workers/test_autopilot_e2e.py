"""Autopilot end to end: real NATS, PostgreSQL and git, both workers, the scripted engine and the fake
GitHub. After ``POST .../protocols`` and ``start`` the client only reads."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.support import eventually
from tests.webhooks.payloads import load
from tests.workers.conftest import FORGE_REPO, Orchestra
from tests.workers.flow import get, register, wait_for
from tests.workers.scripts import five_step_script
from tests.workers.test_ci_loop import _github


class Writes:
    """Counts what a client asks to change (anything but GET)."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, request: httpx.Request) -> None:
        if request.method != "GET":
            self.count += 1


async def _create_and_start(api: httpx.AsyncClient, project_id: str, **body: Any) -> dict[str, Any]:
    created = await api.post(f"/projects/{project_id}/protocols", json={"task_name": "Five parts", **body})
    assert created.status_code == 201, created.text
    run: dict[str, Any] = created.json()
    started = await api.post(f"/protocols/{run['id']}/actions/start")
    assert started.status_code == 200, started.text
    return run


async def _types(api: httpx.AsyncClient, run_id: str) -> list[str]:
    events = (await get(api, f"/protocols/{run_id}/events?limit=500"))["data"]
    return [e["type"] for e in events]


async def test_five_steps_reach_a_ready_pr_with_no_client_call_after_start(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(five_step_script())
    # QA after each execution comes from the policy, not from the worker's setting
    o.start_codex_worker(o.worker_settings(auto_qa_after_exec=False))
    o.github.set_collaborators(FORGE_REPO, ["octocat"])
    async with o.system.admin() as api:
        project = await register(api, o, run_policy={"pr": {"reviewers": ["octocat"]}})
        assert project["run_policy"]["mode"] == "autopilot"
        writes = Writes()
        api.event_hooks["request"].append(writes)
        run = await _create_and_start(api, project["id"])
        ready = await wait_for(
            api,
            f"/protocols/{run['id']}",
            lambda r: r["waiting_for"] == "review",
            what="every step done, the PR waiting for its review",
        )
        assert ready["status"] == "running", "an autopilot run ends with its PR"
        steps = (await get(api, f"/protocols/{run['id']}/steps"))["data"]
        assert [s["status"] for s in steps] == ["completed"] * 5
        pr = await _eventually_ready(o)
        assert (pr.head, pr.draft) == (run["protocol_name"], False)
        assert writes.count == 2, "create and start, nothing else"

        marked = await wait_for(
            api,
            f"/events?protocol_run_id={run['id']}&type=protocol_run.pr_marked_ready",
            lambda b: len(b["data"]) == 1,
            what="the PR marked ready in the log",
        )
        assert marked["data"][0]["payload"]["reviewers_requested"] == ["octocat"]
        assert o.github.prs(FORGE_REPO)[0].requested_reviewers == ["octocat"]
        types = await _types(api, run["id"])
        assert types.count("protocol_run.step_execution_requested") == 5
        assert types.count("protocol_run.qa_requested") == 4  # the setup step skips QA
        assert types.count("protocol_run.pr_requested") == 1
        assert types.index("protocol_run.pr_requested") > types.index("protocol_run.step_execution_completed")
        assert types[-2:] == ["protocol_run.pr_ready_requested", "protocol_run.pr_marked_ready"]
        assert len(o.github.prs(FORGE_REPO)) == 1
        # a person merges it: the run completes
        head = ready["branch_head_sha"]
        await _github(
            o.system,
            "pull_request",
            load("github_pull_request_closed_merged", branch=run["protocol_name"], sha=head),
        )
        done = await wait_for(api, f"/protocols/{run['id']}", lambda r: r["status"] == "completed")
        assert done["pr_merged"] is True
        assert done["waiting_for"] is None


async def _eventually_ready(o: Orchestra) -> Any:
    def ready() -> bool:
        prs = o.github.prs(FORGE_REPO)
        return len(prs) == 1 and not prs[0].draft

    await eventually(ready, within=60, what="the PR marked ready on the fake GitHub")
    return o.github.prs(FORGE_REPO)[0]


async def test_merge_when_green_merges_after_a_green_ci_report_and_completes_the_run(
    orchestra: Orchestra,
) -> None:
    o = orchestra
    o.write_script(five_step_script())
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        project = await register(
            api,
            o,
            run_policy={"merge": {"mode": "when_green", "method": "squash", "required_checks": ["CI"]}},
        )
        run = await _create_and_start(api, project["id"])
        waiting = await wait_for(
            api,
            f"/protocols/{run['id']}",
            lambda r: r["waiting_for"] == "ci",
            what="every step done, CI awaited",
        )
        assert waiting["status"] == "running", "merge: when_green completes the run when merged"
        head = waiting["branch_head_sha"]
        await _eventually_ready(o)
        assert not o.github.prs(FORGE_REPO)[0].merged
        await _github(
            o.system,
            "workflow_run",
            load("github_workflow_run_completed_success", branch=run["protocol_name"], sha=head),
        )
        done = await wait_for(
            api, f"/protocols/{run['id']}", lambda r: r["status"] == "completed", what="merged"
        )
        assert done["pr_merged"] is True
        pr = o.github.prs(FORGE_REPO)[0]
        assert (pr.merged, pr.merge_method) == (True, "squash")
        types = await _types(api, run["id"])
        assert "protocol_run.merge_requested" in types
        assert types[-1] == "protocol_run.completed"


async def test_pause_and_cancel_mid_autopilot_are_honoured(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(five_step_script(exec_delay=60))  # each step "thinks" for a minute unless stopped
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        project = await register(api, o, run_policy={})  # the defaults: autopilot
        run = await _create_and_start(api, project["id"])
        await wait_for(
            api,
            f"/protocols/{run['id']}/steps",
            lambda b: bool(b["data"]) and b["data"][0]["owner"] is not None,
            what="the first step taken by a worker",
        )
        tip = await o.origin.tip(run["protocol_name"])
        asked = time.monotonic()
        paused = await api.post(f"/protocols/{run['id']}/actions/pause")
        assert paused.status_code == 200
        assert paused.json()["status"] == "paused"
        # the worker drops the paused step's job: its agent stops and nothing of it is recorded or pushed
        await _jobs_dropped(o)
        dropped_after = time.monotonic() - asked
        assert await o.origin.tip(run["protocol_name"]) == tip
        types = await _types(api, run["id"])
        assert types[-1] == "protocol_run.paused", "nothing after the pause"

        o.write_script(five_step_script())  # now steps finish at once
        resumed = await api.post(f"/protocols/{run['id']}/actions/resume")
        assert resumed.json()["events"][:2] == [
            "protocol_run.resumed",
            "protocol_run.step_execution_requested",
        ]
        await wait_for(
            api,
            f"/protocols/{run['id']}/steps",
            lambda b: sum(s["status"] == "completed" for s in b["data"]) >= 2,
            what="the run going on after resume",
        )
        cancelled = await api.post(f"/protocols/{run['id']}/actions/cancel")
        assert cancelled.json()["status"] == "cancelled"
        final = await wait_for(api, f"/protocols/{run['id']}", lambda r: r["status"] == "cancelled")
        assert final["waiting_for"] is None
        print(f"pause honoured (the agent's job dropped) {dropped_after:.2f} s after the request")


async def _jobs_dropped(o: Orchestra) -> None:
    registry = o.codex[0].metrics.registry
    labels = {"type": "StepExecutionRequested", "outcome": "superseded"}

    def dropped() -> bool:
        return (registry.get_sample_value("deksdenflow_worker_jobs_total", labels) or 0) >= 1

    await eventually(dropped, within=30, what="the paused step's job dropped")
