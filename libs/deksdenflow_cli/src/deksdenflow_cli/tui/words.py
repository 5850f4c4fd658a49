"""What the TUI says in words: statuses, refusals (409), events, times and durations. No Textual here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from deksdenflow_cli.exits import CONFLICT, CliError

RUN_STATUS = {
    "pending": "pending: created, not started yet",
    "queued": "queued: waiting for a free slot of its project",
    "planning": "planning: the planner is writing its steps",
    "planned": "planned: its plan is ready and no step is running",
    "running": "running: its steps are under way",
    "paused": "paused: nothing runs until it is resumed",
    "blocked": "blocked: it waits for a person (retry, approve or cancel)",
    "failed": "failed: it stopped on an error",
    "cancelled": "cancelled: it was stopped for good",
    "completed": "completed: every step is done",
}
STEP_STATUS = {
    "pending": "pending: not run yet",
    "running": "running: an engine is working on it",
    "needs_qa": "waiting for QA",
    "completed": "completed",
    "failed": "failed: retry it, approve it or cancel the run",
    "blocked": "blocked: it waits for a person",
    "cancelled": "cancelled",
}
WAITING_FOR = {
    "queue": "waits for a slot under the run limits",
    "spec": "waits to be planned again: a spec audit found problems in its plan (s re-plans)",
    "action": "waits for a person's next action (nothing is with a worker)",
    "plan_approval": "waits for its plan to be approved (y) or rejected (d)",
    "checkpoint": "waits at a checkpoint for a person to continue (protocol continue) or cancel",
    "pull_request": "waits for a pull request to be opened (o)",
    "review": "waits for reviewers, or a person to merge",
    "ci": "waits for green CI on its head commit",
    "merge": "waits for the forge to merge its pull request",
}
# What an event says beyond its type, in the order looked for.
DETAIL_KEYS = ("reason", "error", "summary", "verdict", "status", "pr_url", "commit_sha")


def run_status(status: str | None) -> str:
    return RUN_STATUS.get(status or "", status or "unknown")


def step_status(status: str | None) -> str:
    return STEP_STATUS.get(status or "", status or "unknown")


def refusal(error: CliError, what: str) -> str:
    """An API error as a sentence; a 409 says why and what the run (or step) is now, in words."""
    body = error.body
    if error.code != CONFLICT or not body:
        return f"{what}: {error.message}"
    sentence = f"Refused (409): {what}: {body.get('message', 'not allowed now')}."
    current = body.get("current_status")
    if "run_status" in body:  # a step's refusal: current_status is the step's
        sentence += f" The step is {step_status(current)}; the run is {run_status(body['run_status'])}."
    elif current:
        sentence += f" The run is {run_status(current)}."
    return sentence


def done(what: str, result: dict[str, Any]) -> str:
    """What an action did, from its answer."""
    text = f"{what}: the run is {run_status(result.get('status'))}"
    if result.get("step_status"):
        text += f"; the step is {step_status(result['step_status'])}"
    return text + "."


def clock(value: str | None) -> str:
    """An API time as the local time of day (HH:MM:SS)."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone().strftime("%H:%M:%S")


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def duration(seconds: float | None) -> str:
    """A duration in a fixed width of 7: ``  12.3s``, `` 4m05s``, ``  2h10m``."""
    if seconds is None:
        return ""
    if seconds < 60:
        text = f"{seconds:.1f}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    else:
        text = f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return text.rjust(7)


def event_detail(event: dict[str, Any]) -> str:
    payload = event.get("payload") or {}
    return next((str(payload[k]) for k in DETAIL_KEYS if payload.get(k)), "")


def cost(usage: dict[str, Any] | None) -> str:
    micro = int((usage or {}).get("cost_micro_usd") or 0)
    return f"${micro / 1_000_000:.2f}"
