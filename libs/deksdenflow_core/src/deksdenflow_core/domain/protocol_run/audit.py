"""The spec audit: a run's stored plan checked again after the spec rules changed.

A plan is checked when it is accepted (``plan.plan_problems``); the rules may tighten later, and a plan
accepted under the old ones must not go on as if nothing had changed. ``SPEC_RULES_VERSION`` names the
rules of this code: bump it whenever ``plan.plan_problems`` (or a rule it calls) accepts less, and every
deployment audits the stored plans once more. An audit records what it finds as an event only when that
differs from what the run's last audit found, so auditing again changes nothing; while a planned run has
findings it may not leave ``planned`` (it is planned again, or the findings clear).
"""

from __future__ import annotations

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import StepPlan
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import plan
from deksdenflow_core.domain.protocol_run.evolve import ProtocolRunEvent
from deksdenflow_core.domain.protocol_run.state import ProtocolRunState, RunStatus

# The version of the spec rules (``plan.plan_problems``): bumped when they change.
SPEC_RULES_VERSION = 1


def stored_plan(state: ProtocolRunState) -> tuple[StepPlan, ...]:
    """The plan the run accepted, as recorded; for a run folded before plans were kept, as its steps say
    it was (which is all such a plan had: the fields added since were not set)."""
    if state.plan:
        return state.plan
    return tuple(
        StepPlan(
            step_run_id=s.step_run_id,
            index=s.index,
            name=s.name,
            step_type=s.step_type,
            engine_id=s.engine_id,
            model=s.model,
            qa_policy=s.qa_policy,
            qa_engine_id=s.qa_engine_id,
            qa_model=s.qa_model,
            file_path=s.file_path,
        )
        for s in state.steps
    )


def spec_problems(state: ProtocolRunState) -> list[str]:
    """What today's rules find wrong with the run's stored plan (nothing when it has none)."""
    steps = stored_plan(state)
    return plan.plan_problems(steps) if steps else []


def audit(state: ProtocolRunState) -> list[ProtocolRunEvent]:
    """The audit of one run: its findings under today's rules, recorded when they differ from its last
    audit's. A run without a plan, or that ended, has nothing to audit."""
    if state.is_terminal or not state.spec_hash:
        return []
    if state.spec_rules_version > SPEC_RULES_VERSION:
        return []  # newer rules audited it (a replica of the next release): older ones do not overrule
    problems = tuple(spec_problems(state))
    if problems == state.spec_findings:
        return []
    return [ev.SpecAudited(rules_version=SPEC_RULES_VERSION, problems=problems, spec_hash=state.spec_hash)]


def held_back(state: ProtocolRunState) -> bool:
    """A planned run whose plan the last audit found wrong: none of its steps may run."""
    return state.effective_status is RunStatus.PLANNED and bool(state.spec_findings)


def hold_reason(state: ProtocolRunState) -> str:
    return (
        f"the plan breaks the spec rules of version {state.spec_rules_version} (found by a spec audit): "
        + "; ".join(state.spec_findings)
        + ". Plan it again (start, or reject_plan with a reason) or wait for the findings to clear"
    )
