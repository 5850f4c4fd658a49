"""What the rows of the read tables are read from: a folded aggregate, a step of a folded run, an event
that adds a row of its own; and the two conversions their readers share."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import JobRetry
from deksdenflow_core.domain.protocol_run.state import StepState

State = TypeVar("State")
Event = TypeVar("Event")


@dataclass(frozen=True, slots=True)
class FoldedAggregate(Generic[State]):
    """An aggregate as folded: its state, when it began and last changed, the sequence of its last event."""

    id: str
    state: State
    created_at: datetime
    updated_at: datetime
    last_seq: int


@dataclass(frozen=True, slots=True)
class StepOfRun:
    """A step of a folded run, and the first and last time a batch changed it."""

    step: StepState
    protocol_run_id: str
    project_id: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Fact(Generic[Event]):
    """An event that adds a row of its own (a usage record, a CI report, a token), and where it was
    recorded: its aggregate, its decision's stream sequence, its place in the log and its time."""

    event: Event
    project_id: str
    aggregate_id: str
    seq: int
    at: datetime
    position: int = 0


_SHORT: dict[enum.Enum, str | None] = {}


def short(member: enum.Enum) -> str | None:
    """``StepType.WORK`` → ``work``: read tables use the short lowercase names users know."""
    try:
        return _SHORT[member]
    except KeyError:
        name = _SHORT[member] = None if member.name == "UNSPECIFIED" else member.name.lower()
        return name


def json_text(value: Any) -> bytes:
    """JSON text for a jsonb column (an array of jsonb would read a Python list as a nested array)."""
    return json.dumps(value, separators=(",", ":")).encode()


def retry_json(retry: JobRetry | None) -> bytes | None:
    """A job's retry as its readers see it (times as ISO 8601), or None when nothing is retrying."""
    if retry is None:
        return None
    return json_text(
        {
            "job": retry.job,
            "step_run_id": retry.step_run_id or None,
            "delivery": retry.delivery,
            "max_deliveries": retry.max_deliveries,
            "error": retry.error,
            "failed_at": _iso(retry.failed_at_ms),
            "next_try_at": _iso(retry.next_try_at_ms),
        }
    )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def step_policies_json(step: StepState) -> bytes | None:
    """A step's loop, trigger and checkpoint policies as the plan gave them, or None when it has none."""
    return step.policies.model_dump_json().encode() if step.policies is not None else None


def run_order_key(step: StepState) -> str:
    """A step's place in its run as text that sorts in order: ``0002`` for planned step 2, ``0002.0005`` for
    step 5 that step 2's trigger queued (shown right after it), and so on down a chain of triggers."""
    return ".".join(f"{i:04d}" for i in step.run_order or (step.index,))


def runtime_state_json(step: StepState) -> bytes:
    """What a step's policies have done so far: loops taken, where a trigger put it, its agent's last
    directive."""
    directive = step.directive
    return json_text(
        {
            "loop_iterations": step.loop_iterations,
            "trigger_depth": step.trigger_depth,
            "queued_by": step.queued_by or None,
            "last_directive": (
                {"action": short(directive.action), "reason": directive.reason} if directive else None
            ),
        }
    )
