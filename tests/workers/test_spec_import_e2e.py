"""A spec-kit feature folder, an OpenSpec change and a CodeMachine workflow package imported as protocols
through the API and run to the end with real git, both workers and the scripted engine: planning writes the
imported steps (no planning agent), each step is executed and QA-checked; a first-version CodeMachine
workspace imports with its policies; a spec with problems is refused with them, nothing created."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deksdenflow_core.domain.protocol_run import MAX_PUSH_ANCESTORS

from tests.workers.conftest import Orchestra
from tests.workers.flow import action, get, register, wait_for
from tests.workers.scripts import PASS

DATA = Path(__file__).resolve().parents[1] / "specs" / "data"


def files_of(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*.md")}


def script_for(steps: list[str]) -> dict[str, Any]:
    """Every imported step edits a file of its own; QA passes."""
    return {
        "exec": {
            name: {"message": f"Did {name}", "edits": [{"path": f"work/{name}.txt", "content": f"{name}\n"}]}
            for name in steps
        },
        "qa": {"*": {"message": PASS}},
    }


async def run_import(
    o: Orchestra, body: dict[str, Any], steps: list[str], route: str = "protocols/import"
) -> tuple[dict[str, Any], list[Any]]:
    o.write_script(script_for(steps))
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        project = await register(api, o)
        created = await api.post(f"/projects/{project['id']}/{route}", json=body)
        assert created.status_code == 201, created.text
        run = created.json()
        await action(api, f"/protocols/{run['id']}/actions/start")
        await wait_for(
            api, f"/protocols/{run['id']}", lambda r: r["status"] == "planned", what="the import planned"
        )
        listed = (await get(api, f"/protocols/{run['id']}/steps"))["data"]
        assert [s["step_name"] for s in listed] == steps
        for done in range(1, len(steps) + 1):
            await action(api, f"/protocols/{run['id']}/actions/run_next_step")
            await wait_for(
                api,
                f"/protocols/{run['id']}/steps",
                lambda b, n=done: sum(s["status"] == "completed" for s in b["data"]) == n,
                within=60,
                what=f"{done} imported steps completed",
            )
        final = await wait_for(api, f"/protocols/{run['id']}", lambda r: r["status"] == "completed")
        events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
    return final, events


async def test_a_spec_kit_feature_runs_as_a_protocol(orchestra: Orchestra) -> None:
    steps = [
        "00-foundational-blocking-prerequisites.md",
        "01-user-story-1-group-photos-into.md",
        "02-user-story-2-reorder-albums-priority.md",
    ]
    body = {
        "kind": "speckit",
        "name": "001-photo-albums",
        "files": files_of(DATA / "speckit" / "001-photo-albums"),
        "constitution": "# Constitution\n\nTests first.\n",
    }
    run, events = await run_import(orchestra, body, steps)
    assert run["task_name"] == "Photo albums"
    # no planning agent: no usage was recorded for planning, and the plan names no prompt
    (planned,) = [e["payload"] for e in events if e["type"] == "protocol_run.planning_completed"]
    assert planned["engine_id"] == "import"
    assert "prompt_version" not in planned or planned["prompt_version"] == ""
    assert not [
        e
        for e in events
        if e["type"] == "protocol_run.usage_recorded" and e["payload"]["phase"] == "PHASE_PLANNING"
    ]
    root = f".protocols/{run['protocol_name']}"
    files = await orchestra.origin.files(run["protocol_name"])
    assert f"{root}/01-user-story-1-group-photos-into.md" in files
    step = await orchestra.origin.show(run["protocol_name"], f"{root}/01-user-story-1-group-photos-into.md")
    assert "- [ ] T007 [US1] Implement add_photo in src/albums/service.py (depends on T006)" in step
    context = await orchestra.origin.show(run["protocol_name"], f"{root}/context.md")
    assert "Tests first." in context
    assert "work/02-user-story-2-reorder-albums-priority.md.txt" in files


async def test_an_openspec_change_runs_as_a_protocol(orchestra: Orchestra) -> None:
    steps = ["00-cli-init-support.md", "01-cli-update-support.md", "02-templates-and-tests.md"]
    body = {
        "kind": "openspec",
        "name": "add-amp-support",
        "files": files_of(DATA / "openspec" / "add-amp-support"),
    }
    run, _ = await run_import(orchestra, body, steps)
    assert run["task_name"] == "add-amp-support"
    assert run["status"] == "completed"


async def test_a_spec_with_problems_is_refused_with_them_and_nothing_is_created(orchestra: Orchestra) -> None:
    async with orchestra.system.admin() as api:
        project = await register(api, orchestra)
        template = (DATA / "speckit" / "tasks-template-phases.md").read_text()
        refused = await api.post(
            f"/projects/{project['id']}/protocols/import",
            json={"kind": "speckit", "name": "002-x", "files": {"tasks.md": template}},
        )
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert body["code"] == "invalid_spec"
        assert "specs/002-x/tasks.md:67: task id: TXXX is the template's placeholder" in body["problems"]
        listed = (await get(api, f"/projects/{project['id']}/protocols"))["data"]
        assert listed == []


def all_files_of(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}


async def test_a_codemachine_package_resumed_from_its_tracking_file_runs_as_a_protocol(
    orchestra: Orchestra,
) -> None:
    done = {"completedAt": "2026-01-01T00:00:00Z", "sessionId": "s", "monitoringId": 1}
    tracking = {
        "activeTemplate": "codemachine-one.workflow.js",
        "completedSteps": dict.fromkeys([str(i) for i in range(11)], done),
    }  # through runtime-prep: the sanity check, the commit and the iteration gate remain
    body = {
        "files": all_files_of(DATA / "codemachine" / "codemachine-one"),
        "tracking": json.dumps(tracking),
    }
    steps = ["00-task-sanity-check.md", "01-git-commit.md", "02-check-task.md"]
    run, events = await run_import(orchestra, body, steps, route="codemachine/import")
    assert run["task_name"] == "CodeMachine-One Workflow"
    (created,) = [e["payload"] for e in events if e["type"] == "protocol_run.created"]
    imported = created["imported"]
    assert imported["source"] == "CodeMachine package codemachine-one: CodeMachine-One Workflow"
    gate = imported["steps"][2]
    assert gate["labels"] == ["check-task"]
    assert gate["policies"]["loop"]["max_iterations"] == 20
    assert gate["policies"]["loop"]["on"] == ["LOOP_CAUSE_DIRECTIVE"]
    root = f".protocols/{run['protocol_name']}"
    step = await orchestra.origin.show(run["protocol_name"], f"{root}/02-check-task.md")
    assert "TaskCompletionChecker_v1.0" in step
    context = await orchestra.origin.show(run["protocol_name"], f"{root}/context.md")
    assert "### `file-assembler` — File Assembler" in context


async def test_a_first_version_workspace_runs_to_the_end_with_its_trigger_and_a_malicious_package_is_refused(
    orchestra: Orchestra,
) -> None:
    """The first version's ``.codemachine`` workspace, imported and run on autopilot with the scripted
    engine: its three agents' steps, then the step its review's trigger queued (the ``qa`` agent),
    every one completed; the trigger is in the run's events."""
    o = orchestra
    script = script_for(["00-plan.md", "01-build.md", "02-review.md"])
    script["exec"]["*"] = {"message": "Checked", "edits": [{"path": "work/qa.txt", "content": "qa\n"}]}
    o.write_script(script)
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        project = await register(api, o)
        route = f"/projects/{project['id']}/codemachine/import"
        body = {
            "files": all_files_of(DATA / "codemachine" / "first-version"),
            "run_policy": {"mode": "autopilot", "pr": {"open": "never"}},
        }
        created = await api.post(route, json=body)
        assert created.status_code == 201, created.text
        run = created.json()
        assert run["task_name"] == "spec-to-code"
        events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
        (payload,) = [e["payload"] for e in events if e["type"] == "protocol_run.created"]
        steps = payload["imported"]["steps"]
        assert [s["filename"] for s in steps] == ["00-plan.md", "01-build.md", "02-review.md"]
        assert steps[1]["policies"]["loop"]["back_to"] == "00-plan.md"
        assert steps[2]["policies"]["trigger"]["agent"] == "qa"
        await action(api, f"/protocols/{run['id']}/actions/start")
        await wait_for(
            api, f"/protocols/{run['id']}", lambda r: r["status"] == "completed", within=180, what="the run"
        )
        listed = (await get(api, f"/protocols/{run['id']}/steps"))["data"]
        events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
        assert len(listed) == 4, listed
        assert all(s["status"] == "completed" for s in listed), listed
        (queued,) = [e["payload"] for e in events if e["type"] == "protocol_run.trigger_queued"]
        assert queued["agent"] == "qa"
        refused = await api.post(
            route,
            json={
                "files": {
                    "config/main.agents.js": "module.exports = [];\n",
                    # sent as read: the problem names the line in the file, blank lines counted
                    "templates/workflows/evil.workflow.js": "\n\nrequire('child_process').execSync('id');\n",
                }
            },
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["problems"] == [
            "templates/workflows/evil.workflow.js:3: javascript: require('child_process') is not allowed: "
            "a CodeMachine package may require only 'path' and its own files"
        ]
        listed = (await get(api, f"/projects/{project['id']}/protocols"))["data"]
        assert [r["id"] for r in listed] == [run["id"]]


async def test_a_spec_kit_phase_s_p_tasks_execute_at_once_where_the_run_policy_allows(
    orchestra: Orchestra,
) -> None:
    """Autopilot with ``max_parallel_steps: 2``: the phase's two [P] tasks are steps of one group,
    requested in one decision and executed by the worker side by side; both commits land on the branch
    (the later one rebased onto the earlier) and the run goes on to the end by itself."""
    o = orchestra
    steps = [
        "00-foundational-blocking-prerequisites.md",
        "01-t005-test-album-creation-in-tests.md",
        "02-t006-create-the-album-model-in.md",
        "03-t007-implement-add-photo-in-src.md",
        "04-user-story-2-reorder-albums-priority.md",
    ]
    o.write_script(script_for(steps))
    o.start_codex_worker(o.worker_settings(codex_worker_concurrency=2))
    body = {
        "kind": "speckit",
        "name": "001-photo-albums",
        "files": files_of(DATA / "speckit" / "001-photo-albums"),
        "run_policy": {"mode": "autopilot", "max_parallel_steps": 2, "pr": {"open": "never"}},
    }
    async with o.system.admin() as api:
        project = await register(api, o)
        created = await api.post(f"/projects/{project['id']}/protocols/import", json=body)
        assert created.status_code == 201, created.text
        run = created.json()
        assert run["run_policy"]["max_parallel_steps"] == 2
        await action(api, f"/protocols/{run['id']}/actions/start")
        final = await wait_for(
            api, f"/protocols/{run['id']}", lambda r: r["status"] == "completed", within=180, what="the run"
        )
        listed = (await get(api, f"/protocols/{run['id']}/steps"))["data"]
        events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
    assert [s["step_name"] for s in listed] == steps
    assert all(s["status"] == "completed" for s in listed)
    ids = {s["id"]: s["step_name"] for s in listed}
    requested = [e for e in events if e["type"] == "protocol_run.step_execution_requested"]
    by_decision: dict[int, list[str]] = {}
    for e in requested:
        by_decision.setdefault(e["seq"], []).append(ids[e["payload"]["step_run_id"]])
    assert sorted(by_decision.values()) == sorted(
        [[steps[0]], [steps[1], steps[2]], [steps[3]], [steps[4]]]
    ), "the group's two steps are asked for in one decision; every other step alone"
    branch = final["protocol_name"]
    files = await o.origin.files(branch)
    history = await o.origin.history(branch)
    for step in listed:
        assert f"work/{step['step_name']}.txt" in files, f"{step['step_name']}'s work is on the branch"
        # what each step recorded is what was pushed (for the later of the group: its rebased commit)
        assert step["commit_sha"] in history, step
    # each push names its commit's ancestors, so the group's pushes, in whatever order they were
    # recorded, leave the branch head on the branch's tip
    for pushed in (e["payload"] for e in events if e["type"] == "protocol_run.branch_pushed"):
        at = history.index(pushed["commit_sha"])
        assert pushed["ancestors"] == history[at + 1 : at + 1 + MAX_PUSH_ANCESTORS], pushed
    assert final["branch_head_sha"] == history[0]
