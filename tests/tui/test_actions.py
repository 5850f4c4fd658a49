"""Every action on its key, as a person drives a run by hand (manual mode, plan approval required), with
a test worker recording the results; each answer on the message line, each refusal (409) with what the
run or step is now, in words."""

from __future__ import annotations

from deksdenflow_cli.tui.app import RunScreen, RunsScreen, Tui
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import QaVerdict
from textual.pilot import Pilot

from tests.api.conftest import System
from tests.api.helpers import as_worker, create_project
from tests.domain.builders import plan_steps
from tests.support import eventually
from tests.tui.support import column, keys, said, shown, tui, view


async def hear(app: Tui, pilot: Pilot[None], keys: tuple[str, ...], text: str) -> str:
    """Press ``keys``; wait until the message line says ``text`` (said anew, after the keys)."""
    view(app).message = ""
    await pilot.press(*keys)
    return await said(app, text)


async def test_every_action_on_its_key_and_the_refusals_in_words(system: System) -> None:
    async with system.admin() as admin:
        await create_project(admin, "demo", {"mode": "manual", "plan_approval": "required"})
    async with tui(system, "demo") as (app, pilot):
        await shown(app, RunsScreen)
        # c asks for the task of a new run; it is listed when its event arrives.
        await hear(app, pilot, ("c", *keys("Add login"), "enter"), "created 0001-add-login")
        await eventually(lambda: column(app, 1) == ["0001-add-login"], what="the new run listed")
        await hear(app, pilot, ("s",), "start: the run is planning")
        runs = view(app)
        assert isinstance(runs, RunsScreen)
        run_id = runs.runs[0]["id"]
        await as_worker(system.repo, run_id, cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(2)))
        await eventually(lambda: column(app, 2) == ["planned"], what="the plan made")

        await pilot.press("enter")
        await shown(app, RunScreen)
        # d asks why; the planner plans again.
        await hear(app, pilot, ("d", *keys("too big"), "enter"), "reject-plan: the run is planning")
        await as_worker(system.repo, run_id, cmd.RecordPlanningCompleted(attempt=2, steps=plan_steps(2)))
        await eventually(lambda: column(app, 2, "events")[-1] == "planning_completed", what="planned again")
        await hear(app, pilot, ("y",), "approve-plan: the run is planned")
        refused = await hear(app, pilot, ("y",), "Refused (409): approve-plan")
        assert refused.endswith("The run is planned: its plan is ready and no step is running."), refused

        await hear(app, pilot, ("p",), "pause: the run is paused")
        refused = await hear(app, pilot, ("n",), "Refused (409): next")
        assert "The run is paused: nothing runs until it is resumed." in refused
        await hear(app, pilot, ("r",), "resume: the run is planned")
        await hear(app, pilot, ("n",), "next: the run is running: its steps are under way.")
        await eventually(lambda: column(app, 2, "steps") == ["running", "pending"], what="step 0 running")
        # g on the second step: refused while the first runs; the step's and the run's status said.
        refused = await hear(app, pilot, ("down", "g"), "Refused (409): run-step 01-work-1.md")
        assert refused.endswith("finish it first. The run is running: its steps are under way."), refused
        refused = await hear(app, pilot, ("a",), "Refused (409): approve 01-work-1.md")
        assert "The step is pending: not run yet; the run is running" in refused, refused

        await as_worker(system.repo, run_id, cmd.RecordStepExecutionCompleted(step_run_id=steps(app)[0]))
        await eventually(lambda: column(app, 2, "steps")[0] == "needs_qa", what="step 0 done")
        heard = await hear(app, pilot, ("up", "u"), "qa 00-setup.md: the run is running")
        assert heard.endswith("the step is waiting for QA."), heard
        await as_worker(
            system.repo,
            run_id,
            cmd.RecordQaVerdict(step_run_id=steps(app)[0], qa_attempt=1, verdict=QaVerdict.FAIL),
        )
        await eventually(lambda: column(app, 2, "steps")[0] == "failed", what="QA failed the step")
        await hear(app, pilot, ("t",), "retry: the run is running")
        await as_worker(
            system.repo, run_id, cmd.RecordStepExecutionCompleted(step_run_id=steps(app)[0], attempt=1)
        )
        await eventually(lambda: column(app, 2, "steps")[0] == "needs_qa", what="step 0 done again")
        heard = await hear(app, pilot, ("a",), "approve 00-setup.md: the run is running")
        assert heard.endswith("the step is completed."), heard
        await hear(app, pilot, ("o",), "open-pr: the run is running")
        await hear(app, pilot, ("x",), "cancel: the run is cancelled")
        refused = await hear(app, pilot, ("t",), "Refused (409): retry")
        assert refused.endswith("The run is cancelled: it was stopped for good."), refused
        await eventually(lambda: column(app, 2, "steps") == ["completed", "cancelled"], what="all settled")


def steps(app: Tui) -> list[str]:
    screen = app.screen
    assert isinstance(screen, RunScreen)
    return [s["id"] for s in screen.steps]
