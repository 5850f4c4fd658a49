"""What an import of a spec gives: a protocol's steps, its context, and the problems that refuse it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import StepPolicies


@dataclass(frozen=True)
class SpecProblem:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


@dataclass(frozen=True)
class ImportedStep:
    filename: str
    content: str
    labels: tuple[str, ...] = ()
    policies: StepPolicies | None = None  # loop, trigger, checkpoint (CodeMachine's behaviours)
    engine_id: str = ""  # as the spec gives them; empty: the run's
    model: str = ""
    # Steps sharing a group may execute at once where the run policy allows (StepPlan.parallel_group).
    parallel_group: str = ""


@dataclass(frozen=True)
class ImportedProtocol:
    """A protocol made from a spec: its steps in order, its context, and the problems that refuse it."""

    title: str
    steps: tuple[ImportedStep, ...]
    context_md: str
    problems: tuple[SpecProblem, ...] = ()
    skipped: tuple[str, ...] = field(default=())  # phases left out as done


# CodeMachine's engine ids that name an engine deksdenflow runs; a step on another engine (cursor,
# opencode, …) runs on the run's engine.
ENGINES = {"codex": "codex", "claude": "claude-code", "claude-code": "claude-code"}


def as_dict(value: object) -> dict[str, Any]:
    """``value`` if it is a mapping (as evaluated or parsed data often is not), else an empty one."""
    return value if isinstance(value, dict) else {}


def strings(value: object) -> list[str]:
    """The text items of ``value`` if it is a list (evaluated or parsed data is not to be trusted)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def slug(title: str) -> str:
    """A step file's name part from a title: its first words, lowercase, joined by dashes."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words[:6]) or "step"
