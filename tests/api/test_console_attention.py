"""The attention board's rules, read through the real API (no browser): what needs a person now — an
onboarding that failed, a QA failure, a job being retried, a budget near its limit, a plan to approve."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from deksdenflow_api.console.attention import collect
from deksdenflow_api.console.client import Answer
from deksdenflow_core.aggregates import PROJECT
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import JobRetry, QaVerdict
from deksdenflow_core.eventstore import AppendMeta

from tests.api.conftest import System
from tests.api.helpers import as_worker, create_project, planned


class HttpApi:
    """The board's reads over HTTP, as the console makes them in-process."""

    def __init__(self, client: httpx.AsyncClient, seq: int) -> None:
        self.client = client
        self.fresh = {"X-Min-Event-Sequence": str(seq)}

    async def get(self, path: str, **params: Any) -> Answer:
        response = await self.client.get(path, params=params, headers=self.fresh)
        return Answer(response.status_code, response.json())


def meta(aggregate_id: str) -> AppendMeta:
    return AppendMeta(
        source="tests", actor="worker:test", correlation_id=aggregate_id, causation_id=uuid.uuid4().hex
    )


async def test_the_board_lists_what_needs_a_person(system: System) -> None:
    async with system.admin() as admin:
        broken = await create_project(admin, "broken")
        await system.repo.execute(PROJECT, broken["id"], pcmd.RequestOnboarding(), meta(broken["id"]))
        failed = pcmd.RecordOnboardingFailed(attempt=1, reason="repository not found")
        await system.repo.execute(PROJECT, broken["id"], failed, meta(broken["id"]))

        project = await create_project(admin, "demo")
        run_id, steps, _ = await planned(admin, system.repo, project["id"], steps=2)
        await admin.post(f"/steps/{steps[0]}/actions/run")
        await as_worker(
            system.repo, run_id, cmd.RecordStepExecutionCompleted(step_run_id=steps[0], commit_sha="a")
        )
        await admin.post(f"/steps/{steps[0]}/actions/run_qa")
        await as_worker(
            system.repo,
            run_id,
            cmd.RecordQaVerdict(
                step_run_id=steps[0], qa_attempt=1, verdict=QaVerdict.FAIL, summary="docs missing"
            ),
        )
        other, other_steps, _ = await planned(admin, system.repo, project["id"], steps=1)
        await admin.post(f"/steps/{other_steps[0]}/actions/run")
        retry = JobRetry(
            job="protocol_run.step_execution_requested", request_event_id="e1", delivery=2, max_deliveries=10,
            error="engine: 503", failed_at_ms=1_000, next_try_at_ms=6_000,
        )  # fmt: skip
        await as_worker(system.repo, other, cmd.RecordJobRetry(retry=retry))
        seq = await as_worker(
            system.repo,
            other,
            cmd.RecordBudgetWarning(scope="protocol", kind="cost", share=0.8, spent=820_000, limit=1_000_000),
        )
        items = await collect(HttpApi(admin, seq))

    by_kind = {i.kind: i for i in items}
    assert by_kind["onboarding"].title == "broken: onboarding failed"
    assert by_kind["onboarding"].detail == "repository not found"
    assert by_kind["qa"].title.endswith("QA failed on 00-setup.md")
    assert by_kind["retrying"].detail.startswith("try 2 of 10 failed: engine: 503")
    assert by_kind["budget-warning"].title.endswith("protocol budget near its limit")
    assert by_kind["budget-warning"].detail.startswith("80% of its cost spent")
    kinds = [i.kind for i in items]
    assert kinds.index("qa") < kinds.index("retrying") < kinds.index("budget-warning")
