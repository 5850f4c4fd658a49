"""What the log says about protocol runs that went by themselves: when each step was requested, taken,
executed, QA'd and completed, and when each run started and got done. Every time is an envelope's (the
time of its decision), so whoever watched the runs meanwhile adds nothing to them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from deksdenflow_core.envelope import RecordedEvent


@dataclass
class StepTimes:
    """When one step's events were decided (the first of each, for retried ones)."""

    requested: datetime | None = None
    started: datetime | None = None
    executed: datetime | None = None
    qa_requested: datetime | None = None
    verdict: datetime | None = None
    completed: datetime | None = None


@dataclass(frozen=True)
class RunsTimes:
    steps: dict[str, StepTimes]
    wall_seconds: float  # the first start to the last run done
    planning_seconds: list[float]  # per run, planning requested -> completed
    pr_opened_seconds: list[float]  # per run, PR requested -> opened
    pr_ready_seconds: list[float]  # per run, its last step completed -> PR marked ready
    retries: int  # step attempts that failed and were tried again


_STEP_FIELDS = {
    "protocol_run.step_execution_requested": "requested",
    "protocol_run.step_execution_started": "started",
    "protocol_run.step_execution_completed": "executed",
    "protocol_run.qa_requested": "qa_requested",
    "protocol_run.qa_verdict_recorded": "verdict",
    "protocol_run.step_completed": "completed",
}


def runs_times(events: list[RecordedEvent], runs: set[str], done_type: str) -> RunsTimes:
    """The times of ``runs`` in ``events`` (the log, in order); a run is done at its ``done_type``."""
    steps: dict[str, StepTimes] = defaultdict(StepTimes)
    first: dict[tuple[str, str], datetime] = {}  # (run, event type) -> its first event's time
    last_step: dict[str, datetime] = {}
    retries = 0
    for e in events:
        env = e.envelope
        if env.aggregate_id not in runs:
            continue
        first.setdefault((env.aggregate_id, env.type), env.time)
        if env.type == "protocol_run.step_attempt_failed":
            retries += 1
        if env.type == "protocol_run.step_completed":
            last_step[env.aggregate_id] = env.time
        field = _STEP_FIELDS.get(env.type)
        step_run_id = getattr(e.event, "step_run_id", "")
        if field and step_run_id and getattr(steps[step_run_id], field) is None:
            setattr(steps[step_run_id], field, env.time)

    def spans(since: str, until: str) -> list[float]:
        return [
            (first[(r, until)] - first[(r, since)]).total_seconds()
            for r in runs
            if (r, since) in first and (r, until) in first
        ]

    started = min(first[(r, "protocol_run.planning_requested")] for r in runs)
    done = max(first[(r, done_type)] for r in runs)
    return RunsTimes(
        steps=dict(steps),
        wall_seconds=(done - started).total_seconds(),
        planning_seconds=spans("protocol_run.planning_requested", "protocol_run.planning_completed"),
        pr_opened_seconds=spans("protocol_run.pr_requested", "protocol_run.pr_opened"),
        pr_ready_seconds=[
            (first[(r, "protocol_run.pr_marked_ready")] - last_step[r]).total_seconds()
            for r in runs
            if (r, "protocol_run.pr_marked_ready") in first
        ],
        retries=retries,
    )


def ms(since: datetime | None, until: datetime | None) -> float:
    """Milliseconds from ``since`` to ``until`` (both must have happened)."""
    if since is None or until is None:
        raise ValueError("a step without one of its events")
    return (until - since).total_seconds() * 1000
