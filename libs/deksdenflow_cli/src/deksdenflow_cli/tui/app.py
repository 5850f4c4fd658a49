"""The Textual app of ``deksdenflow tui``: the public API through the CLI's client, live from its SSE stream.

Screens: projects → a project's runs → a run (summary, step timeline, events) → a step's QA reports;
``?`` help over any of them. Every screen reads its state from the API once it is shown and again when
an event that concerns it arrives on the stream; nothing polls on a timer. The app finds the position
of the last event first (``follow.head``), then the screens read their state, then the stream opens
from that position: no event is missed between the two, and no history is replayed. A dropped stream
resumes with ``Last-Event-ID`` (``follow.live``).

The client is the CLI's (synchronous httpx): each call runs in a thread, so the app's event loop never
waits on the network; the stream is read on the loop itself, so leaving the app closes it at once.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any, ClassVar, TypeVar, cast

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Markdown, Static

from deksdenflow_cli import follow, names
from deksdenflow_cli.client import Client
from deksdenflow_cli.exits import CliError
from deksdenflow_cli.tui import words
from deksdenflow_cli.why import why

T = TypeVar("T")
PAGE = 500

# (key, the API's action, the `:` command, what it does): the run's actions, on the highlighted run of a
# project's list or on the run shown.
RUN_ACTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("s", "start", "start", "start the run (planning first)"),
    ("p", "pause", "pause", "pause the run after what is running now"),
    ("r", "resume", "resume", "resume a paused run"),
    ("x", "cancel", "cancel", "cancel the run and its open steps"),
    ("n", "run_next_step", "next", "run the next pending step"),
    ("t", "retry_latest", "retry", "retry the latest failed or blocked step"),
    ("y", "approve_plan", "approve-plan", "approve the plan"),
    ("o", "open_pr", "open-pr", "open the pull request for the run's branch"),
)
REJECT_PLAN = ("d", "reject-plan", "reject the plan: :reject-plan REASON (the key asks for the reason)")
NEW_PROTOCOL = ("c", "new", "create a protocol run: :new TASK NAME (the key asks for the task)")
# The highlighted step's actions, on a run's screen.
STEP_ACTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("a", "approve", "approve", "approve the highlighted step"),
    ("g", "run", "run-step", "run the highlighted step (again, if it failed or is blocked)"),
    ("u", "run_qa", "qa", "run QA on the highlighted step"),
)
QA_REPORTS = ("v", "reports", "the highlighted step's QA reports (also Enter on the step)")
# The `:` commands every screen has.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("projects", "the list of projects"),
    ("project NAME", "a project's runs"),
    ("run PROJECT/NAME", "a run (by name, slug, number or id)"),
    ("filter TEXT", "only the rows with TEXT (as /); :filter alone shows all"),
    ("help", "keys and commands (as ?)"),
    ("quit", "leave (also q)"),
)


class Api:
    """The CLI's client, each call in a thread (the app's loop never waits on the network)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, endpoint: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(partial(self.client.call, endpoint, **kwargs))

    async def resolve(self, resolver: Callable[[Client, str], T], ref: str) -> T:
        """A name resolved by ``names`` (project, PROJECT/PROTOCOL)."""
        return await asyncio.to_thread(resolver, self.client, ref)

    async def all(self, endpoint: str, **path: str) -> list[dict[str, Any]]:
        """Every item of a listing, page by page."""
        items: list[dict[str, Any]] = []
        while True:
            page = await self.call(endpoint, params={"limit": PAGE, "offset": len(items)}, **path)
            items += page["data"]
            if len(page["data"]) < PAGE:
                return items


def cells(*values: object) -> list[Text]:
    """Table cells as plain text (an API value is never read as markup)."""
    return [Text("" if value is None else str(value)) for value in values]


def matches(needle: str, values: Iterable[object]) -> bool:
    return not needle or needle.lower() in " ".join(str(v) for v in values if v is not None).lower()


class View(Screen[None]):
    """What every screen has: its state read from the API (again when an event concerns it), a message
    line, the `:` and `/` prompt, `?` help and Escape back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("colon", "prompt('command')", "command", key_display=":"),
        Binding("slash", "prompt('filter')", "filter", key_display="/"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("escape", "back", "back", key_display="Esc"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = ""
        self.mode = ""  # what the prompt is open for: "command", "filter" or "" (closed)
        self.message = ""
        self.loads = 0  # state reads done (a test waits on these)
        self._loading = False
        self._again = False
        self._ready = False  # mounted: its widgets can be filled

    @property
    def tui(self) -> Tui:
        return cast(Tui, self.app)

    @property
    def api(self) -> Api:
        return self.tui.api

    def compose(self) -> ComposeResult:
        yield Header()
        yield from self.body()
        yield Static(id="message")
        yield Input(id="prompt", select_on_focus=False)
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self._ready = True
        self.reload()

    # --- state --------------------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the state again; while a read is on, one more follows it (a burst of events costs two)."""
        if not self._ready:
            return  # on_mount reads it
        if self._loading:
            self._again = True
            return
        self._loading = True
        self.run_worker(self._reload(), group="reload")

    async def _reload(self) -> None:
        try:
            while True:
                self._again = False
                try:
                    await self.load()
                except CliError as exc:
                    self.say(words.refusal(exc, "reading"), error=True)
                self.loads += 1
                if not self._again:
                    return
        finally:
            self._loading = False

    async def load(self) -> None:
        """Read this screen's state from the API and show it."""

    def show(self) -> None:
        """Show the state read (again after the filter changed)."""

    def appended(self, event: dict[str, Any]) -> None:
        """An event from the stream (the app hands each to every screen it has)."""

    # --- message line, prompt, help, back -----------------------------------------------------------

    def say(self, text: str, *, error: bool = False) -> None:
        self.message = text
        line = self.query_one("#message", Static)
        line.update(Text(text))
        line.set_class(error, "error")

    def action_prompt(self, mode: str, preset: str = "") -> None:
        prompt = self.query_one("#prompt", Input)
        self.mode = mode
        prompt.placeholder = "command (? lists them)" if mode == "command" else "show only rows with…"
        prompt.value = self.filter if mode == "filter" else preset
        prompt.add_class("open")
        prompt.focus()
        prompt.cursor_position = len(prompt.value)

    def close_prompt(self) -> None:
        self.mode = ""
        prompt = self.query_one("#prompt", Input)
        prompt.remove_class("open")
        prompt.value = ""
        self.focus_next(DataTable)

    @on(Input.Changed, "#prompt")
    def typed(self, event: Input.Changed) -> None:
        if self.mode == "filter":
            self.set_filter(event.value)

    @on(Input.Submitted, "#prompt")
    def submitted(self, event: Input.Submitted) -> None:
        mode = self.mode
        self.close_prompt()
        if mode == "command":  # in a worker: the screen goes on handling keys and events meanwhile
            self.run_worker(self.command(event.value), group="command")

    def set_filter(self, text: str) -> None:
        self.filter = text
        self.sub_title = f"{self.heading()}  /{text}" if text else self.heading()
        self.show()

    def heading(self) -> str:
        return ""

    def action_back(self) -> None:
        if self.mode:
            if self.mode == "filter":
                self.set_filter("")
            self.close_prompt()
        elif self.filter:
            self.set_filter("")
        elif isinstance(self.tui.screen_stack[-2], View):
            self.app.pop_screen()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    # --- commands -----------------------------------------------------------------------------------

    async def command(self, line: str) -> None:
        try:
            parts = shlex.split(line)
        except ValueError as exc:
            self.say(f":{line}: {exc}", error=True)
            return
        if not parts:
            return
        name, args = parts[0], parts[1:]
        handler = self.commands().get(name)
        if handler is None:
            self.say(f"unknown command :{name} (? lists them)", error=True)
            return
        try:
            await handler(args)
        except CliError as exc:
            self.say(words.refusal(exc, name), error=True)

    def commands(self) -> dict[str, Callable[[list[str]], Awaitable[None]]]:
        async def leave(_: list[str]) -> None:
            self.app.exit()

        async def projects(_: list[str]) -> None:
            while isinstance(self.tui.screen_stack[-2], View):
                self.app.pop_screen()  # not awaited: this screen (and its worker) is among those popped

        async def project(args: list[str]) -> None:
            if len(args) != 1:
                raise CliError(2, "give the project's name or id")
            await self.app.push_screen(RunsScreen(await self.api.resolve(names.project, args[0])))

        async def run(args: list[str]) -> None:
            if len(args) != 1:
                raise CliError(2, "give the run as PROJECT/NAME or its id")
            await self.app.push_screen(RunScreen(await self.api.resolve(names.protocol, args[0])))

        async def filter_(args: list[str]) -> None:
            self.set_filter(" ".join(args))

        async def help_(_: list[str]) -> None:
            self.action_help()

        return {
            "q": leave,
            "quit": leave,
            "projects": projects,
            "project": project,
            "run": run,
            "filter": filter_,
            "help": help_,
        }


def _run_bindings() -> list[BindingType]:
    return [
        *(Binding(key, f"act('{action}', '{command}')", command) for key, action, command, _ in RUN_ACTIONS),
        Binding(REJECT_PLAN[0], f"prompt('command', '{REJECT_PLAN[1]} ')", REJECT_PLAN[1]),
        Binding(NEW_PROTOCOL[0], f"prompt('command', '{NEW_PROTOCOL[1]} ')", NEW_PROTOCOL[1]),
    ]


class Acting(View):
    """A screen with a run to act on (the highlighted one, or the one shown) and its project."""

    def selected_run(self) -> str | None:
        raise NotImplementedError

    def project_id(self) -> str:
        raise NotImplementedError

    def action_act(self, action: str, command: str) -> None:
        run_id = self.selected_run()
        if run_id is None:
            self.say("no run is highlighted", error=True)
            return
        call = partial(self.api.call, "protocol.action", protocol_run_id=run_id, action=action)
        self.run_worker(self.acted(command, call), group="act")

    async def acted(self, what: str, call: Callable[[], Awaitable[Any]]) -> None:
        """Say what the action did, or why it was refused; the screens change when its events arrive."""
        try:
            result = await call()
        except CliError as exc:
            self.say(words.refusal(exc, what), error=True)
            return
        self.say(words.done(what, result))

    def commands(self) -> dict[str, Callable[[list[str]], Awaitable[None]]]:
        def action(api_action: str, command: str) -> Callable[[list[str]], Awaitable[None]]:
            async def act(_: list[str]) -> None:
                self.action_act(api_action, command)

            return act

        async def reject(args: list[str]) -> None:
            run_id = self.selected_run()
            if not args or run_id is None:
                self.say("reject-plan needs a run and a reason: :reject-plan REASON", error=True)
                return
            body = {"reason": " ".join(args)}
            call = partial(self.api.call, "protocol.reject_plan", protocol_run_id=run_id, body=body)
            await self.acted("reject-plan", call)

        async def new(args: list[str]) -> None:
            if not args:
                self.say("new needs a task: :new TASK NAME", error=True)
                return
            body = {"task_name": " ".join(args), "description": ""}
            created = await self.api.call("protocol.create", project_id=self.project_id(), body=body)
            self.say(f"created {created['protocol_name']}: start it with s")

        return {
            **super().commands(),
            **{command: action(api_action, command) for _, api_action, command, _ in RUN_ACTIONS},
            REJECT_PLAN[1]: reject,
            NEW_PROTOCOL[1]: new,
        }


class ProjectsScreen(View):
    """Every project the token sees; Enter opens its runs."""

    def __init__(self) -> None:
        super().__init__()
        self.projects: list[dict[str, Any]] = []

    def heading(self) -> str:
        return "projects"

    def body(self) -> ComposeResult:
        yield DataTable(id="projects", cursor_type="row")

    def on_mount(self) -> None:
        self.sub_title = self.heading()
        self.query_one(DataTable).add_columns("NAME", "STATUS", "WHY", "BASE", "REPOSITORY", "OPEN QUESTIONS")
        super().on_mount()

    async def load(self) -> None:
        self.projects = await self.api.all("project.list")
        self.show()

    def show(self) -> None:
        rows = []
        for p in self.projects:
            unanswered = [q for q in p.get("questions", []) if q.get("key") not in p.get("answers", {})]
            row = (
                p["name"],
                p["status"],
                why(p) or "",
                p["base_branch"],
                p["git_url"],
                len(unanswered) or "",
            )
            if matches(self.filter, row):
                rows.append((p["id"], row))
        refill(self.query_one(DataTable), rows)

    def appended(self, event: dict[str, Any]) -> None:
        if event["type"].startswith("project."):
            self.reload()

    @on(DataTable.RowSelected)
    async def opened(self, event: DataTable.RowSelected) -> None:
        chosen = next(p for p in self.projects if p["id"] == event.row_key.value)
        await self.app.push_screen(RunsScreen(chosen))


class RunsScreen(Acting):
    """A project's protocol runs; the run actions act on the highlighted one, Enter opens it."""

    BINDINGS: ClassVar[list[BindingType]] = _run_bindings()

    def __init__(self, project: dict[str, Any]) -> None:
        super().__init__()
        self.project = project
        self.runs: list[dict[str, Any]] = []

    def heading(self) -> str:
        return f"{self.project['name']}: runs"

    def body(self) -> ComposeResult:
        yield DataTable(id="runs", cursor_type="row")

    def on_mount(self) -> None:
        self.sub_title = self.heading()
        self.query_one(DataTable).add_columns(
            "#", "NAME", "STATUS", "WAITING FOR", "WHY", "PR", "COST", "UPDATED"
        )
        super().on_mount()

    def project_id(self) -> str:
        return str(self.project["id"])

    def selected_run(self) -> str | None:
        return selected(self.query_one(DataTable))

    async def load(self) -> None:
        self.runs = await self.api.all("protocol.list", project_id=self.project_id())
        self.show()

    def show(self) -> None:
        rows = []
        for r in self.runs:
            row = (
                r["number"],
                r["protocol_name"],
                r["status"],
                r.get("waiting_for") or "",
                why(r) or "",
                r.get("pr_url") or "",
                words.cost(r.get("usage")),
                words.clock(r.get("updated_at")),
            )
            if matches(self.filter, row):
                rows.append((r["id"], row))
        refill(self.query_one(DataTable), rows)

    def appended(self, event: dict[str, Any]) -> None:
        if event.get("project_id") == self.project_id() and event["type"].startswith("protocol_run."):
            self.reload()

    @on(DataTable.RowSelected)
    async def opened(self, event: DataTable.RowSelected) -> None:
        chosen = next(r for r in self.runs if r["id"] == event.row_key.value)
        await self.app.push_screen(RunScreen(chosen))


STEP_STARTED = "protocol_run.step_execution_started"


class RunScreen(Acting):
    """One run: what it is and waits for, its steps as a timeline built from its events (attempts, time
    taken), and its events as they are appended. Run actions act on it, step actions on the highlighted
    step; Enter on a step (or v) opens its QA reports."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *_run_bindings(),
        *(
            Binding(key, f"step_act('{action}', '{command}')", command)
            for key, action, command, _ in STEP_ACTIONS
        ),
        Binding(QA_REPORTS[0], "reports", QA_REPORTS[1]),
    ]

    def __init__(self, run: dict[str, Any]) -> None:
        super().__init__()
        self.run = run
        self.steps: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []  # streamed while the history was being read
        self.history = False

    @property
    def run_id(self) -> str:
        return str(self.run["id"])

    def heading(self) -> str:
        return f"run {self.run['protocol_name']}"

    def body(self) -> ComposeResult:
        yield Static(id="summary")
        yield DataTable(id="steps", cursor_type="row")
        yield DataTable(id="events", cursor_type="row")

    def on_mount(self) -> None:
        self.sub_title = self.heading()
        self.query_one("#steps", DataTable).add_columns(
            "#", "STEP", "STATUS", "ATTEMPTS", "RETRIES", "ENGINE", "MODEL", "QA", "TOOK", "COMMIT"
        )
        self.query_one("#events", DataTable).add_columns("#", "TIME", "TYPE", "STEP", "ACTOR", "DETAIL")
        super().on_mount()

    def project_id(self) -> str:
        return str(self.run["project_id"])

    def selected_run(self) -> str | None:
        return self.run_id

    def selected_step(self) -> dict[str, Any] | None:
        step_id = selected(self.query_one("#steps", DataTable))
        return next((s for s in self.steps if s["id"] == step_id), None)

    async def load(self) -> None:
        run, steps = await asyncio.gather(
            self.api.call("protocol.get", protocol_run_id=self.run_id),
            self.api.call("step.list", protocol_run_id=self.run_id),
        )
        self.run, self.steps = run, steps["data"]
        if not self.history:
            history: list[dict[str, Any]] = []
            while True:
                after = history[-1]["position"] if history else 0
                params = {"protocol_run_id": self.run_id, "after": after, "limit": PAGE}
                page = (await self.api.call("events.list", params=params))["data"]
                history += page
                if len(page) < PAGE:
                    break
            self.add_events([*history, *sorted(self.pending, key=lambda e: int(e["position"]))])
            self.pending = []
            self.history = True
            self.show()
        else:
            self.show_state()

    def add_events(self, events: list[dict[str, Any]]) -> None:
        """Events after the last one held (a position at or below it was had already); once the history
        is shown, added to the table as they come."""
        last = self.events[-1]["position"] if self.events else 0
        fresh = [e for e in events if e["position"] > last]
        self.events += fresh
        if fresh and self.history:
            self.show_events(fresh)

    def appended(self, event: dict[str, Any]) -> None:
        if event.get("protocol_run_id") != self.run_id:
            return
        if self.history:
            self.add_events([event])
        else:
            self.pending.append(event)
        self.reload()

    def show(self) -> None:
        self.show_state()
        self.query_one("#events", DataTable).clear()
        self.show_events(self.events)

    def show_state(self) -> None:
        """The summary and the steps (the events table grows by itself)."""
        run = self.run
        usage = run.get("usage") or {}
        lines = [
            f"{run['protocol_name']}  ·  {run.get('task_name', '')}",
            f"The run is {words.run_status(run['status'])}.",
        ]
        if run.get("waiting_for"):
            lines.append(
                f"It {words.WAITING_FOR.get(run['waiting_for'], 'waits for ' + run['waiting_for'])}."
            )
        if reason := why(run):
            lines.append(f"Why: {reason}")
        lines.append(
            f"PR: {run.get('pr_url') or 'none'}  ·  tokens {usage.get('input_tokens', 0)} in, "
            f"{usage.get('output_tokens', 0)} out  ·  cost {words.cost(usage)}"
        )
        self.query_one("#summary", Static).update(Text("\n".join(lines)))
        self.show_steps()

    def show_steps(self) -> None:
        by_step: dict[str, list[dict[str, Any]]] = {}
        for event in self.events:
            if event.get("step_run_id"):
                by_step.setdefault(event["step_run_id"], []).append(event)
        rows = []
        for s in self.steps:
            events = by_step.get(s["id"], [])
            attempts = sum(1 for e in events if e["type"] == STEP_STARTED)
            started = next((e["time"] for e in events if e["type"] == STEP_STARTED), None)
            took = (
                words.seconds_between(started, events[-1]["time"])
                if started and s["status"] not in ("pending", "running")
                else None
            )
            row = (
                s["step_index"],
                s["step_name"],
                s["status"],
                attempts or "",
                s["retries"] or "",
                s.get("engine_id") or latest(events, "engine_id"),
                s.get("model") or latest(events, "model"),
                s.get("last_verdict") or "",
                words.duration(took),
                (s.get("commit_sha") or "")[:10],
            )
            if matches(self.filter, row):
                rows.append((s["id"], row))
        refill(self.query_one("#steps", DataTable), rows)

    def show_events(self, events: list[dict[str, Any]]) -> None:
        table = self.query_one("#events", DataTable)
        step_names = {s["id"]: s["step_name"] for s in self.steps}
        for e in events:
            row = (
                e["position"],
                words.clock(e["time"]),
                e["type"].removeprefix("protocol_run."),
                step_names.get(e.get("step_run_id") or "", e.get("step_run_id") or ""),
                e.get("actor", ""),
                words.event_detail(e),
            )
            if matches(self.filter, row):
                table.add_row(*cells(*row), key=str(e["position"]))
        if events and not table.has_focus:
            table.move_cursor(row=table.row_count - 1)

    def action_step_act(self, action: str, command: str) -> None:
        step = self.selected_step()
        if step is None:
            self.say("no step is highlighted", error=True)
            return
        call = partial(self.api.call, "step.action", step_run_id=step["id"], action=action)
        self.run_worker(self.acted(f"{command} {step['step_name']}", call), group="act")

    async def action_reports(self) -> None:
        step = self.selected_step()
        if step is None:
            self.say("no step is highlighted", error=True)
            return
        await self.app.push_screen(QaScreen(self.run, step))

    @on(DataTable.RowSelected, "#steps")
    async def opened(self, _: DataTable.RowSelected) -> None:
        await self.action_reports()

    def commands(self) -> dict[str, Callable[[list[str]], Awaitable[None]]]:
        def action(api_action: str, command: str) -> Callable[[list[str]], Awaitable[None]]:
            async def act(_: list[str]) -> None:
                self.action_step_act(api_action, command)

            return act

        async def reports(_: list[str]) -> None:
            await self.action_reports()

        return {
            **super().commands(),
            **{command: action(api_action, command) for _, api_action, command, _ in STEP_ACTIONS},
            QA_REPORTS[1]: reports,
        }


class QaScreen(View):
    """A step's QA reports, newest first, as the Markdown the API renders."""

    def __init__(self, run: dict[str, Any], step: dict[str, Any]) -> None:
        super().__init__()
        self.run = run
        self.step = step
        self.reports: list[dict[str, Any]] = []

    def heading(self) -> str:
        return f"QA of {self.run['protocol_name']} / {self.step['step_name']}"

    def body(self) -> ComposeResult:
        with VerticalScroll(id="reports"):
            yield Markdown(id="report")

    def on_mount(self) -> None:
        self.sub_title = self.heading()
        super().on_mount()

    async def load(self) -> None:
        self.reports = (await self.api.call("step.qa_reports", step_run_id=self.step["id"]))["data"]
        self.show()

    def show(self) -> None:
        shown = [
            f"## Attempt {r['qa_attempt']}: {r['verdict']} ({words.clock(r['time'])})\n\n{r['report_md']}"
            for r in reversed(self.reports)
            if matches(self.filter, (r["report_md"], r["verdict"]))
        ]
        text = "\n\n".join(shown) if shown else "*No QA report yet.* Run QA with `u` on the run's screen."
        self.query_one("#report", Markdown).update(text)

    def appended(self, event: dict[str, Any]) -> None:
        if event.get("step_run_id") == self.step["id"] and "qa" in event["type"]:
            self.reload()


class HelpScreen(ModalScreen[None]):
    """Every key and command (the same tables the screens bind)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "close"),
        Binding("question_mark", "dismiss", "close"),
        Binding("q", "dismiss", "close"),
    ]

    def compose(self) -> ComposeResult:
        text = Text(help_text())
        text.highlight_regex(r"(?m)^\S.*$", "bold")
        with VerticalScroll(id="help"):
            yield Static(text, id="help-text")


def help_text() -> str:
    def section(title: str, rows: Iterable[tuple[str, str, str]]) -> str:
        lines = [f"{key:<12}{':' + command if command else '':<15} {what}" for key, command, what in rows]
        return title + "\n" + "\n".join("  " + line for line in lines)

    general = [
        ("Enter", "", "open the highlighted project, run or step (a step: its QA reports)"),
        (":", "", "a command (below); Enter runs it, Esc closes the prompt"),
        ("/", "filter", "show only the rows with what you type; Esc clears"),
        ("?", "help", "this help"),
        ("Esc", "", "close the prompt, clear the filter, or go back"),
        ("Tab", "", "the next table (on a run: steps, events)"),
        ("q, Ctrl+Q", "quit", "leave"),
    ]
    runs = [(key, command, what) for key, _, command, what in RUN_ACTIONS]
    runs += [REJECT_PLAN, NEW_PROTOCOL]
    steps = [(key, command, what) for key, _, command, what in STEP_ACTIONS]
    steps.append(QA_REPORTS)
    commands = "\n".join(f"  :{name:<24} {what}" for name, what in COMMANDS)
    return "\n\n".join(
        (
            "deksdenflow tui: live from the API's event stream (a screen changes when an event about it "
            "is appended)",
            section("Everywhere", general),
            section("Runs (a project's list: the highlighted run; a run's screen: that run)", runs),
            section("Steps (a run's screen: the highlighted step)", steps),
            "Commands (also each action above, by its :name)\n" + commands,
            "A refused action (409) is said on the bottom line, with what the run or step is now.",
        )
    )


def latest(events: list[dict[str, Any]], key: str) -> str:
    """The last value an event's payload gave ``key`` (the engine and model a step ran with)."""
    return next((str(e["payload"][key]) for e in reversed(events) if (e.get("payload") or {}).get(key)), "")


def refill(table: DataTable[Any], rows: Sequence[tuple[str, Sequence[object]]]) -> None:
    """Replace a table's rows, the highlighted row kept where it is still shown."""
    current = selected(table)
    table.clear()
    for key, row in rows:
        table.add_row(*cells(*row), key=key)
    # Each column as wide as its widest cell now, rather than when the table is next idle (it measures
    # new rows then): a table kept busy would show its columns cut to their headings until then.
    for index, column in enumerate(table.ordered_columns):
        if column.auto_width:
            widest = max((cell_len(str(row[index] or "")) for _, row in rows), default=0)
            column.content_width = max(column.content_width, widest)
    table.refresh()
    keys = [key for key, _ in rows]
    if current in keys:
        table.move_cursor(row=keys.index(current))


def selected(table: DataTable[Any]) -> str | None:
    if table.row_count == 0:
        return None
    key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    return None if key is None else str(key)


class Tui(App[None]):
    TITLE = "deksdenflow"
    CSS = """
    #message { height: 1; padding: 0 1; background: $boost; }
    #message.error { color: $text-error; }
    #prompt { display: none; height: 1; border: none; padding: 0 1; }
    #prompt.open { display: block; }
    #summary { height: auto; padding: 0 1; border-bottom: solid $primary; }
    #steps { height: auto; max-height: 45%; border-bottom: solid $primary; }
    DataTable { height: 1fr; }
    #reports { height: 1fr; padding: 0 1; }
    HelpScreen { align: center middle; }
    #help { width: 90%; height: 90%; border: thick $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "quit", show=False)]
    ENABLE_COMMAND_PALETTE = False  # `:` is the command line

    def __init__(self, client: Client, position: int, target: str | None = None) -> None:
        """``position``: the last event before the screens read their state (``follow.head``)."""
        super().__init__()
        self.api = Api(client)
        self.target = target
        self.position = position  # the last event received

    async def on_mount(self) -> None:
        self.sub_title = self.api.client.context.url
        root = ProjectsScreen()
        await self.push_screen(root)
        self.run_worker(self.stream(), name="stream", group="stream")
        if self.target:
            await root.command(f"{'run' if '/' in self.target else 'project'} {shlex.quote(self.target)}")

    async def stream(self) -> None:
        try:
            async for event in follow.live(self.api.client, {}, self.position, self.dropped):
                self.position = event["position"]
                for screen in self.screen_stack:
                    if isinstance(screen, View):
                        screen.appended(event)
        except CliError as exc:
            self.tell(words.refusal(exc, "live updates stopped"), error=True)

    def dropped(self, last: str | None) -> None:
        self.tell(f"the event stream dropped; resuming after #{last or 0}")

    def tell(self, text: str, *, error: bool = False) -> None:
        if isinstance(self.screen, View):
            self.screen.say(text, error=error)


def run(client: Client, target: str | None) -> None:
    """Run the app in this terminal until it is left. The API is asked for the last event's position
    first: an unreachable API or a refused token is a CliError (and its exit code) before the screen
    is taken over."""
    Tui(client, follow.head(client), target).run()
