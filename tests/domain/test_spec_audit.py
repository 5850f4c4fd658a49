"""The spec audit in the pure domain: a stored plan checked again by today's rules, findings recorded only
when they change, and a planned run with findings held in ``planned`` until it is planned again or they
clear."""

from __future__ import annotations

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    ExecutionReason,
    RunMode,
    RunPolicy,
    StepPlan,
    StepType,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import (
    ProtocolRunState,
    RunStatus,
    decide_protocol_run,
    evolve_protocol_run,
)
from deksdenflow_core.domain.protocol_run.audit import SPEC_RULES_VERSION, spec_problems, stored_plan
from deksdenflow_core.domain.protocol_run.autopilot import waiting_for
from deksdenflow_core.errors import IllegalTransition

from tests.domain.builders import apply, ctx, new_run, plan_steps, planned_run

# A plan today's rules refuse (step 0 is not the setup step), as a log written under older rules holds it.
_OLD_PLAN = (
    StepPlan(step_run_id="s0", index=0, name="00-build.md", step_type=StepType.WORK, labels=["US1"]),
    StepPlan(step_run_id="s1", index=1, name="01-test.md", step_type=StepType.WORK),
)


def _accepted_long_ago(run: ProtocolRunState) -> ProtocolRunState:
    """``run`` (planning) with ``_OLD_PLAN`` accepted: the event as the log has it, not decided today."""
    return evolve_protocol_run(
        run, ev.PlanningCompleted(attempt=1, steps=_OLD_PLAN, spec_hash="0123456789ab")
    )


def _audited(run: ProtocolRunState) -> tuple[list[ev.SpecAudited], ProtocolRunState]:
    events = decide_protocol_run(run, cmd.AuditSpec(), ctx())
    for e in events:
        run = evolve_protocol_run(run, e)
    return [e for e in events if isinstance(e, ev.SpecAudited)], run


def test_a_sound_plan_or_no_plan_or_an_ended_run_records_nothing() -> None:
    assert _audited(planned_run())[0] == []
    assert _audited(new_run())[0] == []
    ended = apply(_accepted_long_ago(apply(new_run(), cmd.StartProtocolRun())), cmd.CancelProtocolRun())
    assert _audited(ended)[0] == []


def test_findings_are_recorded_once_and_hold_the_run_in_planned_until_it_is_planned_again() -> None:
    run = _accepted_long_ago(apply(new_run(), cmd.StartProtocolRun()))
    assert run.plan == _OLD_PLAN  # kept whole: the labels too
    recorded, run = _audited(run)
    assert [(e.rules_version, list(e.problems), e.spec_hash) for e in recorded] == [
        (SPEC_RULES_VERSION, ["step 0 must be the setup step"], "0123456789ab")
    ]
    assert run.spec_findings == ("step 0 must be the setup step",)
    assert waiting_for(run) == "spec"
    assert _audited(run)[0] == []  # the same findings again: nothing to record

    for refused in (cmd.RunNextStep(), cmd.RunStep(step_run_id="s0")):
        with pytest.raises(IllegalTransition, match="step 0 must be the setup step") as raised:
            decide_protocol_run(run, refused, ctx())
        assert raised.value.fields["current_status"] == "planned"

    # Planned again (start re-plans a planned run) with a plan today's rules accept: the findings go.
    replanned = apply(
        apply(run, cmd.StartProtocolRun()), cmd.RecordPlanningCompleted(attempt=2, steps=plan_steps(2))
    )
    assert (replanned.status, replanned.spec_findings) == (RunStatus.PLANNED, ())
    assert _audited(replanned)[0] == []
    assert apply(replanned, cmd.RunNextStep()).status is RunStatus.RUNNING


def test_findings_that_clear_are_recorded_and_an_autopilot_run_goes_on_by_itself() -> None:
    run = apply(new_run(run_policy=RunPolicy(mode=RunMode.AUTOPILOT)), cmd.StartProtocolRun())
    run = evolve_protocol_run(run, ev.PlanningCompleted(attempt=1, steps=_OLD_PLAN, spec_hash="0123456789ab"))
    recorded, run = _audited(run)
    assert len(recorded) == 1
    assert run.status is RunStatus.PLANNED  # autopilot asks for no step of a plan with findings

    # The rules that found them were relaxed (the audit of a later version finds nothing): it clears, and
    # the autopilot takes the first step in the same decision.
    sound = run.model_copy(update={"plan": stored_plan(planned_run(2))})
    events = decide_protocol_run(sound, cmd.AuditSpec(), ctx())
    cleared, first_step = events
    assert isinstance(cleared, ev.SpecAudited)
    assert isinstance(first_step, ev.StepExecutionRequested)
    assert (list(cleared.problems), first_step.reason) == ([], ExecutionReason.AUTOPILOT)


def test_a_run_folded_before_plans_were_kept_is_checked_by_its_steps() -> None:
    run = _accepted_long_ago(apply(new_run(), cmd.StartProtocolRun()))
    without = run.model_copy(update={"plan": ()})
    assert [s.name for s in stored_plan(without)] == ["00-build.md", "01-test.md"]
    assert spec_problems(without) == spec_problems(run) == ["step 0 must be the setup step"]


def test_findings_of_newer_rules_are_not_overruled_by_older_ones() -> None:
    # A replica of the next release audited the run first (a rolling deployment): this one leaves it.
    newer = evolve_protocol_run(
        planned_run(), ev.SpecAudited(rules_version=SPEC_RULES_VERSION + 1, problems=["a rule of tomorrow"])
    )
    assert _audited(newer)[0] == []
    with pytest.raises(IllegalTransition, match="a rule of tomorrow"):
        decide_protocol_run(newer, cmd.RunNextStep(), ctx())
