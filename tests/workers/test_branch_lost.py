"""A protocol branch deleted or rewritten on the remote is never rebuilt silently from the base.

Each step works on the branch as the log knows it: the last head recorded as pushed is put back when the
remote lost it (and the log says so), and when it cannot be the run is blocked with the reason before
any agent runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.workers.conftest import Orchestra
from tests.workers.flow import action, get, planned_protocol, register, wait_for
from tests.workers.scripts import protocol_script

ROOT = ".protocols/0001-add-greeting"


async def plan(o: Orchestra, api: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    """A planned protocol and the head the log recorded for its branch."""
    project = await register(api, o)
    run = await planned_protocol(api, project["id"])
    assert run["status"] == "planned", run
    head = await o.origin.tip(run["protocol_name"])
    assert head is not None
    assert run["branch_head_sha"] == head
    return run, head


async def events_of(api: httpx.AsyncClient, run_id: str, kind: str) -> list[dict[str, Any]]:
    events = (await get(api, f"/protocols/{run_id}/events?limit=500"))["data"]
    return [e["payload"] for e in events if e["type"] == f"protocol_run.{kind}"]


async def run_step(api: httpx.AsyncClient, run_id: str, done: int) -> None:
    await action(api, f"/protocols/{run_id}/actions/run_next_step")
    await wait_for(
        api,
        f"/protocols/{run_id}/steps",
        lambda b: sum(s["status"] == "completed" for s in b["data"]) == done,
        what=f"{done} steps completed",
        within=60,
    )


async def test_a_branch_deleted_after_planning_is_restored_and_the_step_runs_with_its_plan(
    orchestra: Orchestra,
) -> None:
    o = orchestra
    o.write_script(protocol_script())
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        run, head = await plan(o, api)
        name = run["protocol_name"]
        await o.origin.delete(name)
        await run_step(api, run["id"], 1)  # 00-setup
        assert await events_of(api, run["id"], "branch_restored") == [
            {"branch": name, "commit_sha": head, "found_sha": ""}
        ]
        await run_step(api, run["id"], 2)  # 01-greeting: a real edit, committed on top of the plan
        assert (await o.origin.subjects(name))[:3] == [
            "feat(greeting): Add greet() [protocol-0001/01]",
            "docs(protocol): plan 0001-add-greeting [protocol-0001/plan]",
            "initial commit",
        ]
        files = await o.origin.files(name)
        assert {f"{ROOT}/plan.md", f"{ROOT}/01-greeting.md", "greeting.py"} <= set(files)


async def test_a_branch_force_pushed_back_to_its_base_is_restored(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(protocol_script())
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        run, head = await plan(o, api)
        name = run["protocol_name"]
        base = await o.origin.tip("main")
        assert base is not None
        await o.origin.force(name, base)
        await run_step(api, run["id"], 1)
        assert await events_of(api, run["id"], "branch_restored") == [
            {"branch": name, "commit_sha": head, "found_sha": base}
        ]
        assert f"{ROOT}/plan.md" in await o.origin.files(name)
        await run_step(api, run["id"], 2)
        assert await o.origin.count(name, "protocol-0001/plan") == 1


async def test_a_lost_head_that_exists_nowhere_blocks_the_run_and_runs_no_step(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(protocol_script())
    planner = o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        run, head = await plan(o, api)
        name = run["protocol_name"]
        # The worker that planned goes away with its cache; a replica with a fresh mirror takes over.
        planner.stop()
        await asyncio.wait_for(o.workers[-1], 30)
        await o.origin.delete(name)
        o.start_codex_worker(o.worker_settings())
        await action(api, f"/protocols/{run['id']}/actions/run_next_step")
        blocked = await wait_for(
            api, f"/protocols/{run['id']}", lambda r: r["status"] == "blocked", within=60, what="blocked"
        )
        assert f"protocol branch {name} was deleted on the remote" in blocked["blocked_reason"]
        assert head in blocked["blocked_reason"]
        assert "no longer exists" in blocked["blocked_reason"]
        steps = (await get(api, f"/protocols/{run['id']}/steps"))["data"]
        assert [s["status"] for s in steps] == ["blocked", "pending", "pending"]
        assert await o.origin.tip(name) is None, "nothing was rebuilt from the base branch"
        exec_usage = [u for u in await events_of(api, run["id"], "usage_recorded") if u.get("step_run_id")]
        assert exec_usage == [], "no agent ran for the step"
        assert await events_of(api, run["id"], "branch_restored") == []


async def test_a_step_never_runs_without_its_plan(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(protocol_script())
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        run, head = await plan(o, api)
        name = run["protocol_name"]
        # The branch still contains the recorded head, but a later commit took the plan away.
        await o.origin.remove(name, ".protocols", "tidy up")
        await action(api, f"/protocols/{run['id']}/actions/run_next_step")
        blocked = await wait_for(
            api, f"/protocols/{run['id']}", lambda r: r["status"] == "blocked", within=60, what="blocked"
        )
        assert "the plan is missing" in blocked["blocked_reason"]
        assert f"{ROOT}/plan.md" in blocked["blocked_reason"]
        steps = (await get(api, f"/protocols/{run['id']}/steps"))["data"]
        assert steps[0]["status"] == "blocked"
        assert await o.origin.subjects(name) == [
            "tidy up",
            f"docs(protocol): plan {name} [protocol-0001/plan]",
            "initial commit",
        ]
        assert head != await o.origin.tip(name)


async def test_qa_on_a_lost_branch_blocks_the_step_with_the_reason(orchestra: Orchestra) -> None:
    o = orchestra
    fail = {
        "summary": "Not yet.",
        "findings": {"blocking": ["no test"], "warnings": [], "notes": []},
        "next_actions": [],
        "verdict": "FAIL",
    }
    script = protocol_script()
    script["qa"] = {"01-greeting.md": {"message": fail}, "*": script["qa"]["*"]}
    o.write_script(script)
    first = o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        run, _ = await plan(o, api)
        name = run["protocol_name"]
        await run_step(api, run["id"], 1)
        await action(api, f"/protocols/{run['id']}/actions/run_next_step")
        await wait_for(
            api, f"/protocols/{run['id']}", lambda r: r["status"] == "blocked", within=60, what="QA FAIL"
        )
        step = (await get(api, f"/protocols/{run['id']}/steps"))["data"][1]
        assert step["status"] == "failed"
        first.stop()
        await asyncio.wait_for(o.workers[-1], 30)
        await o.origin.delete(name)
        o.start_codex_worker(o.worker_settings())  # a fresh mirror: the recorded head is nowhere
        await action(api, f"/steps/{step['id']}/actions/run_qa")
        blocked = await wait_for(
            api,
            f"/steps/{step['id']}",
            lambda s: s["status"] == "blocked",
            within=60,
            what="QA blocked",
        )
        assert not blocked["qa_pending"]
        run_now = await get(api, f"/protocols/{run['id']}")
        assert run_now["status"] == "blocked"
        assert f"protocol branch {name} was deleted on the remote" in run_now["blocked_reason"]
        verdicts = await events_of(api, run["id"], "qa_verdict_recorded")
        assert len(verdicts) == 1, "no QA ran on a branch rebuilt from the base"
