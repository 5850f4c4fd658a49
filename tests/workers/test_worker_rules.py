"""What the workers guarantee besides the happy path: budgets, pause/resume, permanent failures,
clarifications that block and unblock a project, and branches as the remote has them."""

from __future__ import annotations

from tests.support import eventually
from tests.workers.conftest import Orchestra
from tests.workers.flow import action, get, planned_protocol, register, wait_for
from tests.workers.scripts import protocol_script


async def test_strict_budget_blocks_the_step_before_the_call_that_would_exceed(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(protocol_script())
    # Planning spends 1,100 tokens per call; a step may spend 1,000: the first execution call would cross it.
    o.start_codex_worker(
        o.worker_settings(
            token_budget_mode="strict", max_tokens_per_protocol=1_000_000, max_tokens_per_step=10
        )
    )
    async with o.system.admin() as api:
        project = await register(api, o)
        run = await planned_protocol(api, project["id"])
        await action(api, f"/protocols/{run['id']}/actions/run_next_step")
        blocked = await wait_for(api, f"/protocols/{run['id']}", lambda r: r["status"] == "blocked")
        assert "token budget per step would be exceeded" in blocked["blocked_reason"]
        steps = (await get(api, f"/protocols/{run['id']}/steps"))["data"]
        assert steps[0]["status"] == "blocked"
        events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
        exec_usage = [e for e in events if e["type"] == "protocol_run.usage_recorded" and e["step_run_id"]]
        assert exec_usage == []  # the call was never made


async def test_project_budget_in_warn_mode_lets_work_go_on(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(protocol_script())
    worker = o.start_codex_worker(o.worker_settings(token_budget_mode="warn", max_tokens_per_project=10))
    async with o.system.admin() as api:
        project = await register(api, o)
        run = await planned_protocol(api, project["id"])
        assert run["status"] == "planned"
        assert worker.metrics.budget_refusals.labels("warn")._value.get() >= 1


async def test_pause_stops_the_agent_and_resume_runs_the_step_again(orchestra: Orchestra) -> None:
    o = orchestra
    script = protocol_script()
    script["exec"]["00-setup.md"] = [{"message": "first try", "delay_seconds": 60}, {"message": "Set up"}]
    o.write_script(script)
    worker = o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        project = await register(api, o)
        run = await planned_protocol(api, project["id"])
        await action(api, f"/protocols/{run['id']}/actions/run_next_step")
        await wait_for(api, f"/protocols/{run['id']}/steps", lambda b: b["data"][0]["owner"] is not None)
        await action(api, f"/protocols/{run['id']}/actions/pause")

        def stopped() -> bool:
            return bool(worker.metrics.jobs.labels("StepExecutionRequested", "superseded")._value.get() >= 1)

        await eventually(stopped, within=5, what="the agent to stop on pause")
        # The scripted entry for the retried call has no delay: resume must request the work again.
        o.write_script({**script, "exec": {**script["exec"], "00-setup.md": {"message": "Set up"}}})
        resumed = await action(api, f"/protocols/{run['id']}/actions/resume")
        assert "protocol_run.step_execution_requested" in resumed["events"]
        steps = await wait_for(
            api, f"/protocols/{run['id']}/steps", lambda b: b["data"][0]["status"] == "completed"
        )
        assert steps["data"][0]["retries"] == 0
        assert steps["data"][0]["summary"] == "Set up"


async def test_a_permanent_engine_error_fails_the_step_with_its_reason(orchestra: Orchestra) -> None:
    o = orchestra
    script = protocol_script()
    script["exec"]["00-setup.md"] = {"error": "permanent"}
    o.write_script(script)
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        project = await register(api, o)
        run = await planned_protocol(api, project["id"])
        await action(api, f"/protocols/{run['id']}/actions/run_next_step")
        blocked = await wait_for(api, f"/protocols/{run['id']}", lambda r: r["status"] == "blocked")
        step = (await get(api, f"/protocols/{run['id']}/steps"))["data"][0]
        assert step["status"] == "failed"
        assert step["failure_reason"]
        assert blocked["blocked_reason"]


async def test_clarifications_block_until_answered(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(protocol_script())
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        created = await api.post(
            "/projects",
            json={"name": "x", "git_url": o.origin.url, "default_engines": {"planning": "scripted"}},
        )
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        project = await wait_for(
            api, f"/projects/{pid}", lambda p: p["status"] == "blocked", what="questions"
        )
        blocking = [q["key"] for q in project["questions"] if q["blocking"]]
        assert blocking == ["ci_provider"]  # a local path says nothing about the forge
        run = (await api.post(f"/projects/{pid}/protocols", json={"task_name": "Try"})).json()
        refused = await api.post(f"/protocols/{run['id']}/actions/start")
        assert refused.status_code == 409
        assert "ci_provider" in refused.json()["message"]

        unknown = await api.post(f"/projects/{pid}/clarifications", json={"answers": {"nope": "x"}})
        assert unknown.status_code == 422
        answered = await api.post(
            f"/projects/{pid}/clarifications", json={"answers": {"ci_provider": "github"}}
        )
        assert answered.status_code == 200, answered.text
        assert answered.json()["status"] == "ready"
        await action(api, f"/protocols/{run['id']}/actions/start")


async def test_branches_show_the_remote_and_deletion_removes_it(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(protocol_script())
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        project = await register(api, o)
        run = await planned_protocol(api, project["id"])
        name = run["protocol_name"]
        branches = await get(api, f"/projects/{project['id']}/branches")
        assert branches["remote_checked"] is True
        [branch] = branches["data"]
        assert branch["remote_sha"] == await o.origin.tip(name)

        early = await api.post(f"/projects/{project['id']}/branches/{name}/delete", json={"confirm": True})
        assert early.status_code == 409  # the run has not ended
        await action(api, f"/protocols/{run['id']}/actions/cancel")
        accepted = await api.post(f"/projects/{project['id']}/branches/{name}/delete", json={"confirm": True})
        assert accepted.status_code == 202, accepted.text

        async def gone() -> bool:
            return await o.origin.tip(name) is None

        await eventually(gone, within=15, what="the branch to be deleted on the remote")
        after = await wait_for(api, f"/projects/{project['id']}/branches", lambda b: b["data"][0]["deleted"])
        assert after["data"][0]["remote_sha"] is None


async def test_transient_failures_are_retried_then_recorded_as_failed(orchestra: Orchestra) -> None:
    o = orchestra
    script = protocol_script()
    script["exec"]["00-setup.md"] = {"error": "retryable"}
    o.write_script(script)
    # Two tries per delivery, three deliveries: six tries, then the step fails with the reason.
    o.start_codex_worker(
        o.worker_settings(
            codex_worker_tries=2, codex_worker_max_deliver=3, codex_worker_backoff_seconds="0.2"
        )
    )
    async with o.system.admin() as api:
        project = await register(api, o)
        run = await planned_protocol(api, project["id"])
        await action(api, f"/protocols/{run['id']}/actions/run_next_step")
        await wait_for(api, f"/protocols/{run['id']}", lambda r: r["status"] == "blocked", within=60)
        step = (await get(api, f"/protocols/{run['id']}/steps"))["data"][0]
        assert step["status"] == "failed"
        assert step["retries"] == 0  # failed tries are not retries of the step
        events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
        tries = [e for e in events if e["type"] == "protocol_run.step_attempt_failed"]
        assert len(tries) == 3  # the first try of each delivery failed and was retried at once
        [failed] = [e for e in events if e["type"] == "protocol_run.step_execution_failed"]
        assert failed["payload"]["reason"]


async def test_onboarding_fails_with_the_reason_when_the_base_branch_is_missing(orchestra: Orchestra) -> None:
    o = orchestra
    async with o.system.admin() as api:
        created = await api.post(
            "/projects",
            json={"name": "x", "git_url": o.origin.url, "base_branch": "develop", "ci_provider": "github"},
        )
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        await wait_for(api, f"/projects/{pid}", lambda p: p["status"] == "onboarding_failed", what="failure")
        events = (await get(api, f"/events?project_id={pid}&limit=50"))["data"]
        [failed] = [e for e in events if e["type"] == "project.onboarding_failed"]
        assert "the base branch 'develop' does not exist" in failed["payload"]["reason"]
        assert await o.origin.tip("deksdenflow/onboarding") is None  # nothing pushed
