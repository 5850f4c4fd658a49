"""The TUI headless under Textual's Pilot, pointed at a test system; what it shows, and its SVG snapshots.

A snapshot is the screen as ``App.export_screenshot`` draws it (Textual's own SVG), at a fixed terminal
size, with what changes from run to run masked: times of day, durations, ids, the API's port, and the
id Rich derives from the content. ``DEKSDENFLOW_UPDATE_SNAPSHOTS=1`` writes them anew (look at the diff).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from deksdenflow_cli import follow
from deksdenflow_cli.client import Client
from deksdenflow_cli.context import Context
from deksdenflow_cli.tui.app import Tui, View
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from tests.api.conftest import ADMIN_TOKEN, System
from tests.support import eventually

SIZE = (120, 32)
SNAPSHOTS = Path(__file__).parent / "snapshots"
MASKS = (
    (re.compile(r"terminal-\d+"), "terminal"),
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "hh:mm:ss"),
    (re.compile(r"\b\d{1,2}\.\ds\b"), "n.ns"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "x" * 32),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:port"),
)


@asynccontextmanager
async def tui(
    system: System, target: str | None = None, *, url: str | None = None, token: str = ADMIN_TOKEN
) -> AsyncIterator[tuple[Tui, Pilot[None]]]:
    """The app (as ``deksdenflow tui`` starts it), once its first screen has read its state."""
    client = Client(Context(url or system.base_url, token, "test"))
    try:
        app = Tui(client, await asyncio.to_thread(follow.head, client), target)
        async with app.run_test(size=SIZE) as pilot:
            await eventually(
                lambda: isinstance(app.screen, View) and app.screen.loads > 0,
                what="the TUI to show its first screen",
            )
            yield app, pilot
    finally:
        client.close()


def view(app: Tui) -> View:
    screen = app.screen
    assert isinstance(screen, View), screen
    return screen


async def shown(app: Tui, kind: type[View], what: str = "") -> View:
    """Wait until the app shows a screen of ``kind`` that has read its state."""
    await eventually(
        lambda: isinstance(app.screen, kind) and app.screen.loads > 0, what=what or f"a {kind.__name__}"
    )
    return view(app)


def rows(app: Tui, table: str | None = None) -> list[list[str]]:
    """The rows the current screen's table shows (its first table, or the one with this id)."""
    found = app.screen.query_one(f"#{table}", DataTable) if table else app.screen.query_one(DataTable)
    return [[str(cell) for cell in found.get_row_at(i)] for i in range(found.row_count)]


def column(app: Tui, index: int, table: str | None = None) -> list[str]:
    return [row[index] for row in rows(app, table)]


async def said(app: Tui, text: str) -> str:
    """Wait until the message line says ``text``; returns the whole line."""
    try:
        await eventually(lambda: text in view(app).message, what=f"the message line to say {text!r}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it says {view(app).message!r}") from None
    return view(app).message


async def command(app: Tui, pilot: Pilot[None], line: str) -> None:
    """`:` then the command: its text put in the prompt at once (typing each key costs a repaint)."""
    await pilot.press("colon")
    view(app).query_one("#prompt", Input).insert_text_at_cursor(line)
    await pilot.press("enter")


def keys(text: str) -> list[str]:
    """What to press to type ``text``."""
    return ["space" if c == " " else c for c in text]


def masked(svg: str) -> str:
    for pattern, replacement in MASKS:
        svg = pattern.sub(replacement, svg)
    return svg


async def snapshot(app: Tui, pilot: Pilot[None], name: str) -> None:
    """The screen equals ``snapshots/NAME.svg`` (masked); written anew with DEKSDENFLOW_UPDATE_SNAPSHOTS.

    Drawn again until it does (a table sizes its columns on a later refresh than the one that filled
    it), for 20 seconds at most; then what it drew last is left beside it, as NAME.actual.svg."""
    path = SNAPSHOTS / f"{name}.svg"
    if os.environ.get("DEKSDENFLOW_UPDATE_SNAPSHOTS"):  # what it draws twice in a row
        previous, current = "", masked(app.export_screenshot(title=name))
        while current != previous:
            await pilot.pause()
            previous, current = current, masked(app.export_screenshot(title=name))
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(current)
    assert path.exists(), f"no snapshot {path.name}: DEKSDENFLOW_UPDATE_SNAPSHOTS=1 writes it"
    expected = path.read_text()
    drawn = [""]

    async def looks_the_same() -> bool:
        await pilot.pause()
        drawn[0] = masked(app.export_screenshot(title=name))
        return drawn[0] == expected

    try:
        await eventually(looks_the_same, within=20, what=f"the screen to look as {path.name}")
    except AssertionError:
        seen = path.with_suffix(".actual.svg")
        seen.write_text(drawn[0])
        raise AssertionError(f"{name} does not look as {path} does: see {seen}") from None
