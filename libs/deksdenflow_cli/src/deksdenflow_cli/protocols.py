"""``protocol …``, ``step …`` and ``events``: runs, their steps and the event feed, with ``watch`` and
``wait`` on the live stream (``follow.py``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from deksdenflow_cli import follow, names, spec_files
from deksdenflow_cli.exits import FAILED, OK, CliError
from deksdenflow_cli.output import render
from deksdenflow_cli.policy import run_policy_body, run_policy_options
from deksdenflow_cli.root import cli, note, output_options, state
from deksdenflow_cli.why import why

PROTOCOL_COLUMNS = ("id", "protocol_name", "status", "waiting_for", "why", "pr_url", "updated_at")
PROTOCOL_DETAIL = (
    "id",
    "project_id",
    "protocol_name",
    "task_name",
    "status",
    "waiting_for",
    "why",
    "last_error",
    "spec_findings",
    "pr_url",
    "usage.input_tokens",
    "usage.output_tokens",
    "usage.cost_micro_usd",
    "updated_at",
)
STEP_COLUMNS = (
    "id",
    "step_index",
    "step_name",
    "status",
    "retries",
    "last_verdict",
    "runtime_state.loop_iterations",
    "runtime_state.trigger_depth",
    "failure_reason",
)
ACTION_COLUMNS = ("protocol_run_id", "step_run_id", "action", "status", "step_status", "events")
EVENT_COLUMNS = ("position", "time", "type", "protocol_run_id", "step_run_id", "actor")
QA_COLUMNS = ("qa_attempt", "verdict", "summary", "blocking", "warnings", "engine_id", "time")


@cli.group()
def protocol() -> None:
    """Protocol runs: PROTOCOL is an id or PROJECT/NAME (name, slug or number), e.g. demo/0001-add-login."""


@protocol.command("create")
@click.argument("project_ref", metavar="PROJECT")
@click.argument("task_name")
@click.option("--description", default="", help="What to do, in words (the planner reads it).")
@click.option("--base-branch", help="Branch from this instead of the project's base branch.")
@click.option("--start", is_flag=True, help="Start it at once.")
@run_policy_options
@output_options
def protocol_create(
    project_ref: str,
    task_name: str,
    description: str,
    base_branch: str | None,
    start: bool,
    output: str,
    fields: tuple[str, ...],
    **policy: Any,
) -> None:
    """Create a protocol run for a task (start it with `protocol start`, or --start). Run policy options
    override the project's for this run."""
    client = state().client
    body: dict[str, Any] = {"task_name": task_name, "description": description}
    if base_branch:
        body["base_branch"] = base_branch
    overrides = run_policy_body(policy)
    if overrides:
        body["run_policy"] = overrides
    created = client.call("protocol.create", project_id=names.project_id(client, project_ref), body=body)
    if start:
        client.call("protocol.action", protocol_run_id=created["id"], action="start")
        created = client.call("protocol.get", protocol_run_id=created["id"])
    render(created, output, columns=PROTOCOL_DETAIL, fields=fields)


@protocol.command("import")
@click.argument("project_ref", metavar="PROJECT")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--kind",
    type=click.Choice(["speckit", "openspec", "codemachine"]),
    help="What the folder is (default: told by its files).",
)
@click.option(
    "--workflow", help="CodeMachine: the package's workflow (templates/workflows/NAME.workflow.js)."
)
@click.option(
    "--tracking",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CodeMachine: the workspace's .codemachine/template.json; its completed steps are left out.",
)
@click.option("--task-name", help="The protocol's task name (default: the spec's title).")
@click.option("--base-branch", help="Branch from this instead of the project's base branch.")
@click.option("--start", is_flag=True, help="Start it at once.")
@run_policy_options
@output_options
def protocol_import(
    project_ref: str,
    folder: Path,
    kind: str | None,
    workflow: str | None,
    tracking: Path | None,
    task_name: str | None,
    base_branch: str | None,
    start: bool,
    output: str,
    fields: tuple[str, ...],
    **policy: Any,
) -> None:
    """Open a protocol from a spec-kit feature folder (specs/NNN-feature/), an OpenSpec change
    (openspec/changes/<id>/) or a CodeMachine workflow package (codemachine.json, templates/workflows/) or
    first-version workspace (.codemachine/): its steps are the spec's, planning asks no agent. A spec with
    problems is refused with each of them (file:line: field: message), and nothing is created."""
    kind = kind or spec_files.kind_of(folder)
    if kind == "codemachine":
        body: dict[str, Any] = {"files": spec_files.codemachine_files(folder)}
        if workflow:
            body["workflow"] = workflow
        if tracking:
            body["tracking"] = tracking.read_text(errors="replace")
        endpoint = "codemachine.import"
    else:
        files = {
            str(p.relative_to(folder)): p.read_text(errors="replace") for p in sorted(folder.rglob("*.md"))
        }
        body = {"kind": kind, "name": folder.resolve().name, "files": files}
        endpoint = "protocol.import"
    if kind == "speckit":
        for parent in (folder.resolve(), *folder.resolve().parents):
            constitution = parent / ".specify" / "memory" / "constitution.md"
            if constitution.is_file():
                body["constitution"] = constitution.read_text(errors="replace")
                break
    for key, value in (("task_name", task_name), ("base_branch", base_branch)):
        if value:
            body[key] = value
    overrides = run_policy_body(policy)
    if overrides:
        body["run_policy"] = overrides
    client = state().client
    try:
        created = client.call(endpoint, project_id=names.project_id(client, project_ref), body=body)
    except CliError as exc:
        for problem in exc.body.get("problems", []):
            note(f"  {problem}")
        raise
    if start:
        client.call("protocol.action", protocol_run_id=created["id"], action="start")
        created = client.call("protocol.get", protocol_run_id=created["id"])
    render(created, output, columns=PROTOCOL_DETAIL, fields=fields)


@protocol.command("list")
@click.argument("project_ref", metavar="PROJECT")
@click.option("--status", help="Only runs in this status (e.g. running, blocked).")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@output_options
def protocol_list(
    project_ref: str, status: str | None, limit: int, offset: int, output: str, fields: tuple[str, ...]
) -> None:
    """The project's protocol runs by number."""
    client = state().client
    params = {"status": status, "limit": limit, "offset": offset}
    page = client.call("protocol.list", project_id=names.project_id(client, project_ref), params=params)
    render(page["data"], output, columns=PROTOCOL_COLUMNS, fields=fields, many=True)


@protocol.command("get")
@click.argument("protocol_ref", metavar="PROTOCOL")
@output_options
def protocol_get(protocol_ref: str, output: str, fields: tuple[str, ...]) -> None:
    """One protocol run (why it is blocked or waiting, its PR, usage and cost)."""
    render(names.protocol(state().client, protocol_ref), output, columns=PROTOCOL_DETAIL, fields=fields)


def _action(protocol_ref: str, action: str, output: str, fields: tuple[str, ...]) -> None:
    client = state().client
    result = client.call(
        "protocol.action", protocol_run_id=names.protocol_id(client, protocol_ref), action=action
    )
    render(result, output, columns=ACTION_COLUMNS, fields=fields)


def _add_action(command: str, action: str, summary: str) -> None:
    @protocol.command(command, help=summary)
    @click.argument("protocol_ref", metavar="PROTOCOL")
    @output_options
    def run_action(protocol_ref: str, output: str, fields: tuple[str, ...]) -> None:
        _action(protocol_ref, action, output, fields)


for _command, _action_name, _summary in (
    ("start", "start", "Start the run (planning first)."),
    ("pause", "pause", "Pause the run after what is running now."),
    ("resume", "resume", "Resume a paused run."),
    ("cancel", "cancel", "Cancel the run and its open steps."),
    ("run-next", "run_next_step", "Run the next pending step (manual mode)."),
    ("retry", "retry_latest", "Retry the latest failed or blocked step."),
    ("open-pr", "open_pr", "Open the pull request for the run's branch."),
    ("approve-plan", "approve_plan", "Approve the plan (plan_approval: required)."),
    ("continue", "continue", "Let a run stopped at a step's checkpoint go on."),
):
    _add_action(_command, _action_name, _summary)


@protocol.command("reject-plan")
@click.argument("protocol_ref", metavar="PROTOCOL")
@click.option("--reason", required=True, help="Why: the planner is told.")
@output_options
def reject_plan(protocol_ref: str, reason: str, output: str, fields: tuple[str, ...]) -> None:
    """Reject the plan: the run is planned again with the reason."""
    client = state().client
    result = client.call(
        "protocol.reject_plan",
        protocol_run_id=names.protocol_id(client, protocol_ref),
        body={"reason": reason},
    )
    render(result, output, columns=ACTION_COLUMNS, fields=fields)


def _event_line(event: dict[str, Any]) -> str:
    step = f" step {event['step_run_id']}" if event.get("step_run_id") else ""
    payload = event.get("payload") or {}
    detail = next(
        (str(payload[k]) for k in ("reason", "error", "summary", "verdict", "status") if payload.get(k)), ""
    )
    return f"{event['time']}  #{event['position']:<6} {event['type']}{step}  {detail}".rstrip()


@protocol.command("watch")
@click.argument("protocol_ref", metavar="PROTOCOL")
@click.option("-o", "--output", type=click.Choice(["text", "jsonl"]), default="text", show_default=True)
def watch(protocol_ref: str, output: str) -> None:
    """The run's live timeline until it completes, fails, blocks or is cancelled (exit 0, or 1 if not
    completed). Resumes after a dropped connection without a gap or a repeat."""
    client = state().client
    run_id = names.protocol_id(client, protocol_ref)

    def show(event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":")) if output == "jsonl" else _event_line(event)
        click.echo(line)
        sys.stdout.flush()

    run = follow.follow(
        client,
        run_id,
        on_event=show,
        done=lambda r: follow.reached(r, "terminal"),
        on_reconnect=lambda last: note(f"stream dropped; resuming after #{last or 0}"),
        replay=True,
    )
    reason = why(run)
    note(f"run {run_id}: {run['status']}" + (f" ({reason})" if reason else ""))
    if follow.exit_code(run) != OK:
        raise CliError(FAILED, f"the run is {run['status']}")


@protocol.command("wait")
@click.argument("protocol_ref", metavar="PROTOCOL")
@click.option(
    "--until",
    type=click.Choice(follow.UNTIL),
    default="terminal",
    show_default=True,
    help="completed / terminal: until the run completes (exit 0) or stops short of it: cancelled, failed "
    "or blocked (exit 1); waiting: also when a person, CI or the forge must act first (a manual run with "
    "nothing at a worker, planned, paused, queued, waiting for plan approval, a review, CI or the merge; "
    "exit 0).",
)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds (exit 124 after).")
@output_options
def wait(protocol_ref: str, until: str, timeout: float | None, output: str, fields: tuple[str, ...]) -> None:
    """Block until the run reaches a state; exit 0, or 1 when it failed, is blocked or was cancelled."""
    client = state().client
    run_id = names.protocol_id(client, protocol_ref)
    progress = sys.stderr.isatty()
    note(f"waiting for run {run_id} to be {until}" + (f" (at most {timeout:g} s)" if timeout else ""))

    def show(event: dict[str, Any]) -> None:
        if progress:
            note(f"… {event['type']}")

    run = follow.follow(
        client, run_id, on_event=show, done=lambda r: follow.reached(r, until), timeout=timeout
    )
    render(run, output, columns=PROTOCOL_DETAIL, fields=fields)
    if follow.exit_code(run) != OK:
        reason = why(run)
        raise CliError(FAILED, f"the run is {run['status']}" + (f": {reason}" if reason else ""))


@cli.group()
def step() -> None:
    """Steps of a run: STEP is an id or PROJECT/PROTOCOL/INDEX-or-NAME."""


@step.command("list")
@click.argument("protocol_ref", metavar="PROTOCOL")
@output_options
def step_list(protocol_ref: str, output: str, fields: tuple[str, ...]) -> None:
    """The run's steps in order."""
    client = state().client
    page = client.call("step.list", protocol_run_id=names.protocol_id(client, protocol_ref))
    render(page["data"], output, columns=STEP_COLUMNS, fields=fields, many=True)


@step.command("get")
@click.argument("step_ref", metavar="STEP")
@output_options
def step_get(step_ref: str, output: str, fields: tuple[str, ...]) -> None:
    """One step (its failure reason and last QA verdict)."""
    client = state().client
    render(
        client.call("step.get", step_run_id=names.step_id(client, step_ref)),
        output,
        columns=STEP_COLUMNS,
        fields=fields,
    )


def _add_step_action(command: str, action: str, summary: str) -> None:
    @step.command(command, help=summary)
    @click.argument("step_ref", metavar="STEP")
    @output_options
    def run_action(step_ref: str, output: str, fields: tuple[str, ...]) -> None:
        client = state().client
        result = client.call("step.action", step_run_id=names.step_id(client, step_ref), action=action)
        render(result, output, columns=ACTION_COLUMNS, fields=fields)


for _command, _action_name, _summary in (
    ("run", "run", "Run the step (pending), or again (failed or blocked)."),
    ("qa", "run_qa", "Run QA on the step."),
    ("approve", "approve", "Approve the step (needs_qa, failed or blocked)."),
):
    _add_step_action(_command, _action_name, _summary)


@step.command("qa-reports")
@click.argument("step_ref", metavar="STEP")
@output_options
def qa_reports(step_ref: str, output: str, fields: tuple[str, ...]) -> None:
    """Every QA verdict of the step."""
    client = state().client
    page = client.call("step.qa_reports", step_run_id=names.step_id(client, step_ref))
    render(page["data"], output, columns=QA_COLUMNS, fields=fields, many=True)


@cli.command()
@click.option("--project", "project_ref", help="Only this project's events (name or id).")
@click.option("--protocol", "protocol_ref", help="Only this run's events.")
@click.option("--type", "event_type", help="Only this type, e.g. protocol_run.created.")
@click.option("--after", type=click.IntRange(0), default=0, help="Only events after this position.")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@output_options
def events(
    project_ref: str | None,
    protocol_ref: str | None,
    event_type: str | None,
    after: int,
    limit: int,
    output: str,
    fields: tuple[str, ...],
) -> None:
    """The event feed, oldest first."""
    client = state().client
    params = {
        "project_id": names.project_id(client, project_ref) if project_ref else None,
        "protocol_run_id": names.protocol_id(client, protocol_ref) if protocol_ref else None,
        "type": event_type,
        "after": after,
        "limit": limit,
    }
    page = client.call("events.list", params=params)
    render(page["data"], output, columns=EVENT_COLUMNS, fields=fields, many=True)
