"""Turning the planner's structured output into protocol files and a plan the domain accepts.

A step file may carry settings of its own as lines of its text (as it may a ``Scope:`` line for the
guardrails): ``Fallbacks: claude-code:claude-sonnet-4-5, codex:gpt-5-mini`` is the step's own fallback
chain for its execution, and ``Critical: yes`` has a second QA reviewer judge it too. Such lines are the
planner's: a refinement of the step keeps them as planned (``keep_settings``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    ImportedPlan,
    QaPolicy,
    StepPlan,
    StepPolicies,
    StepType,
)
from deksdenflow_core.domain.protocol_run import plan as domain_plan
from deksdenflow_core.errors import PermanentFailure

from deksdenflow_codex_worker.prompts import schema

RESERVED_FILES = ("plan.md", "context.md", "log.md")
_FALLBACKS_LINE = re.compile(
    r"^\s*(?:[-*]\s*)?(?P<b>(?:\*\*)?)fallbacks(?:(?P=b)\s*:|\s*:\s*(?P=b))\s*(?P<entries>.+)$",
    re.IGNORECASE | re.MULTILINE,
)
_CRITICAL_LINE = re.compile(
    r"^\s*(?:[-*]\s*)?\**critical\**\s*:\s*\**(yes|true)\**\s*$", re.IGNORECASE | re.MULTILINE
)
# Any settings line (what a refinement of the step must keep as planned).
_SETTING_LINE = re.compile(
    r"^\s*(?:[-*]\s*)?\**(?P<key>scope|fallbacks|critical)\**\s*:.*$", re.IGNORECASE | re.MULTILINE
)
_QA = {"skip": QaPolicy.SKIP, "light": QaPolicy.LIGHT, "full": QaPolicy.FULL, None: QaPolicy.FULL}


class InvalidOutput(PermanentFailure):
    """The agent's structured output does not match its schema (or the rules behind it). A job re-asks
    once; output that stays invalid will never be valid as asked."""

    code = "invalid_output"


@dataclass(frozen=True)
class PlannedFile:
    filename: str
    content: str
    qa_policy: QaPolicy
    engine_id: str
    model: str
    # As an imported spec gives them (a planning agent's plan has none).
    policies: StepPolicies | None = None
    labels: tuple[str, ...] = ()
    # An imported spec's parallel group (see StepPlan.parallel_group).
    parallel_group: str = ""


@dataclass(frozen=True)
class PlanOutput:
    plan_md: str
    context_md: str
    log_md: str
    steps: tuple[PlannedFile, ...]

    def files(self) -> dict[str, str]:
        """Every file of the protocol folder, by name."""
        return {
            "plan.md": self.plan_md,
            "context.md": self.context_md,
            "log.md": self.log_md,
            **{s.filename: s.content for s in self.steps},
        }

    def spec(self) -> list[dict[str, object]]:
        """Per-step settings as written next to the step files (read back if a job finds its work done)."""
        return [
            {
                "filename": s.filename,
                "qa_policy": s.qa_policy.name.lower(),
                "engine_id": s.engine_id or None,
                "model": s.model or None,
            }
            for s in self.steps
        ]

    def step_plans(self, protocol_root: str) -> tuple[StepPlan, ...]:
        return tuple(
            StepPlan(
                index=i,
                name=s.filename,
                step_type=StepType.SETUP if i == 0 and len(self.steps) > 1 else StepType.WORK,
                engine_id=s.engine_id,
                model=s.model,
                qa_policy=s.qa_policy,
                file_path=f"{protocol_root}/{s.filename}",
                policies=s.policies,
                labels=s.labels,
                parallel_group=s.parallel_group,
                fallbacks=step_fallbacks(s.content),
                critical=bool(_CRITICAL_LINE.search(s.content)),
            )
            for i, s in enumerate(self.steps)
        )


def keep_settings(planned: str, refined: str) -> str:
    """``refined`` with the settings lines of ``planned`` (``Scope:``, ``Fallbacks:``, ``Critical:``):
    the refinement details the work; what the step may touch and how it runs stay as planned."""
    settings = [m.group(0).strip() for m in _SETTING_LINE.finditer(planned)]
    if not settings and not _SETTING_LINE.search(refined):
        return refined
    body = (
        "\n".join(line for line in refined.splitlines() if not _SETTING_LINE.match(line)).rstrip("\n") + "\n"
    )
    return body + ("\n" + "\n".join(settings) + "\n" if settings else "")


def step_fallbacks(content: str) -> list[str]:
    """The entries of a step file's ``Fallbacks:`` lines, in order (none: the project's chain)."""
    entries: list[str] = []
    for match in _FALLBACKS_LINE.finditer(content):
        entries += [e.strip(" `'\"*") for e in match.group("entries").split(",") if e.strip(" `'\"*")]
    return entries


def parse_json(text: str, schema_name: str) -> Any:
    """The agent's last message as JSON valid against ``schema_name``, or ``InvalidOutput`` saying why."""
    try:
        value = json.loads(_strip_fence(text))
    except json.JSONDecodeError as exc:
        raise InvalidOutput(f"not JSON ({exc.msg} at line {exc.lineno})") from exc
    errors = sorted(
        jsonschema.Draft202012Validator(schema(schema_name)).iter_errors(value), key=lambda e: list(e.path)
    )
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        raise InvalidOutput(f"does not match {schema_name}: {where}: {first.message}")
    return value


def parse_plan(text: str, protocol_root: str) -> PlanOutput:
    """Validate the planner's output: the schema, then the rules the domain will apply."""
    value = parse_json(text, "protocol-planning")
    files = sorted(value["step_files"], key=lambda f: f["filename"])
    steps = tuple(
        PlannedFile(
            filename=f["filename"],
            content=f["content"],
            qa_policy=_QA[f.get("qa_policy")],
            engine_id=f.get("engine_id") or "",
            model=f.get("model") or "",
        )
        for f in files
    )
    numbers = [int(s.filename[:2]) for s in steps]
    if numbers != list(range(len(steps))):
        raise InvalidOutput(f"step files must be numbered 00, 01, ... without gaps, got {numbers}")
    out = PlanOutput(value["plan_md"], value["context_md"], value["log_md"], steps)
    problems = domain_plan.plan_problems(out.step_plans(protocol_root))
    if problems:
        raise InvalidOutput("; ".join(problems))
    return out


def _strip_fence(text: str) -> str:
    """Models sometimes wrap JSON in a Markdown code fence although told not to; accept that much."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        body = stripped[3:-3]
        return body.split("\n", 1)[1] if "\n" in body else body
    return stripped


def imported_plan(plan: ImportedPlan, task_name: str) -> PlanOutput:
    """A plan imported from a spec written elsewhere, as the planner's output: its steps (QA full; the
    engine, model, policies and labels the spec gives, else the project's), its context, and a log that
    says where it came from."""
    steps = tuple(
        PlannedFile(
            filename=s.filename,
            content=s.content,
            qa_policy=QaPolicy.FULL,
            engine_id=s.engine_id,
            model=s.model,
            policies=s.policies,
            labels=s.labels,
            parallel_group=s.parallel_group,
        )
        for s in plan.steps
    )
    listing = "".join(
        f"{i + 1}. `{s.filename}`" + (f" ({', '.join(s.labels)})" if s.labels else "") + "\n"
        for i, s in enumerate(plan.steps)
    )
    plan_md = plan.plan_md or f"# Plan: {task_name}\n\nImported from {plan.source}.\n\n{listing}"
    log_md = f"# Log\n\n- Plan imported from {plan.source} (no planning agent).\n"
    return PlanOutput(
        plan_md, plan.context_md or f"# Context\n\nImported from {plan.source}.\n", log_md, steps
    )
