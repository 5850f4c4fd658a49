"""`/` filters the rows as you type, `:` runs a command, `?` shows every key and command; a project
token sees its project alone."""

from __future__ import annotations

import re

from deksdenflow_cli.tui.app import (
    RUN_ACTIONS,
    STEP_ACTIONS,
    HelpScreen,
    ProjectsScreen,
    RunScreen,
    RunsScreen,
    help_text,
)

from tests.api.conftest import System
from tests.api.helpers import create_project, create_protocol
from tests.support import eventually
from tests.tui.support import column, command, keys, said, shown, snapshot, tui, view


async def test_filter_commands_and_help(system: System) -> None:
    async with system.admin() as admin:
        demo = await create_project(admin, "demo")
        shop = await create_project(admin, "shop")
        await create_project(admin, "docs")
        await create_protocol(admin, demo["id"], "Add login page")
        await create_protocol(admin, demo["id"], "Write the docs")
    async with tui(system) as (app, pilot):
        assert column(app, 0) == ["demo", "shop", "docs"]
        # `/`: only the rows with what is typed, as it is typed; Enter keeps it, Esc clears it.
        await pilot.press("slash", *keys("sh"))
        await eventually(lambda: column(app, 0) == ["shop"], what="the rows with 'sh'")
        await pilot.press("backspace", "backspace")
        await eventually(lambda: len(column(app, 0)) == 3, what="every row again")
        await pilot.press(*keys("doc"), "enter")
        await eventually(lambda: column(app, 0) == ["docs"], what="the rows with 'doc'")
        assert view(app).sub_title == "projects  /doc"
        await pilot.press("escape")
        assert column(app, 0) == ["demo", "shop", "docs"]

        # `:`: commands, by name; what goes wrong is said.
        await pilot.press("colon", *keys("project demo"), "enter")
        await shown(app, RunsScreen)
        await command(app, pilot, "filter docs")
        assert column(app, 1) == ["0002-write-the-docs"]
        await command(app, pilot, "run demo/1")
        await shown(app, RunScreen)
        assert view(app).sub_title == "run 0001-add-login-page"
        await command(app, pilot, "fly away")
        await said(app, "unknown command :fly (? lists them)")
        await command(app, pilot, "run demo/9")
        await said(app, "run: no protocol 'demo/9'")
        assert isinstance(app.screen, RunScreen), "no such run: the screen stays"
        await command(app, pilot, "projects")
        await eventually(lambda: isinstance(app.screen, ProjectsScreen), what="back to the projects")

        # `?`: every key and command, from the tables the screens bind.
        await pilot.press("question_mark")
        await eventually(lambda: isinstance(app.screen, HelpScreen), what="the help")
        text = help_text()
        for key, _, name, what in (*RUN_ACTIONS, *STEP_ACTIONS):
            assert re.search(rf"(?m)^  {key} +:{name} +{re.escape(what)}$", text), name
        await snapshot(app, pilot, "help")
        await pilot.press("escape")
        await eventually(lambda: isinstance(app.screen, ProjectsScreen), what="the help closed")
        await command(app, pilot, "quit")
        await eventually(lambda: not app.is_running, what="the app to end")
    # A project token sees its project alone.
    async with tui(system, token=shop["project_token"]) as (app, _):
        assert column(app, 0) == ["shop"]
