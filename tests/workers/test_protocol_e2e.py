"""A whole protocol through the API with real git, both workers and the scripted engine."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from deksdenflow_core.assets import prompt_text, version_of

from tests.support import eventually
from tests.workers.conftest import FORGE_REPO, Orchestra
from tests.workers.flow import action, get, planned_protocol, register, wait_for
from tests.workers.scripts import protocol_script


async def test_register_onboard_plan_execute_qa_pr_complete(orchestra: Orchestra) -> None:
    o = orchestra
    script = protocol_script()
    # The docs step's refinement stays invalid (after its retry): the planner's file is kept.
    script["decompose"]["02-docs.md"] = {**script["decompose"]["*"], "message": "No refinement, sorry."}
    o.write_script(script)
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        project = await register(api, o)
        # Onboarding: starter assets on their own branch, nothing overwritten on main.
        assert ".deksdenflow/prompts/planning.md" in await o.origin.files("deksdenflow/onboarding")
        assert "scripts/ci/test.sh" in await o.origin.files("deksdenflow/onboarding")
        assert await o.origin.tip("deksdenflow/onboarding") is not None
        assert await o.origin.subjects("main") == ["initial commit"]

        run = await planned_protocol(api, project["id"])
        assert run["status"] == "planned", run
        name = run["protocol_name"]
        assert name == "0001-add-greeting"
        steps = (await get(api, f"/protocols/{run['id']}/steps"))["data"]
        assert [s["step_name"] for s in steps] == ["00-setup.md", "01-greeting.md", "02-docs.md"]
        files = await o.origin.files(name)
        root = ".protocols/0001-add-greeting"
        for f in ("plan.md", "context.md", "log.md", "00-setup.md", "01-greeting.md", "02-docs.md"):
            assert f"{root}/{f}" in files
        # Decomposition refined the work steps only (the docs step's refinement was kept as planned, below);
        # plan/context as planned.
        assert (await o.origin.show(name, f"{root}/01-greeting.md")).startswith("# Refined")
        assert (await o.origin.show(name, f"{root}/00-setup.md")).startswith("# Setup")
        assert (await o.origin.show(name, f"{root}/plan.md")).startswith("# Plan")

        for expected_done in (1, 2, 3):
            await action(api, f"/protocols/{run['id']}/actions/run_next_step")
            await wait_for(
                api,
                f"/protocols/{run['id']}/steps",
                lambda b, n=expected_done: sum(s["status"] == "completed" for s in b["data"]) == n,
                what=f"{expected_done} steps completed",
            )
        done = await wait_for(api, f"/protocols/{run['id']}", lambda r: r["status"] == "completed")
        assert done["usage"]["input_tokens"] > 0

        subjects = await o.origin.subjects(name)
        assert subjects[:3] == [
            "feat(docs): Document greet() [protocol-0001/02]",
            "feat(greeting): Add greet() [protocol-0001/01]",
            "docs(protocol): plan 0001-add-greeting [protocol-0001/plan]",
        ]
        assert "greet" in await o.origin.show(name, "greeting.py")

        # The step file is the contract: execution never changed it.
        assert (await o.origin.show(name, f"{root}/01-greeting.md")).startswith("# Refined")

        await action(api, f"/protocols/{run['id']}/actions/open_pr")
        pr_run = await wait_for(api, f"/protocols/{run['id']}", lambda r: r["pr_url"] is not None, what="PR")
        prs = o.github.prs(FORGE_REPO)
        assert len(prs) == 1
        assert (prs[0].draft, prs[0].head, prs[0].title) == (True, name, "WIP: 0001 - add-greeting")
        assert pr_run["pr_url"].endswith(f"/{FORGE_REPO}/pull/{prs[0].number}")

        events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
        types = [e["type"] for e in events]
        # 00-setup has QA policy skip; 01 runs the full QA prompt, 02 the light one (another prompt).
        verdicts = [e["payload"] for e in events if e["type"] == "protocol_run.qa_verdict_recorded"]
        assert len(verdicts) == 2
        assert verdicts[0]["prompt_version"] != verdicts[1]["prompt_version"]
        assert "protocol_run.usage_recorded" in types
        reports = (await get(api, f"/steps/{steps[1]['id']}/qa"))["data"]
        assert [(r["qa_attempt"], r["verdict"]) for r in reports] == [(1, "PASS")]
        assert "## Findings" in reports[0]["report_md"]
        assert reports[0]["report_md"].endswith("Verdict: PASS\n")
        assert reports[0]["prompt_version"] == verdicts[0]["prompt_version"]
        await _one_refinement_kept_as_planned_is_counted(api, o, name, root, events)


async def _one_refinement_kept_as_planned_is_counted(
    api: httpx.AsyncClient, o: Orchestra, name: str, root: str, events: list[dict[str, Any]]
) -> None:
    """The docs step's refinement stayed invalid: its file is the planner's and the log says so; the plan
    names the decompose prompt's version and what its refinements did, and the prompt registry counts them
    for that version, apart from the planning prompt's plans."""
    assert (await o.origin.show(name, f"{root}/02-docs.md")).startswith("# Docs")
    assert "- 02-docs.md: kept as planned" in await o.origin.show(name, f"{root}/log.md")
    decompose_version = version_of(prompt_text("decompose"))
    (plan,) = [e["payload"] for e in events if e["type"] == "protocol_run.planning_completed"]
    decomposed = (plan["decompose_prompt_version"], plan["steps_refined"], plan["steps_kept_as_planned"])
    assert decomposed == (decompose_version, 1, 1)
    # the plan's commit says so too, for a job that finds the plan pushed (tests/workers/test_crash.py)
    trailer = f"Deksdenflow-Decomposed: {decompose_version} refined=1 kept_as_planned=1"
    assert await o.origin.count(name, trailer) == 1
    registry = {p["name"]: p for p in (await get(api, "/prompts"))["data"]}
    (decompose,) = registry["decompose"]["versions"]
    assert decompose["version"] == decompose_version
    assert decompose["outcomes"] == {"steps_refined": 1, "steps_kept_as_planned": 1}
    (planning,) = registry["planning"]["versions"]
    assert planning["outcomes"] == {"plans": 1}


async def test_cancel_mid_execution_stops_the_agent_and_pushes_nothing(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(protocol_script(exec_delay=60))
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        project = await register(api, o)
        run = await planned_protocol(api, project["id"])
        name = run["protocol_name"]
        await action(api, f"/protocols/{run['id']}/actions/run_next_step")  # 00-setup, no delay
        await wait_for(api, f"/protocols/{run['id']}/steps", lambda b: b["data"][0]["status"] == "completed")
        tip_before = await o.origin.tip(name)
        await action(api, f"/protocols/{run['id']}/actions/run_next_step")  # 01-greeting: the agent waits
        await wait_for(
            api,
            f"/protocols/{run['id']}/steps",
            lambda b: b["data"][1]["owner"] is not None,
            what="ownership",
        )
        await action(api, f"/protocols/{run['id']}/actions/cancel")
        worker = o.codex[0]

        def idle() -> bool:
            stopped = worker.metrics.jobs.labels("StepExecutionRequested", "superseded")._value.get()
            return bool(stopped >= 1)

        await eventually(idle, within=5, what="the agent to stop within seconds")
        await asyncio.sleep(0.5)
        assert await o.origin.tip(name) == tip_before
        final = await get(api, f"/protocols/{run['id']}")
        assert final["status"] == "cancelled"
