"""Validation of a plan before it is accepted (a run is never ``planned`` with an invalid spec)."""

from __future__ import annotations

import hashlib
import json
import re

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import QaPolicy, StepPlan, StepType
from deksdenflow_core.domain.project import MAX_FALLBACKS, is_fallback_entry
from deksdenflow_core.domain.protocol_run.policies import policy_problems

MAX_STEPS = 99
# The engines a plan may name (the codex worker's registry; the planning schema's enum).
ENGINES = ("codex", "claude-code", "scripted")
_STEP_FILE = re.compile(r"^\d{2}-[a-z0-9][a-z0-9._-]*\.md$")
_RESERVED = frozenset({"plan.md", "context.md", "log.md"})


def plan_problems(steps: tuple[StepPlan, ...]) -> list[str]:
    """Every reason the plan is not acceptable; empty when it is."""
    problems: list[str] = []
    if not steps:
        return ["the plan has no steps"]
    if len(steps) > MAX_STEPS:
        problems.append(f"the plan has {len(steps)} steps; at most {MAX_STEPS} are allowed")
    indexes = [s.index for s in steps]
    if sorted(indexes) != list(range(len(steps))):
        problems.append(f"step indexes must be 0..{len(steps) - 1} without gaps or repeats, got {indexes}")
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        problems.append("step file names must be unique")
    for s in steps:
        if s.name in _RESERVED or not _STEP_FILE.match(s.name):
            problems.append(f"step {s.index}: {s.name!r} is not a step file name like '01-build.md'")
        if s.step_type is StepType.UNSPECIFIED:
            problems.append(f"step {s.index}: step_type is required")
    first = min(steps, key=lambda s: s.index)
    if len(steps) > 1 and first.step_type is not StepType.SETUP:
        problems.append("step 0 must be the setup step")
    problems.extend(policy_problems(steps))
    problems += step_fallback_problems(steps)
    return problems


def step_fallback_problems(steps: tuple[StepPlan, ...]) -> list[str]:
    """What is wrong with the steps' own fallback chains: each entry ``engine`` or ``engine:model`` with
    an engine deksdenflow has, at most ``MAX_FALLBACKS`` of them."""
    problems: list[str] = []
    for s in steps:
        where = f"step {s.index} ({s.name}): fallbacks"
        if len(s.fallbacks) > MAX_FALLBACKS:
            problems.append(f"{where}: at most {MAX_FALLBACKS} entries, got {len(s.fallbacks)}")
        for entry in s.fallbacks:
            if not is_fallback_entry(entry):
                problems.append(f"{where}: {entry!r} is not engine or engine:model")
            elif entry.partition(":")[0] not in ENGINES:
                problems.append(f"{where}: {entry!r} names an unknown engine (known: {', '.join(ENGINES)})")
    return problems


def normalise(steps: tuple[StepPlan, ...]) -> tuple[StepPlan, ...]:
    """Steps in index order, with defaults made explicit (QA policy unset means full)."""
    ordered = sorted(steps, key=lambda s: s.index)
    return tuple(
        s.model_copy(update={"qa_policy": QaPolicy.FULL}) if s.qa_policy is QaPolicy.UNSPECIFIED else s
        for s in ordered
    )


def spec_hash(steps: tuple[StepPlan, ...]) -> str:
    """First 12 hex of the SHA-256 of the canonical JSON of the spec (ids excluded). Fields added after
    the first plans (policies, fallbacks, labels, parallel group, critical) count only when set, so a
    plan's hash does not change with the contract's additions."""
    canonical = json.dumps(
        [_hashed(s) for s in steps],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


_ADDED_FIELDS = ("policies", "fallbacks", "labels", "parallel_group", "critical")


def _hashed(step: StepPlan) -> dict[str, object]:
    dumped: dict[str, object] = step.model_dump(mode="json", exclude={"step_run_id"})
    for name in _ADDED_FIELDS:
        if getattr(step, name) == type(step).model_fields[name].get_default(call_default_factory=True):
            dumped.pop(name, None)
    return dumped
