"""What a person asks of a stuck project or run — why, what failed last, when the next try comes — and what
the agent calls cost, answered by the reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from deksdenflow_core.aggregates import PROJECT
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import JobRetry, Phase, TokenUsage
from deksdenflow_core.eventstore import AppendMeta

from tests.api.conftest import System
from tests.api.helpers import as_worker, create_project, create_protocol, planned

FAILED_AT_MS = 1_796_000_000_000  # 2026-11-30T…Z


def a_retry(job: str, error: str) -> JobRetry:
    return JobRetry(
        job=job,
        request_event_id=str(uuid.uuid4()),
        delivery=3,
        max_deliveries=10,
        error=error,
        failed_at_ms=FAILED_AT_MS,
        next_try_at_ms=FAILED_AT_MS + 15_000,
    )


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def test_a_retrying_project_says_why_and_when_the_next_try_comes(system: System) -> None:
    async with system.admin() as client:
        project = await create_project(client, "stuck")
        meta = AppendMeta(
            source="tests", actor="worker:test", correlation_id=project["id"], causation_id="c1"
        )
        await system.repo.execute(PROJECT, project["id"], pcmd.RequestOnboarding(), meta)
        notice = a_retry("project.onboarding_requested", "git ls-remote: Connection refused")
        meta2 = AppendMeta(
            source="tests", actor="worker:test", correlation_id=project["id"], causation_id="c2"
        )
        seq = (
            await system.repo.execute(PROJECT, project["id"], pcmd.RecordProjectJobRetry(retry=notice), meta2)
        ).appended.last_seq
        got = (
            await client.get(f"/projects/{project['id']}", headers={"X-Min-Event-Sequence": str(seq)})
        ).json()
        assert got["status"] == "onboarding"
        assert got["last_error"] == "git ls-remote: Connection refused"
        retry = got["retry"]
        assert retry["job"] == "project.onboarding_requested"
        assert (retry["delivery"], retry["max_deliveries"]) == (3, 10)
        assert retry["error"] == "git ls-remote: Connection refused"
        assert datetime.fromisoformat(retry["failed_at"]) == at(FAILED_AT_MS)
        assert datetime.fromisoformat(retry["next_try_at"]) == at(FAILED_AT_MS + 15_000)

        # it fails for good: the status says why, and nothing is retrying any more
        meta3 = AppendMeta(
            source="tests", actor="worker:test", correlation_id=project["id"], causation_id="c3"
        )
        failed = pcmd.RecordOnboardingFailed(attempt=1, reason="the remote refused every try")
        seq = (await system.repo.execute(PROJECT, project["id"], failed, meta3)).appended.last_seq
        got = (
            await client.get(f"/projects/{project['id']}", headers={"X-Min-Event-Sequence": str(seq)})
        ).json()
        assert got["status"] == "onboarding_failed"
        assert got["status_reason"] == "the remote refused every try"
        assert got["retry"] is None
        listed = (await client.get("/projects")).json()["data"]
        assert [p["status_reason"] for p in listed if p["id"] == project["id"]] == [
            "the remote refused every try"
        ]


async def test_a_retrying_run_shows_its_retry_until_the_job_delivers(system: System) -> None:
    async with system.admin() as client:
        project = await create_project(client)
        run_id, steps, _ = await planned(client, system.repo, project["id"], steps=1)
        await client.post(f"/steps/{steps[0]}/actions/run")
        notice = a_retry("protocol_run.step_execution_requested", "engine: 503 Service Unavailable")
        seq = await as_worker(system.repo, run_id, cmd.RecordJobRetry(retry=notice))
        got = (await client.get(f"/protocols/{run_id}", headers={"X-Min-Event-Sequence": str(seq)})).json()
        assert got["retry"]["job"] == "protocol_run.step_execution_requested"
        assert got["last_error"] == "engine: 503 Service Unavailable"
        assert got["waiting_for"] is None  # the codex worker has the step

        seq = await as_worker(
            system.repo, run_id, cmd.RecordStepExecutionFailed(step_run_id=steps[0], reason="gave up")
        )
        got = (await client.get(f"/protocols/{run_id}", headers={"X-Min-Event-Sequence": str(seq)})).json()
        assert got["retry"] is None
        assert got["status"] == "blocked"
        assert got["last_error"] == got["blocked_reason"] == "step 00-setup.md failed: gave up"


async def test_usage_sums_by_model_and_phase_and_a_project_token_sees_its_own(system: System) -> None:
    async with system.admin() as client:
        mine, other = await create_project(client, "mine"), await create_project(client, "other")
        run_a = (await create_protocol(client, mine["id"]))["id"]
        run_b = (await create_protocol(client, other["id"]))["id"]
        calls = [
            (run_a, "c1", Phase.PLANNING, "gpt-5", 100, 1_000),
            (run_a, "c2", Phase.EXEC, "gpt-5", 300, 2_500),
            (run_a, "c3", Phase.QA, "o4-mini", 50, 200),
            (run_b, "c4", Phase.EXEC, "gpt-5", 1_000, 9_000),
        ]
        seq = 0
        for run_id, call_id, phase, model, tokens, cost in calls:
            usage = cmd.RecordUsage(
                call_id=call_id,
                phase=phase,
                engine_id="codex",
                model=model,
                usage=TokenUsage(input_tokens=tokens, output_tokens=tokens // 10),
                cost_micro_usd=cost,
            )
            seq = await as_worker(system.repo, run_id, usage)
        fresh = {"X-Min-Event-Sequence": str(seq)}

        by_model = (await client.get("/usage", params={"project_id": mine["id"]}, headers=fresh)).json()
        assert by_model["group_by"] == "model"
        assert [(r["key"], r["calls"], r["input_tokens"], r["cost_micro_usd"]) for r in by_model["data"]] == [
            ("gpt-5", 2, 400, 3_500),
            ("o4-mini", 1, 50, 200),
        ]
        assert by_model["total"]["cost_micro_usd"] == 3_700
        assert by_model["total"]["cost_usd"] == 0.0037

        everything = (await client.get("/usage", params={"group_by": "project"})).json()
        assert {r["key"]: r["cost_micro_usd"] for r in everything["data"]} == {
            other["id"]: 9_000,
            mine["id"]: 3_700,
        }
        by_phase = (await client.get("/usage", params={"protocol_run_id": run_a, "group_by": "phase"})).json()
        assert {r["key"]: r["calls"] for r in by_phase["data"]} == {"planning": 1, "exec": 1, "qa": 1}

    async with system.client(**{"X-Project-Token": mine["project_token"]}) as token:
        own = (await token.get("/usage", params={"group_by": "project"})).json()
        assert [r["key"] for r in own["data"]] == [mine["id"]]
        refused = await token.get("/usage", params={"project_id": other["id"]})
        assert refused.status_code == 403
    async with system.admin() as client:
        bad = await client.get("/usage", params={"group_by": "project_id; DROP TABLE"})
        assert bad.status_code == 422
