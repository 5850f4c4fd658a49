"""Projects → runs → a run → a step's QA reports, each read from the API and changed by the events the
stream brings (waited on, never slept on); the SVG snapshots of the main screens."""

from __future__ import annotations

from deksdenflow_cli.tui.app import QaScreen, RunScreen, RunsScreen
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import QaVerdict

from tests.api.conftest import System
from tests.api.helpers import as_worker, create_project, create_protocol, planned
from tests.support import eventually
from tests.tui.support import column, rows, said, shown, snapshot, tui, view


async def test_projects_runs_a_run_and_its_qa_reports_as_they_change(system: System) -> None:
    async with system.admin() as admin:
        demo = await create_project(admin, "demo")
        await create_project(admin, "shop")
        run_id, steps, _ = await planned(admin, system.repo, demo["id"], steps=2)
        await create_protocol(admin, demo["id"], "Write the docs")
    async with tui(system) as (app, pilot):
        assert column(app, 0) == ["demo", "shop"]
        assert rows(app)[0][:4] == ["demo", "registered", "", "main"]
        await snapshot(app, pilot, "projects")

        await pilot.press("enter")
        await shown(app, RunsScreen)
        assert column(app, 1) == ["0001-add-login-page", "0002-write-the-docs"]
        assert column(app, 2) == ["planned", "pending"]
        # A run created elsewhere appears, pushed by its event.
        async with system.admin() as admin:
            await create_protocol(admin, demo["id"], "Tidy the logs")
        await eventually(lambda: len(rows(app)) == 3, what="the new run listed")
        assert column(app, 1)[2] == "0003-tidy-the-logs"
        await snapshot(app, pilot, "runs")

        await pilot.press("enter")  # the highlighted (first) run
        run = await shown(app, RunScreen)
        assert isinstance(run, RunScreen)
        assert column(app, 1, "steps") == ["00-setup.md", "01-work-1.md"]
        assert column(app, 2, "events") == ["created", "planning_requested", "planning_completed"]
        assert "The run is planned" in str(run.query_one("#summary").render())

        # A worker takes the first step, does it, records usage: the timeline and events follow.
        await pilot.press("n")
        await said(app, "next: the run is running")
        await as_worker(
            system.repo, run_id, cmd.RecordStepExecutionStarted(step_run_id=steps[0], worker_id="w1")
        )
        await eventually(lambda: column(app, 3, "steps")[0] == "1", what="the attempt counted")
        await as_worker(
            system.repo,
            run_id,
            cmd.RecordStepExecutionCompleted(
                step_run_id=steps[0],
                commit_sha="1f2e3d4c5b6a",
                engine_id="codex",
                model="gpt-5.1-codex",
                summary="scaffolded the app",
            ),
        )
        await eventually(lambda: column(app, 2, "steps")[0] == "needs_qa", what="the step done, QA next")
        assert rows(app, "steps")[0][5:] == [
            "codex",
            "gpt-5.1-codex",
            "",
            rows(app, "steps")[0][8],
            "1f2e3d4c5b",
        ]
        assert rows(app, "steps")[0][8].strip().endswith("s"), "how long it took"
        assert column(app, 2, "events")[-1] == "step_execution_completed"
        assert rows(app, "events")[-1][5] == "scaffolded the app"
        await snapshot(app, pilot, "run")

        # QA on the step, its verdict recorded: the report is there, in Markdown.
        await pilot.press("u")
        await said(app, "qa 00-setup.md")
        await as_worker(
            system.repo,
            run_id,
            cmd.RecordQaVerdict(
                step_run_id=steps[0],
                qa_attempt=1,
                verdict=QaVerdict.PASS,
                summary="The scaffold builds and its tests pass.",
                warnings=("no README yet",),
                engine_id="codex",
                model="gpt-5.1-codex",
            ),
        )
        await eventually(lambda: column(app, 7, "steps")[0] == "pass", what="the verdict in the timeline")
        await pilot.press("v")
        qa = await shown(app, QaScreen)
        assert "Attempt 1: PASS" in qa.query_one("#report").source  # type: ignore[attr-defined]
        assert "no README yet" in qa.query_one("#report").source  # type: ignore[attr-defined]
        await snapshot(app, pilot, "qa")
        await pilot.press("escape")
        assert view(app) is run
