"""A worker killed mid-step (SIGKILL, a real process): another one takes the job over and the step
completes exactly once — one commit, one completion, one PR."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from tests.workers.conftest import FORGE_REPO, Orchestra
from tests.workers.flow import action, get, planned_protocol, register, wait_for
from tests.workers.scripts import PLAN, protocol_script


async def start_worker_process(o: Orchestra, worker_id: str, log: Path) -> asyncio.subprocess.Process:
    store = o.system.store
    env = {
        **os.environ,
        "DEKSDENFLOW_NATS_URL": o.nats_url,
        "DEKSDENFLOW_STREAM_NAME": store.stream,
        "DEKSDENFLOW_SUBJECT_PREFIX": store.subjects.prefix,
        "DEKSDENFLOW_HOME": str(o.home / worker_id),
        "DEKSDENFLOW_WORKER_ID": worker_id,
        "DEKSDENFLOW_DEFAULT_ENGINE": "scripted",
        "DEKSDENFLOW_SCRIPTED_SCRIPT": str(o.script),
        "DEKSDENFLOW_AUTO_QA_AFTER_EXEC": "1",
        "DEKSDENFLOW_TOKEN_BUDGET_MODE": "off",
        "DEKSDENFLOW_CODEX_WORKER_PORT": "0",
        "DEKSDENFLOW_CODEX_WORKER_ACK_WAIT_SECONDS": "3",
        "DEKSDENFLOW_CODEX_WORKER_HEARTBEAT_SECONDS": "1",
        "DEKSDENFLOW_CODEX_WORKER_WATCH_SECONDS": "0.2",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deksdenflow_codex_worker",
        env=env,
        stdout=log.open("ab"),
        stderr=asyncio.subprocess.STDOUT,
    )


async def test_sigkill_mid_step_completes_the_step_exactly_once(orchestra: Orchestra, tmp_path: Path) -> None:
    o = orchestra
    o.write_script(protocol_script(exec_delay=4))
    log = tmp_path / "workers.log"
    first = await start_worker_process(o, "worker-a", log)
    second: asyncio.subprocess.Process | None = None
    try:
        async with o.system.admin() as api:
            project = await register(api, o)
            run = await planned_protocol(api, project["id"])
            assert run["status"] == "planned", log.read_text()[-3000:]
            await action(api, f"/protocols/{run['id']}/actions/run_next_step")
            await wait_for(
                api, f"/protocols/{run['id']}/steps", lambda b: b["data"][0]["status"] == "completed"
            )
            await action(api, f"/protocols/{run['id']}/actions/run_next_step")
            await wait_for(
                api,
                f"/protocols/{run['id']}/steps",
                lambda b: b["data"][1]["owner"] == "worker-a",
                what="worker-a owns step 01",
            )
            first.send_signal(signal.SIGKILL)  # mid-agent: nothing committed yet
            await first.wait()
            second = await start_worker_process(o, "worker-b", log)
            steps = await wait_for(
                api,
                f"/protocols/{run['id']}/steps",
                lambda b: b["data"][1]["status"] == "completed",
                within=60,
                what="step 01 completed by worker-b",
            )
            assert steps["data"][1]["owner"] in (None, "worker-b")
            name = run["protocol_name"]
            assert await o.origin.count(name, "protocol-0001/01") == 1
            events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
            step_id = steps["data"][1]["id"]

            def of(kind: str) -> list[dict[str, Any]]:
                return [e for e in events if e["type"] == kind and e["payload"].get("step_run_id") == step_id]

            assert len(of("protocol_run.step_execution_completed")) == 1
            assert len(of("protocol_run.step_completed")) == 1
            owners = [e["payload"]["worker_id"] for e in of("protocol_run.step_execution_started")]
            assert owners == ["worker-a", "worker-b"]

            await action(api, f"/protocols/{run['id']}/actions/run_next_step")
            await wait_for(api, f"/protocols/{run['id']}", lambda r: r["status"] == "completed", within=60)
            await action(api, f"/protocols/{run['id']}/actions/open_pr")
            await wait_for(api, f"/protocols/{run['id']}", lambda r: r["pr_url"] is not None)
            assert len(o.github.prs(FORGE_REPO)) == 1
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()


async def test_work_pushed_before_a_crash_is_recorded_not_redone(orchestra: Orchestra) -> None:
    """The worker died after pushing but before recording: the next one finds the commit by its trailer."""
    o = orchestra
    script = protocol_script()
    # Were the agent called again for step 01, the job would fail: the test proves it is not.
    script["exec"]["01-greeting.md"] = {"error": "permanent"}
    o.write_script(script)
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        project = await register(api, o)
        run = await planned_protocol(api, project["id"])
        await action(api, f"/protocols/{run['id']}/actions/run_next_step")
        steps = await wait_for(
            api, f"/protocols/{run['id']}/steps", lambda b: b["data"][0]["status"] == "completed"
        )
        step = steps["data"][1]
        name = run["protocol_name"]
        sha = await o.origin.commit(
            name,
            {"greeting.py": "def greet(name):\n    return name\n"},
            f"feat(greeting): Add greet() [protocol-0001/01]\n\nDone before the crash.\n\n"
            f"Deksdenflow-Job: exec/{step['id']}/0",
            parent=name,
        )
        await action(api, f"/protocols/{run['id']}/actions/run_next_step")
        done = await wait_for(
            api,
            f"/protocols/{run['id']}/steps",
            lambda b: b["data"][1]["status"] == "completed",
            what="recorded",
        )
        assert done["data"][1]["commit_sha"] == sha
        assert "Done before the crash." in (done["data"][1]["summary"] or "")
        assert await o.origin.count(name, "protocol-0001/01") == 1


async def test_a_plan_pushed_before_a_crash_is_recorded_with_what_decomposition_did(
    orchestra: Orchestra,
) -> None:
    """The worker died after pushing the decomposed plan but before recording it: the next one records the
    plan from the branch, with what decomposition did as the commit's trailer says."""
    o = orchestra
    script = protocol_script()
    script["planning"] = {"error": "permanent"}  # were the planner called again, planning would fail
    o.write_script(script)
    o.start_codex_worker(o.worker_settings())
    async with o.system.admin() as api:
        project = await register(api, o)
        response = await api.post(f"/projects/{project['id']}/protocols", json={"task_name": "Add greeting"})
        assert response.status_code == 201, response.text
        run_id, name = response.json()["id"], response.json()["protocol_name"]
        root = f".protocols/{name}"
        spec = [{k: v for k, v in f.items() if k != "content"} for f in PLAN["step_files"]]
        files = {
            f"{root}/plan.md": PLAN["plan_md"],
            f"{root}/context.md": PLAN["context_md"],
            f"{root}/log.md": PLAN["log_md"] + "\nDecomposition notes:\n- 02-docs.md: kept as planned\n",
            f"{root}/spec.json": json.dumps({"steps": spec}),
            **{f"{root}/{f['filename']}": f["content"] for f in PLAN["step_files"]},
        }
        await o.origin.commit(
            name,
            files,
            f"docs(protocol): plan {name} [protocol-0001/plan]\n\n3 steps planned for: Add greeting\n\n"
            f"Deksdenflow-Job: planning/{run_id}/1\n"
            "Deksdenflow-Decomposed: abcdef012345 refined=1 kept_as_planned=1",
        )
        await action(api, f"/protocols/{run_id}/actions/start")
        run = await wait_for(
            api, f"/protocols/{run_id}", lambda r: r["status"] in ("planned", "failed"), what="planning"
        )
        assert run["status"] == "planned", run
        events = (await get(api, f"/protocols/{run_id}/events?limit=100"))["data"]
        (plan,) = [e["payload"] for e in events if e["type"] == "protocol_run.planning_completed"]
        decomposed = (plan["decompose_prompt_version"], plan["steps_refined"], plan["steps_kept_as_planned"])
        assert decomposed == ("abcdef012345", 1, 1)
        assert await o.origin.count(name, "protocol-0001/plan") == 1
