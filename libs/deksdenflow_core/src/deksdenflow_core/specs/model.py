"""What an import of a spec gives: a protocol's steps, its context, and the problems that refuse it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


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


def slug(title: str) -> str:
    """A step file's name part from a title: its first words, lowercase, joined by dashes."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words[:6]) or "step"
