"""A run's spec page: the prompts of its phases as rows, from ``GET /protocols/{id}/spec``'s body (the
console reads it like any client); its steps' policies in words come from
``deksdenflow_core.specs.policy_words``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def prompt_rows(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every prompt of the run, planning's first then each step's, with what it is for (``what``)."""
    rows = [{"what": "Planning", **p} for p in spec.get("prompts", [])]
    for step in spec.get("steps", []):
        rows.extend({"what": step["name"], **p} for p in step.get("prompts", []))
    return rows
