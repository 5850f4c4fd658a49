"""``evolve_protocol_run`` as readers depend on it: total over the event union, one new state per
event, and new objects only for the steps an event changes (the projector writes those rows only)."""

from __future__ import annotations

import typing

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import QaVerdict, TokenUsage
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import project as pev
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.context import InvariantViolation
from deksdenflow_core.domain.protocol_run import (
    ProtocolRunEvent,
    ProtocolRunState,
    RunStatus,
    decide_protocol_run,
    evolve_protocol_run,
)
from deksdenflow_core.domain.protocol_run.evolve import _HANDLERS
from deksdenflow_core.domain.protocol_run.updates import replace
from deksdenflow_core.errors import InvalidCommand

from tests.domain.builders import apply, ctx, new_run, planned_run


def test_every_event_of_the_union_has_a_handler_and_nothing_else_does() -> None:
    assert set(_HANDLERS) == set(typing.get_args(ProtocolRunEvent))


def test_an_event_of_another_aggregate_is_rejected() -> None:
    with pytest.raises(InvariantViolation, match="not a protocol_run event"):
        evolve_protocol_run(new_run(), pev.ProjectOnboardingRequested())  # type: ignore[arg-type]  # the point


def test_only_the_changed_step_is_a_new_object_and_the_version_counts_events() -> None:
    run = apply(planned_run(3), cmd.RunNextStep())
    first = run.steps[0]
    after = evolve_protocol_run(run, ev.StepExecutionStarted(step_run_id=first.step_run_id, worker_id="w1"))
    assert after.version == run.version + 1
    assert after.steps[0] is not first
    assert after.steps[0].owner == "w1"
    assert after.steps[1] is run.steps[1]
    assert after.steps[2] is run.steps[2]
    assert run.steps[0].owner == ""  # the old state is untouched


def test_an_event_that_changes_no_step_still_counts_and_keeps_every_step() -> None:
    run = apply(planned_run(2), cmd.RunNextStep())
    sid = run.steps[0].step_run_id
    after = evolve_protocol_run(run, ev.StepAttemptFailed(step_run_id=sid, attempt=0, reason="try again"))
    assert after.version == run.version + 1
    assert after.steps is run.steps
    assert after.last_error == "try again"  # an agent call's failed try is the run's latest error
    assert after.model_dump(exclude={"version", "last_error"}) == run.model_dump(
        exclude={"version", "last_error"}
    )


def test_usage_counts_on_the_run_and_on_its_step() -> None:
    run = planned_run(2)
    sid = run.steps[1].step_run_id
    usage = TokenUsage(input_tokens=10, output_tokens=3)
    after = evolve_protocol_run(
        run, ev.UsageRecorded(call_id="c1", step_run_id=sid, usage=usage, cost_micro_usd=7)
    )
    assert (after.input_tokens, after.output_tokens, after.cost_micro_usd) == (10, 3, 7)
    assert (after.steps[1].input_tokens, after.steps[1].cost_micro_usd) == (10, 7)
    assert after.steps[0] is run.steps[0]
    assert after.usage_call_ids == {"c1"}


def test_a_qa_verdict_keeps_its_report_path_on_its_step_until_the_next_verdict() -> None:
    run = apply(planned_run(2), cmd.RunNextStep())
    sid = run.steps[0].step_run_id
    run = apply(run, cmd.RecordStepExecutionCompleted(step_run_id=sid, auto_qa=True))
    run = apply(
        run, cmd.RecordQaVerdict(step_run_id=sid, qa_attempt=1, report_path=".protocols/p/qa/00-1.md")
    )
    assert run.steps[0].last_report_path == ".protocols/p/qa/00-1.md"
    assert run.steps[1].last_report_path == ""
    run = apply(run, cmd.RunStepQa(step_run_id=sid))
    assert run.steps[0].last_report_path == ".protocols/p/qa/00-1.md", "kept while the next QA runs"
    run = apply(run, cmd.RecordQaVerdict(step_run_id=sid, qa_attempt=2, verdict=QaVerdict.PASS))
    assert run.steps[0].last_report_path == "", "a verdict naming no report has none"


def test_an_unknown_step_is_an_invariant_violation() -> None:
    with pytest.raises(InvariantViolation, match="unknown step nope"):
        evolve_protocol_run(planned_run(1), ev.StepExecutionStarted(step_run_id="nope", worker_id="w"))


def test_replace_is_model_copy_without_validation() -> None:
    run = planned_run(1)
    copied = replace(run, {"status": RunStatus.BLOCKED, "blocked_reason": "x"})
    expected = run.model_copy(update={"status": RunStatus.BLOCKED, "blocked_reason": "x"})
    assert copied == expected
    assert copied.model_fields_set == expected.model_fields_set
    assert isinstance(copied, ProtocolRunState)
    assert copied is not run
    with pytest.raises(Exception, match="frozen"):
        copied.blocked_reason = "y"  # type: ignore[misc]  # frozen like any state


def test_a_budget_warning_is_recorded_once_per_budget_and_a_step_budget_per_step() -> None:
    run = planned_run(2)
    first, second = (s.step_run_id for s in run.steps)

    def warn(scope: str, step: str = "", kind: str = "cost") -> cmd.RecordBudgetWarning:
        return cmd.RecordBudgetWarning(scope=scope, kind=kind, step_run_id=step, share=0.8, spent=8, limit=10)

    warned = apply(run, warn("protocol", first))
    assert warned.version == run.version + 1
    assert decide_protocol_run(warned, warn("protocol", second), ctx("s")) == []  # once per run
    assert decide_protocol_run(warned, warn("protocol", kind="tokens"), ctx("s")) != []  # another budget
    on_step = apply(warned, warn("step", first))
    assert decide_protocol_run(on_step, warn("step", first), ctx("s")) == []
    assert decide_protocol_run(on_step, warn("step", second), ctx("s")) != []  # another step's budget
    with pytest.raises(InvalidCommand):
        decide_protocol_run(run, warn("run"), ctx("s"))
