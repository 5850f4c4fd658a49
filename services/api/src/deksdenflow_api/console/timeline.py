"""A run's story, folded from its events: planning and each step's attempts, QA, usage, PR and CI.

The same fold serves the live run page (all events so far) and time travel (the events up to one position:
the run as it was then). It is pure: events in (as the API's ``/protocols/{id}/events`` gives them), a
``Timeline`` out; ``Timelines`` keeps one per run and folds only what is new since the last look.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The run's status after an event of this type (the read model has the status now; time travel needs it then).
_RUN_STATUS_AFTER = {
    "protocol_run.created": "pending",
    "protocol_run.queued": "queued",
    "protocol_run.admitted": "planning",
    "protocol_run.planning_requested": "planning",
    "protocol_run.planning_started": "planning",
    "protocol_run.planning_completed": "planned",
    "protocol_run.planning_failed": "failed",
    "protocol_run.step_execution_requested": "running",
    "protocol_run.step_execution_started": "running",
    "protocol_run.paused": "paused",
    "protocol_run.blocked": "blocked",
    "protocol_run.cancelled": "cancelled",
    "protocol_run.completed": "completed",
    "protocol_run.checkpoint_reached": "blocked",
    "protocol_run.checkpoint_passed": "running",
}


@dataclass
class Attempt:
    kind: str  # "execution" or "qa"
    number: int
    requested_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str = "requested"
    engine: str = ""
    model: str = ""
    prompt_version: str = ""
    commit_sha: str = ""
    detail: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micro_usd: int = 0

    @property
    def duration_seconds(self) -> float | None:
        start = self.started_at or self.requested_at
        if start is None or self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - start).total_seconds())


@dataclass
class StepLine:
    step_run_id: str
    index: int
    name: str
    status: str = "pending"
    attempts: list[Attempt] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micro_usd: int = 0

    def current(self, kind: str) -> Attempt | None:
        for attempt in reversed(self.attempts):
            if attempt.kind == kind:
                return attempt
        return None


@dataclass
class CiLine:
    status: str
    head_sha: str
    run_url: str
    time: datetime
    excerpt: str = ""


@dataclass
class Timeline:
    position: int = 0
    events: int = 0
    status: str = "pending"
    paused_from: str = ""
    blocked_reason: str = ""
    planning: list[Attempt] = field(default_factory=list)
    steps: dict[str, StepLine] = field(default_factory=dict)
    pr_number: int = 0
    pr_url: str = ""
    pr_state: str = ""
    ci: list[CiLine] = field(default_factory=list)
    last_commit: str = ""  # the latest commit of a step: the run's work up to it is "the diff so far"
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micro_usd: int = 0
    first_time: datetime | None = None
    last_time: datetime | None = None

    def ordered_steps(self) -> list[StepLine]:
        return sorted(self.steps.values(), key=lambda s: s.index)

    def apply(self, event: dict[str, Any]) -> None:  # noqa: PLR0915 - one branch per event type
        kind = event["type"]
        data: dict[str, Any] = event.get("payload") or {}
        at = _time(event["time"])
        self.position = max(self.position, int(event["position"]))
        self.events += 1
        self.first_time = self.first_time or at
        self.last_time = at
        if kind in _RUN_STATUS_AFTER:
            if kind == "protocol_run.paused":
                self.paused_from = self.status
            self.status = _RUN_STATUS_AFTER[kind]
        if kind == "protocol_run.resumed":
            self.status = self.paused_from or "running"
        if kind in ("protocol_run.blocked", "protocol_run.checkpoint_reached"):
            self.blocked_reason = str(data.get("reason", ""))
        short = kind.removeprefix("protocol_run.")
        step = self._step(event, data)
        if short == "planning_requested":
            self.planning.append(Attempt("planning", len(self.planning) + 1, requested_at=at))
        elif short == "planning_started":
            attempt = self._last(self.planning, "planning", at)
            attempt.started_at, attempt.outcome = at, "running"
        elif short == "planning_completed":
            attempt = self._last(self.planning, "planning", at)
            attempt.ended_at, attempt.outcome = at, "completed"
            _engine(attempt, data)
            attempt.commit_sha = str(data.get("commit_sha", ""))
            if data.get("decompose_prompt_version"):  # what decomposition did to the planner's step files
                refined = int(data.get("steps_refined", 0))
                attempt.detail = (
                    f"{refined} step{'' if refined == 1 else 's'} refined, "
                    f"{int(data.get('steps_kept_as_planned', 0))} kept as planned"
                )
            for number, plan in enumerate(data.get("steps") or []):
                self.steps.setdefault(f"plan:{number}", StepLine("", number, str(plan.get("name", ""))))
        elif short == "trigger_queued":  # a step queued by a trigger is known by its id from the start
            queued = data.get("step") or {}
            queued_id = str(queued.get("step_run_id", ""))
            self.steps.setdefault(
                queued_id, StepLine(queued_id, int(queued.get("index", 0)), str(queued.get("name", "")))
            )
        elif short == "loop_taken":
            for reset in data.get("reset_step_run_ids") or []:
                if reset in self.steps:
                    self.steps[reset].status = "pending"
            for superseded in data.get("superseded_step_run_ids") or []:
                if superseded in self.steps:
                    self.steps[superseded].status = "cancelled"
        elif short == "planning_failed":
            attempt = self._last(self.planning, "planning", at)
            attempt.ended_at, attempt.outcome = at, "failed"
            attempt.detail = str(data.get("reason", ""))
        elif step is not None:
            self._apply_step(step, short, data, at)
        elif short == "pr_opened":
            self.pr_number, self.pr_url, self.pr_state = (
                int(data.get("number", 0)),
                str(data.get("url", "")),
                "open",
            )
        elif short in ("pr_merged", "pull_request_merged"):
            self.pr_state = "merged"
        elif short in ("pr_closed", "pull_request_closed"):
            self.pr_state = "closed"
        elif short in ("pr_marked_ready", "pull_request_marked_ready"):
            self.pr_state = "ready for review"
        if short == "ci_reported":
            self.ci.append(
                CiLine(
                    status=str(data.get("status", "")).removeprefix("CI_STATUS_").lower(),
                    head_sha=str(data.get("head_sha", "")),
                    run_url=str(data.get("run_url", "")),
                    time=at,
                )
            )
        if short == "usage_recorded":
            usage = data.get("usage") or {}
            tokens_in, tokens_out = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
            cost = int(data.get("cost_micro_usd", 0))
            self.input_tokens += tokens_in
            self.output_tokens += tokens_out
            self.cost_micro_usd += cost
            target = self.steps.get(str(data.get("step_run_id", "")))
            charged: Attempt | None = target.attempts[-1] if target and target.attempts else None
            if target is None and self.planning:
                charged = self.planning[-1]
            if target is not None:
                target.input_tokens += tokens_in
                target.output_tokens += tokens_out
                target.cost_micro_usd += cost
            if charged is not None:
                charged.input_tokens += tokens_in
                charged.output_tokens += tokens_out
                charged.cost_micro_usd += cost
                charged.engine = charged.engine or str(data.get("engine_id", ""))
                charged.model = charged.model or str(data.get("model", ""))

    def _step(self, event: dict[str, Any], data: dict[str, Any]) -> StepLine | None:
        step_id = event.get("step_run_id") or data.get("step_run_id")
        if not step_id:
            return None
        step = self.steps.get(step_id)
        if step is None:
            # A planned step is known by its index until its first event names its id: the first planned
            # step not named yet (a step a trigger queued is named from the start).
            waiting = [line for line in self.steps.values() if not line.step_run_id]
            planned = min(waiting, key=lambda line: line.index, default=None)
            if planned is not None:
                del self.steps[f"plan:{planned.index}"]
            index = planned.index if planned else len([s for s in self.steps.values() if s.step_run_id])
            step = StepLine(step_id, index, planned.name if planned else f"step {index + 1}")
            self.steps[step_id] = step
        return step

    def _apply_step(self, step: StepLine, short: str, data: dict[str, Any], at: datetime) -> None:
        if short == "step_execution_requested":
            attempt = Attempt("execution", _count(step.attempts, "execution") + 1, requested_at=at)
            step.attempts.append(attempt)
            step.status = "running"
            evidence = data.get("ci_failure") or {}
            if evidence:  # a CI fix: the failing job's log excerpt goes to the agent, and on screen
                attempt.detail = f"CI fix: {evidence.get('job_name') or 'a job'} failed"
                for line in reversed(self.ci):
                    if line.head_sha == evidence.get("head_sha", line.head_sha):
                        line.excerpt = str(evidence.get("log_excerpt") or evidence.get("note") or "")
                        break
        elif short == "step_execution_started":
            attempt = self._last(step.attempts, "execution", at)
            attempt.started_at, attempt.outcome = at, "running"
        elif short == "step_attempt_failed":
            attempt = self._last(step.attempts, "execution", at)
            attempt.detail = f"try {data.get('try_number', '?')} failed: {data.get('reason', '')}"
        elif short == "step_execution_completed":
            attempt = self._last(step.attempts, "execution", at)
            attempt.ended_at, attempt.outcome = at, "completed"
            _engine(attempt, data)
            attempt.commit_sha = str(data.get("commit_sha", ""))
            attempt.detail = str(data.get("summary", ""))
            if attempt.commit_sha:
                step.commits.append(attempt.commit_sha)
                self.last_commit = attempt.commit_sha
            step.status = "needs_qa"
        elif short == "step_execution_failed":
            attempt = self._last(step.attempts, "execution", at)
            attempt.ended_at, attempt.outcome = at, "failed"
            attempt.detail = str(data.get("reason", ""))
        elif short == "qa_requested":
            step.attempts.append(Attempt("qa", _count(step.attempts, "qa") + 1, requested_at=at))
        elif short == "qa_verdict_recorded":
            attempt = self._last(step.attempts, "qa", at)
            attempt.ended_at = at
            attempt.outcome = str(data.get("verdict", "")).removeprefix("QA_VERDICT_").lower() or "recorded"
            _engine(attempt, data)
            attempt.detail = str(data.get("summary", ""))
        elif short == "step_completed":
            step.status = "completed"
        elif short == "step_failed":
            step.status = "failed"
        elif short == "step_blocked":
            step.status = "blocked"
        elif short == "cancelled":
            step.status = "cancelled"

    @staticmethod
    def _last(attempts: list[Attempt], kind: str, at: datetime) -> Attempt:
        for attempt in reversed(attempts):
            if attempt.kind == kind:
                return attempt
        attempt = Attempt(
            kind, _count(attempts, kind) + 1, requested_at=at
        )  # its request is older than the log shown
        attempts.append(attempt)
        return attempt


def _count(attempts: list[Attempt], kind: str) -> int:
    return sum(a.kind == kind for a in attempts)


def _engine(attempt: Attempt, data: dict[str, Any]) -> None:
    attempt.engine = str(data.get("engine_id", "")) or attempt.engine
    attempt.model = str(data.get("model", "")) or attempt.model
    attempt.prompt_version = str(data.get("prompt_version", "")) or attempt.prompt_version


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def fold(events: list[dict[str, Any]], until: int | None = None) -> Timeline:
    timeline = Timeline()
    for event in events:
        if until is not None and event["position"] > until:
            break
        timeline.apply(event)
    return timeline


class Timelines:
    """The last timeline of the runs looked at lately, each folded on from where it was (LRU)."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._runs: OrderedDict[str, Timeline] = OrderedDict()

    def get(self, run_id: str) -> Timeline:
        timeline = self._runs.pop(run_id, None) or Timeline()
        self._runs[run_id] = timeline
        while len(self._runs) > self._size:
            self._runs.popitem(last=False)
        return timeline
