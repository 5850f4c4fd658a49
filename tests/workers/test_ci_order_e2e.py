"""CI webhooks as forges really send them, through the API and the git worker (real NATS, PostgreSQL, git).

* A late "in progress" of a CI run that already failed leaves the step failed (and the run blocked, with
  retry open), instead of setting it running for good.
* Without a forge token, one pipeline's success on a commit does not clear another's failure; the failing
  pipeline's own retry does.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.api.conftest import WEBHOOK_TOKEN, System
from tests.webhooks.payloads import load_json
from tests.workers.conftest import Orchestra
from tests.workers.flow import action, get
from tests.workers.scripts import protocol_script
from tests.workers.test_ci_loop import _executed, _github, _processed, _step


async def _reported(api: httpx.AsyncClient, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The payloads of the run's ``protocol_run.ci_reported`` events, oldest first."""
    body = await get(api, f"/events?project_id={run['project_id']}&type=protocol_run.ci_reported&limit=100")
    return [e["payload"] for e in body["data"]]


def _workflow_run(name: str, sha: str, status: str, conclusion: str | None, updated: str) -> bytes:
    data = load_json("github_workflow_run_completed_failure", branch=name, sha=sha)
    data["action"] = "completed" if status == "completed" else status
    data["workflow_run"] |= {"status": status, "conclusion": conclusion, "updated_at": updated}
    return json.dumps(data).encode()


async def test_a_late_in_progress_after_the_failure_leaves_the_step_failed_and_retry_works(
    orchestra: Orchestra,
) -> None:
    o = orchestra
    o.write_script(protocol_script())
    o.start_codex_worker(o.worker_settings(auto_qa_after_exec=False))
    async with o.system.admin() as api:
        run, sha = await _executed(o, api)
        name = run["protocol_name"]
        queued = _workflow_run(name, sha, "queued", None, "2025-01-10T10:02:00Z")
        in_progress = _workflow_run(name, sha, "in_progress", None, "2025-01-10T10:03:00Z")
        failed = _workflow_run(name, sha, "completed", "failure", "2025-01-10T10:07:00Z")

        await _github(o.system, "workflow_run", queued)
        await _github(o.system, "workflow_run", failed)
        await _step(api, run["id"], 1, "failed", "CI failure")
        await _processed(api, run, 2)
        # GitHub delivers the "in progress" of the same run late, after its failure.
        await _github(o.system, "workflow_run", in_progress)
        processed = await _processed(api, run, 3)
        assert processed[-1]["outcome"] == "WEBHOOK_OUTCOME_NO_EFFECT", processed[-1]
        steps = (await get(api, f"/protocols/{run['id']}/steps"))["data"]
        assert steps[1]["status"] == "failed"
        assert (await get(api, f"/protocols/{run['id']}"))["status"] == "blocked"
        reported = await _reported(api, run)
        assert [e.get("stale", False) for e in reported] == [False, False, True]

        # The run is not wedged: retry runs the step again.
        await action(api, f"/protocols/{run['id']}/actions/retry_latest")
        await _step(api, run["id"], 1, "needs_qa", "the retried step executed again")


async def _gitlab(system: System, body: bytes) -> dict[str, Any]:
    async with system.client() as client:
        response = await client.post(
            "/webhooks/gitlab",
            content=body,
            headers={
                "X-Gitlab-Event": "Pipeline Hook",
                "X-Gitlab-Token": WEBHOOK_TOKEN,
                "Idempotency-Key": str(uuid.uuid4()),
                "Content-Type": "application/json",
            },
        )
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    assert answer["status"] == "accepted", answer
    return answer


def _pipeline(name: str, sha: str, pipeline_id: int, source: str, status: str, finished: str) -> bytes:
    data = load_json("gitlab_pipeline_failed", branch=name, sha=sha)
    data["object_attributes"] |= {"id": pipeline_id, "source": source, "status": status}
    data["builds"] = [{"id": pipeline_id * 10, "status": status, "finished_at": finished}]
    return json.dumps(data).encode()


async def test_without_a_forge_token_one_pipelines_success_does_not_clear_anothers_failure(
    orchestra: Orchestra,
) -> None:
    o = orchestra
    o.write_script(protocol_script())
    o.start_codex_worker(o.worker_settings(auto_qa_after_exec=False))
    async with o.system.admin() as api:
        # A GitLab project: the git worker holds no GitLab token, so nothing confirms a success.
        run, sha = await _executed(o, api, ci_provider="gitlab")
        name = run["protocol_name"]
        await _gitlab(o.system, _pipeline(name, sha, 501, "push", "failed", "2025-01-10 10:06:00 UTC"))
        await _step(api, run["id"], 1, "failed", "the push pipeline failed")
        await _gitlab(
            o.system, _pipeline(name, sha, 502, "merge_request_event", "success", "2025-01-10 10:08:00 UTC")
        )
        processed = await _processed(api, run, 2)
        assert processed[-1]["outcome"] == "WEBHOOK_OUTCOME_NO_EFFECT", processed[-1]
        assert (await get(api, f"/protocols/{run['id']}/steps"))["data"][1]["status"] == "failed"
        assert (await get(api, f"/protocols/{run['id']}"))["status"] == "blocked"
        reported = await _reported(api, run)
        assert reported[-1]["held_by"] == "pipeline:push"

        # The failing pipeline itself is retried and passes: nothing fails on the commit any more.
        await _gitlab(o.system, _pipeline(name, sha, 501, "push", "success", "2025-01-10 10:20:00 UTC"))
        await _step(api, run["id"], 1, "completed", "the push pipeline's retry passed")
        assert (await get(api, f"/protocols/{run['id']}"))["status"] == "running"
