"""The CI loop with both workers: webhooks moving the right step, merges, cancelled runs, the CI callback
script run for real, the fix-CI loop with the real Codex CLI and a failing job log served by the fake
GitHub, and reconciliation when no webhook ever arrives."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import shlex
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from deksdenflow_core.aggregates import PROTOCOL_RUN, Repository
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import ExecutionReason
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.eventstore import AppendMeta
from deksdenflow_fakes.responses_api import (
    CODEX_TEST_MODEL,
    FakeResponsesApi,
    Turn,
    Usage,
    add_file,
    apply_patch,
    codex_provider_args,
    codex_provider_env,
    output_schema,
    tool_outputs,
    user_text,
)
from deksdenflow_git import Git, GitIdentity, MirrorCache
from deksdenflow_git_ci_worker.jobs.ci import CiHandler
from deksdenflow_git_ci_worker.kit import provider_of
from deksdenflow_git_ci_worker.settings import GitCiSettings
from deksdenflow_git_ci_worker.worker import GitCiWorker, make_scheduler
from pydantic import SecretStr

from tests.api.conftest import WEBHOOK_TOKEN, System
from tests.domain.builders import plan_steps
from tests.engines.conftest import AGENTS_BIN
from tests.git.origin import ISOLATED_GIT_ENV
from tests.support import eventually
from tests.webhooks.payloads import load
from tests.workers.conftest import FORGE_REPO, GITHUB_TOKEN, Orchestra
from tests.workers.flow import action, get, planned_protocol, register, wait_for
from tests.workers.scripts import PASS, PLAN, protocol_script

REPORT_SH = (
    Path(__file__).parents[2]
    / "services/git_ci_worker/src/deksdenflow_git_ci_worker/starter/scripts/ci/report.sh"
)


async def _github(system: System, event: str, body: bytes) -> dict[str, Any]:
    async with system.client() as client:
        response = await client.post(
            "/webhooks/github",
            content=body,
            headers={
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": "sha256="
                + hmac.new(WEBHOOK_TOKEN.encode(), body, hashlib.sha256).hexdigest(),
            },
        )
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _report_sh(env: dict[str, str], state: str) -> tuple[int, str]:
    """Run the CI callback as a CI job would: ``sh scripts/ci/report.sh <state>``."""
    process = await asyncio.create_subprocess_exec(
        "/bin/sh",
        str(REPORT_SH),
        state,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return await process.wait(), output.decode()


async def _step(
    api: httpx.AsyncClient, run_id: str, index: int, status: str, what: str = ""
) -> dict[str, Any]:
    steps = await wait_for(
        api,
        f"/protocols/{run_id}/steps",
        lambda b: b["data"][index]["status"] == status,
        what=what or f"step {index} {status}",
    )
    step: dict[str, Any] = steps["data"][index]
    return step


async def _processed(api: httpx.AsyncClient, run: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The run's project's ``webhook.processed`` events, once there are ``n``."""
    body = await wait_for(
        api,
        f"/events?project_id={run['project_id']}&type=webhook.processed&limit=100",
        lambda b: len(b["data"]) >= n,
        what=f"{n} deliveries processed",
    )
    return [e["payload"] for e in body["data"]]


async def _executed(o: Orchestra, api: httpx.AsyncClient, **project: Any) -> tuple[dict[str, Any], str]:
    """A planned protocol whose setup step is done and whose greeting step waits on CI (needs_qa)."""
    registered = await register(api, o, **project)
    run = await planned_protocol(api, registered["id"])
    await action(api, f"/protocols/{run['id']}/actions/run_next_step")
    await _step(api, run["id"], 0, "completed")
    await action(api, f"/protocols/{run['id']}/actions/run_next_step")
    step = await _step(api, run["id"], 1, "needs_qa")
    return run, step["commit_sha"]


async def test_ci_webhooks_move_the_step_whose_commit_ran_and_a_merge_completes(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(protocol_script())
    o.start_codex_worker(o.worker_settings(auto_qa_after_exec=False))
    async with o.system.admin() as api:
        run, sha = await _executed(o, api)
        name = run["protocol_name"]
        setup_sha = (await get(api, f"/protocols/{run['id']}/steps"))["data"][0]["commit_sha"]

        await _github(o.system, "check_run", load("github_check_run_in_progress", branch=name, sha=sha))
        await _step(api, run["id"], 1, "running", "CI running")
        failed = await _github(
            o.system, "workflow_run", load("github_workflow_run_completed_failure", branch=name, sha=sha)
        )
        assert failed["protocol_run_id"] == run["id"]
        await _step(api, run["id"], 1, "failed", "CI failure")
        blocked = await get(api, f"/protocols/{run['id']}")
        assert blocked["status"] == "blocked"
        assert "CI failure" in blocked["blocked_reason"]
        # The setup step (updated earlier) was not touched: the result applied to the commit CI ran.
        assert (await get(api, f"/protocols/{run['id']}/steps"))["data"][0]["status"] == "completed"
        assert setup_sha != sha

        # check_suite success (the fake GitHub has no other checks for it: confirmed) passes the step.
        await _github(
            o.system, "check_suite", load("github_check_suite_completed_success", branch=name, sha=sha)
        )
        await _step(api, run["id"], 1, "completed", "CI success")
        assert (await get(api, f"/protocols/{run['id']}"))["status"] == "running"
        processed = await _processed(api, run, 3)
        assert [p["outcome"] for p in processed] == [
            "WEBHOOK_OUTCOME_APPLIED",
            "WEBHOOK_OUTCOME_APPLIED",
            "WEBHOOK_OUTCOME_APPLIED",
        ]

        await _github(
            o.system, "pull_request", load("github_pull_request_closed_merged", branch=name, sha=sha)
        )
        done = await wait_for(api, f"/protocols/{run['id']}", lambda r: r["status"] == "completed")
        assert done["pr_merged"] is True
        events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
        assert [e["type"] for e in events].count("protocol_run.ci_reported") == 3


async def test_a_cancelled_run_ignores_ci(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(protocol_script())
    o.start_codex_worker(o.worker_settings(auto_qa_after_exec=False))
    async with o.system.admin() as api:
        run, sha = await _executed(o, api)
        await action(api, f"/protocols/{run['id']}/actions/cancel")
        await _github(
            o.system,
            "workflow_run",
            load("github_workflow_run_completed_success", branch=run["protocol_name"], sha=sha),
        )
        (processed,) = await _processed(api, run, 1)
        assert processed["outcome"] == "WEBHOOK_OUTCOME_REJECTED"
        assert "cancelled" in processed["detail"]
        after = await get(api, f"/protocols/{run['id']}")
        assert after["status"] == "cancelled"
        steps = (await get(api, f"/protocols/{run['id']}/steps"))["data"]
        assert steps[1]["status"] == "cancelled"


async def test_report_sh_reports_ci_to_the_running_api(orchestra: Orchestra, tmp_path: Path) -> None:
    o = orchestra
    o.write_script(protocol_script())
    o.start_codex_worker(o.worker_settings(auto_qa_after_exec=False))
    async with o.system.admin() as api:
        run, sha = await _executed(o, api)
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "DEKSDENFLOW_API_BASE": o.system.base_url,
            "DEKSDENFLOW_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "DEKSDENFLOW_REPORT_STRICT": "1",
            "GITHUB_ACTIONS": "true",
            "GITHUB_REF_NAME": run["protocol_name"],
            "GITHUB_SHA": sha,
            "GITHUB_REPOSITORY": FORGE_REPO,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "4242",
        }
        code, output = await _report_sh(env, "failure")
        assert code == 0, output
        await _step(api, run["id"], 1, "failed", "reported failure")
        blocked = await get(api, f"/protocols/{run['id']}")
        assert "actions/runs/4242" in blocked["blocked_reason"]
        # A wrong secret is refused by the API: the strict script fails.
        code, output = await _report_sh({**env, "DEKSDENFLOW_WEBHOOK_TOKEN": "wrong"}, "success")
        assert code == 1
        assert "401" in output
        code, output = await _report_sh(env, "success")
        assert code == 0, output
        await _step(api, run["id"], 1, "completed", "reported success")


# --- the fix-CI loop with the real Codex CLI -------------------------------------------------------------

USAGE = Usage(input_tokens=500, cached_input_tokens=0, output_tokens=50, reasoning_output_tokens=0)
FAILING_LOG = "collected 3 items\ntests/test_greeting.py F\nE   AssertionError: greet('bob') == 'hi bob'\n"


def model(call: Mapping[str, Any]) -> Turn:
    props = (output_schema(call) or {}).get("properties", {})
    if "plan_md" in props:
        return Turn.json(PLAN, usage=USAGE)
    if set(props) == {"content"}:
        return Turn.json({"content": "# Refined\n\n1. Do it.\n"}, usage=USAGE)
    if "verdict" in props:
        return Turn.json(PASS, usage=USAGE)
    step = re.search(r"You execute step `([^`]+)`", user_text(call))
    assert step is not None
    fix = re.search(r"This attempt is CI fix (\d+)", user_text(call))
    path = f"notes/{step.group(1)}-{fix.group(1) if fix else 0}"
    if not tool_outputs(call):
        return Turn.patch(apply_patch(add_file(path, "done\n")), usage=USAGE)
    return Turn.message(f"Change {path}\n\nDone.", usage=USAGE)


async def test_fix_ci_loop_feeds_the_log_to_the_agent_until_the_budget_stops_it(orchestra: Orchestra) -> None:
    o = orchestra
    with FakeResponsesApi(handler=model) as fake:
        settings = o.worker_settings(
            codex_bin=str(AGENTS_BIN / "codex"),
            codex_args=shlex.join(codex_provider_args(fake)),
            default_engine="codex",
            scripted_script=None,
            auto_qa_after_exec=False,
        )
        o.start_codex_worker(settings, codex_env=codex_provider_env(fake))
        engines = dict.fromkeys(("planning", "decompose", "exec", "qa"), "codex")
        models = dict.fromkeys(("planning", "decompose", "exec", "qa"), CODEX_TEST_MODEL)
        async with o.system.admin() as api:
            run, sha = await _executed(
                o, api, default_engines=engines, default_models=models, ci_policy={"fix_attempts": 1}
            )
            name = run["protocol_name"]
            o.github.set_ci(FORGE_REPO, sha, state="failure", job_name="pytest", log=FAILING_LOG, branch=name)
            await _github(
                o.system, "workflow_run", load("github_workflow_run_completed_failure", branch=name, sha=sha)
            )

            # The git worker fetched the failing job's log; the agent's next prompt carries it.
            fixed = await wait_for(
                api,
                f"/protocols/{run['id']}/steps",
                lambda b: b["data"][1]["status"] == "needs_qa" and b["data"][1]["commit_sha"] != sha,
                within=90,
                what="the CI fix committed",
            )
            fix_prompts = [c for c in fake.calls if "This attempt is CI fix 1" in user_text(c)]
            assert fix_prompts, "the fix was asked of the agent"
            prompt = user_text(fix_prompts[0])
            assert "AssertionError: greet('bob') == 'hi bob'" in prompt
            assert "Failed job: pytest" in prompt
            assert "/actions/runs/" in prompt
            new_sha = fixed["data"][1]["commit_sha"]
            assert fixed["data"][1]["retries"] == 1

            # CI fails again on the fix: the budget (1) is spent, the run is blocked with the reason.
            o.github.set_ci(
                FORGE_REPO, new_sha, state="failure", job_name="pytest", log=FAILING_LOG, branch=name
            )
            await _github(
                o.system,
                "workflow_run",
                load("github_workflow_run_completed_failure", branch=name, sha=new_sha),
            )
            blocked = await wait_for(api, f"/protocols/{run['id']}", lambda r: r["status"] == "blocked")
            assert "fix budget is spent" in blocked["blocked_reason"]
            assert not [c for c in fake.calls if "This attempt is CI fix 2" in user_text(c)]
            events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
            requested = [e for e in events if e["type"] == "protocol_run.step_execution_requested"]
            assert [e["payload"]["reason"] for e in requested][-1] == "EXECUTION_REASON_CI_FIX"
            assert [e["type"] for e in events].count("protocol_run.ci_fix_requested") == 1


# --- reconciliation ---------------------------------------------------------------------------------------


async def test_reconciliation_completes_the_step_when_no_webhook_arrives(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(protocol_script())
    o.start_codex_worker(o.worker_settings(auto_qa_after_exec=False))
    async with o.system.admin() as api:
        run, sha = await _executed(o, api)
        settings = GitCiSettings(
            worker_id="reconciler-test",
            home=o.home / "reconciler",
            github_token=SecretStr(GITHUB_TOKEN),
            github_api_url=o.github.api_url,
            reconcile_interval_seconds=0.2,
            reconcile_min_age_seconds=0,
            requeue_after_seconds=3600,
        )
        git = Git(identity=GitIdentity("t", "t@example.com"), env=ISOLATED_GIT_ENV)
        worker = GitCiWorker(
            o.system.store, o.system.store_nc, settings, MirrorCache(o.home / "reconciler" / "git", git), git
        )
        repo = Repository(o.system.store)
        reconciler = make_scheduler(
            repo,
            o.system.store,
            o.system.db_url,
            settings,
            CiHandler(repo, settings, worker._forge, provider_of),
            worker._forge,
        )
        # CI is still running on GitHub: nothing to report yet.
        ci_run = o.github.set_ci(FORGE_REPO, sha, state="running", branch=run["protocol_name"])
        first = await reconciler.round()
        assert first.elected
        assert (first.ci_checked, first.ci_reported) == (1, 0)
        # CI finished green and GitHub never told us: the next round completes the step.
        ci_run.status, ci_run.conclusion = "completed", "success"
        ci_run.jobs[0].status, ci_run.jobs[0].conclusion = "completed", "success"
        second = await reconciler.round()
        assert second.ci_reported == 1, second
        await _step(api, run["id"], 1, "completed", "reconciled CI success")
        third = await reconciler.round()
        assert third.ci_reported == 0  # taken once


async def test_reconciliation_requeues_a_request_no_worker_will_answer(orchestra: Orchestra) -> None:
    o = orchestra
    async with o.system.admin() as api:
        project = await register(api, o)
        created = await api.post(f"/projects/{project['id']}/protocols", json={"task_name": "Lost work"})
        run_id = created.json()["id"]
    repo = o.system.repo
    meta = AppendMeta(source="test", actor="test", causation_id=str(uuid.uuid4()))
    plan = plan_steps(2)
    await repo.execute(PROTOCOL_RUN, run_id, cmd.StartProtocolRun(), meta)
    await repo.execute(PROTOCOL_RUN, run_id, cmd.RecordPlanningCompleted(attempt=1, steps=plan), meta)
    await repo.execute(PROTOCOL_RUN, run_id, cmd.RunNextStep(), meta)
    # A codex worker took the request and vanished without an answer (the message is gone, no result).
    js = o.system.store.jetstream()
    sub = await js.pull_subscribe(
        o.system.store.subjects.feed.of_type("protocol_run.step_execution_requested"),
        durable="codex_worker",
        stream=o.system.store.feed_stream,
    )
    for msg in await sub.fetch(1, timeout=5):
        await msg.ack_sync()
    settings = GitCiSettings(
        worker_id="reconciler-test",
        home=o.home / "reconciler",
        reconcile_interval_seconds=0.2,
        requeue_after_seconds=0.01,
    )
    handler = CiHandler(
        repo, settings, lambda *_: (_ for _ in ()).throw(AssertionError("no forge")), provider_of
    )
    reconciler = make_scheduler(repo, o.system.store, o.system.db_url, settings, handler, handler.forge)

    async def requeued() -> bool:
        done = await reconciler.round()
        return done.requeued == 1

    await eventually(requeued, within=15, what="the lost request requeued")
    state = (await repo.load(PROTOCOL_RUN, run_id)).state
    assert state.steps[0].executing
    events = (await o.system.store.load("protocol_run", run_id)).events
    reasons = [e.event.reason for e in events if isinstance(e.event, ev.StepExecutionRequested)]
    assert reasons == [ExecutionReason.RUN_NEXT_STEP, ExecutionReason.REQUEUE]
