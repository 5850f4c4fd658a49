"""Specs checked by the API: an import's files or a plan's steps read as the plan they make, with every
problem by file, line and field (the same check for ``POST /specs/validate`` and the import route); and a
run's stored plan as ``GET /protocols/{id}/spec`` shows it: checked again by today's rules, with its
latest audit and the prompts (the registry's names and versions) each phase used or will use."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from deksdenflow_core.assets import PROMPT_PHASES, prompt_text, version_of
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import QaPolicy, RunPolicy, StepPlan
from deksdenflow_core.domain import run_policy
from deksdenflow_core.domain.protocol_run import ProtocolRunState, plan
from deksdenflow_core.domain.protocol_run.audit import SPEC_RULES_VERSION, stored_plan
from deksdenflow_core.readmodel.sources import short
from deksdenflow_core.specs import check, codemachine, openspec, sandbox, speckit
from deksdenflow_core.specs.model import ImportedProtocol, SpecProblem

from deksdenflow_api.errors import HttpError
from deksdenflow_api.policy import policy_in
from deksdenflow_api.schemas import (
    CodeMachineCheck,
    CodeMachineImport,
    PlanCheck,
    PlannedStepPublic,
    PromptRefPublic,
    ProtocolImport,
    SpecAuditPublic,
    SpecCheckPublic,
    SpecProblemPublic,
    SpecPublic,
    SpecStep,
)


def read_import(
    body: ProtocolImport, *, parallel: bool = False
) -> tuple[check.SpecCheck, ImportedProtocol, str]:
    """A spec-kit or OpenSpec import's files as the protocol they make, checked; and where they come from.
    ``parallel``: spec-kit's [P] tasks become steps of a parallel group (the run may execute them at once)."""
    if body.kind == "speckit":
        imported = speckit.import_feature(
            body.files, feature=body.name, constitution=body.constitution, parallel=parallel
        )
        return (
            check.check_import(body.kind, imported, f"specs/{body.name}/tasks.md"),
            imported,
            f"spec-kit specs/{body.name}",
        )
    imported = openspec.import_change(body.files, change=body.name)
    return (
        check.check_import(body.kind, imported, f"openspec/changes/{body.name}/tasks.md"),
        imported,
        f"OpenSpec openspec/changes/{body.name}",
    )


async def read_codemachine(body: CodeMachineImport) -> tuple[check.SpecCheck, ImportedProtocol, str, str]:
    """A CodeMachine package (its JavaScript evaluated in the sandbox, off the event loop) or first-version
    workspace as the protocol it makes, checked; where it comes from and which format it is. 503 when the
    API has no Node.js to read a package with."""
    try:
        kind, imported = await asyncio.to_thread(
            codemachine.import_files, body.files, workflow=body.workflow or "", tracking=body.tracking
        )
    except sandbox.SandboxUnavailable as exc:
        raise HttpError(503, "sandbox_unavailable", str(exc)) from exc
    manifest = codemachine.manifest_name(body.files)
    source = (
        f"CodeMachine package {manifest or 'package'}: {imported.title}"
        if kind == "package"
        else f"CodeMachine workspace: {imported.title}"
    )
    where = codemachine.MANIFEST if kind == "package" else codemachine.TRACKING
    return check.check_import(f"CodeMachine {kind}", imported, where), imported, source, kind


def parallel_of(body: ProtocolImport, base: RunPolicy | None = None) -> bool:
    """Whether a run with this import's policy (over ``base``, the project's) executes a parallel group's
    steps at once."""
    return run_policy.parallel_steps(run_policy.resolve(base, policy_in(body.run_policy))) > 1


async def check_spec(body: PlanCheck | ProtocolImport | CodeMachineCheck) -> SpecCheckPublic:
    """``POST /specs/validate``'s answer for a plan or an import (spec-kit's as a run with the body's own
    run policy over the default one would import it)."""
    if isinstance(body, PlanCheck):
        checked = check.check_plan(body.steps)
    elif isinstance(body, CodeMachineCheck):
        checked = (await read_codemachine(body))[0]
    else:
        checked = read_import(body, parallel=parallel_of(body))[0]
    return SpecCheckPublic(
        valid=checked.valid,
        kind=checked.kind,
        title=checked.title or None,
        rules_version=SPEC_RULES_VERSION,
        spec_hash=plan.spec_hash(plan.normalise(checked.steps)) if checked.valid else None,
        problems=problems_public(checked.problems),
        steps=[PlannedStepPublic(**planned_step(s)) for s in checked.steps],
        skipped=list(checked.skipped),
        policies=policies_of(checked.steps),
    )


def problems_public(problems: Iterable[SpecProblem]) -> list[SpecProblemPublic]:
    return [SpecProblemPublic(file=p.file, line=p.line, field=p.field, message=p.message) for p in problems]


def planned_step(step: StepPlan) -> dict[str, Any]:
    """A plan's step as the public bodies show it (enums by their short names, unset as null)."""
    return {
        "index": step.index,
        "name": step.name,
        "step_type": short(step.step_type),
        "engine_id": step.engine_id or None,
        "model": step.model or None,
        "qa_policy": short(step.qa_policy),
        "labels": list(step.labels),
        "fallbacks": list(step.fallbacks),
        "critical": step.critical,
        "policies": step.policies.model_dump(mode="json") if step.policies is not None else None,
        "parallel_group": step.parallel_group or None,
    }


def policies_of(steps: Iterable[StepPlan]) -> dict[str, dict[str, Any]]:
    """The policies of the steps that have any, by step name."""
    return {s.name: s.policies.model_dump(mode="json") for s in steps if s.policies is not None}


# The prompt each phase of a step's work uses: execution's, and QA's by the step's QA policy (a step
# whose QA is skipped gets the full one when a person asks for it).
_QA_PROMPTS = {QaPolicy.LIGHT: "qa-light"}


def stored_spec(
    state: ProtocolRunState, usage: list[dict[str, Any]], audit: dict[str, Any] | None
) -> SpecPublic:
    """``GET /protocols/{id}/spec`` from the run's folded state, the prompts its calls used (rows of
    ``usage_records`` grouped by step, phase, prompt name and version) and its latest audit event."""
    steps = stored_plan(state)
    problems = check.plan_problems(steps, "plan") if steps else []
    used: dict[str | None, list[PromptRefPublic]] = {}
    for row in usage:
        used.setdefault(row["step_run_id"], []).append(
            PromptRefPublic(
                name=row["prompt_name"],
                phase=PROMPT_PHASES.get(row["prompt_name"], row["phase"] or ""),
                version=row["prompt_version"],
                used=True,
                calls=int(row["calls"]),
                step_run_id=row["step_run_id"],
            )
        )
    planning = used.get(None, [])
    if not planning and state.imported is None and not steps:
        planning = [_builtin("planning", None)]
    return SpecPublic(
        protocol_run_id=state.protocol_run_id,
        spec_hash=state.spec_hash or None,
        validation_status="none" if not steps else "invalid" if problems else "valid",
        rules_version=SPEC_RULES_VERSION,
        problems=problems_public(problems),
        audit=SpecAuditPublic(
            rules_version=int(audit["payload"].get("rules_version", 0)),
            problems=list(audit["payload"].get("problems") or []),
            time=audit["time"],
            event_seq=audit["seq"],
        )
        if audit is not None
        else None,
        source=state.imported.source if state.imported is not None else None,
        steps=[
            SpecStep(
                **planned_step(s),
                step_run_id=s.step_run_id,
                prompts=_step_prompts(s, used.get(s.step_run_id, [])),
            )
            for s in steps
        ],
        policies=policies_of(steps),
        prompts=planning,
    )


def _step_prompts(step: StepPlan, used: list[PromptRefPublic]) -> list[PromptRefPublic]:
    """The prompts the step's calls used, and the built-in ones of the phases it has not called yet."""
    names = {"exec"}
    if step.qa_policy is not QaPolicy.SKIP:
        names.add(_QA_PROMPTS.get(step.qa_policy, "qa"))
    called = {p.name for p in used}
    return sorted(
        [*used, *(_builtin(n, step.step_run_id) for n in names - called)],
        key=lambda p: (p.phase, p.name, not p.used, p.version),
    )


def _builtin(name: str, step_run_id: str | None) -> PromptRefPublic:
    return PromptRefPublic(
        name=name,
        phase=PROMPT_PHASES[name],
        version=version_of(prompt_text(name)),
        used=False,
        calls=0,
        step_run_id=step_run_id,
    )
