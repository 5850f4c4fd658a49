"""CI reports in any order and more than once, and several workflows on one commit (pure domain).

Deliveries are parsed from recorded-shape GitHub and GitLab payloads by the same parser the API uses, then
turned into ``RecordCiReport`` as the git worker does. Every permutation of one CI run's deliveries must
end in the state the in-order sequence ends in; and one workflow's success never clears another's failure
on the same commit, while the failing workflow's own re-run does.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from deksdenflow_api.webhooks import WebhookSignal, parse_github, parse_gitlab
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiProvider,
    CiRunRef,
    CiStatus,
    FailureSource,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import ProtocolRunState, RunStatus, StepStatus, decide_protocol_run

from tests.domain.builders import apply, ctx, planned_run
from tests.webhooks.payloads import load_json

SHA = "a" * 40
_STATUS = {"running": CiStatus.RUNNING, "success": CiStatus.SUCCESS, "failure": CiStatus.FAILURE}


def _github(event: str, fixture: str, **fields: Any) -> WebhookSignal:
    data = load_json(fixture, sha=SHA)
    block = data.get(event, data)
    block.update(fields)
    return parse_github(event, json.dumps(data).encode())


def _gitlab(fixture: str, jobs: list[dict[str, Any]] | None = None, **fields: Any) -> WebhookSignal:
    data = load_json(fixture, sha=SHA)
    data["object_attributes"].update(fields)
    if jobs is not None:
        data["builds"] = jobs
    return parse_gitlab("Pipeline Hook", json.dumps(data).encode())


def _workflow(conclusion: str | None, status: str, updated: str, **fields: Any) -> WebhookSignal:
    return _github(
        "workflow_run",
        "github_workflow_run_completed_failure",
        status=status,
        conclusion=conclusion,
        updated_at=updated,
        **fields,
    )


def _github_run(outcome: str, *, same_times: bool = False) -> list[WebhookSignal]:
    """queued → in_progress → completed of one workflow run (GitHub sends the three, in any order)."""
    times = ["2025-01-10T10:06:41Z"] * 3 if same_times else [f"2025-01-10T10:0{m}:00Z" for m in (2, 3, 7)]
    return [
        _workflow(None, "queued", times[0]),
        _workflow(None, "in_progress", times[1]),
        _workflow(outcome, "completed", times[2]),
    ]


def _gitlab_pipeline(outcome: str) -> list[WebhookSignal]:
    """pending → running → success/failed of one pipeline; the jobs carry the times."""
    created = {"created_at": "2025-01-10 10:02:03 UTC", "started_at": None, "finished_at": None}
    started = {**created, "started_at": "2025-01-10 10:02:05 UTC"}
    done = {**started, "finished_at": "2025-01-10 10:06:40 UTC"}
    word = "success" if outcome == "success" else "failed"
    return [
        _gitlab("gitlab_pipeline_running", [created], status="pending", finished_at=None),
        _gitlab("gitlab_pipeline_running", [started], status="running", finished_at=None),
        _gitlab("gitlab_pipeline_running", [done], status=word, finished_at="2025-01-10 10:06:41 UTC"),
    ]


def _report_sh(outcome: str) -> list[WebhookSignal]:
    """The CI callback (report.sh): a commit status with no id and no time, pending then the outcome."""

    def status(state: str) -> WebhookSignal:
        data = {"sha": SHA, "state": state, "context": "deksdenflow/report", "branches": []}
        return parse_github("status", json.dumps(data).encode())

    return [status("pending"), status(outcome)]


SEQUENCES = {
    **{f"github-workflow-run-{o}": _github_run(o) for o in ("failure", "success")},
    **{f"github-same-times-{o}": _github_run(o, same_times=True) for o in ("failure", "success")},
    **{f"gitlab-pipeline-{o}": _gitlab_pipeline(o) for o in ("failure", "success")},
    **{f"report-sh-{o}": _report_sh(o) for o in ("failure", "success")},
}


def _command(signal: WebhookSignal, delivery: str, *, auto_qa: bool, fix_attempts: int) -> cmd.RecordCiReport:
    """What the git worker makes of a recorded delivery (without a forge token to confirm success)."""
    assert signal.ci_state is not None, signal
    return cmd.RecordCiReport(
        provider=CiProvider.GITHUB if signal.provider == "github" else CiProvider.GITLAB,
        status=_STATUS[signal.ci_state],
        raw_status=signal.raw_status,
        head_sha=signal.head_sha,
        run_url=signal.run_url,
        delivery_id=delivery,
        auto_qa=auto_qa,
        fix_attempts=fix_attempts,
        ci_run=CiRunRef(
            check=signal.ci_check,
            run_id=signal.ci_run_id,
            attempt=signal.ci_run_attempt,
            updated_at_ms=signal.ci_updated_at_ms,
        ),
    )


def _waiting_on_ci() -> ProtocolRunState:
    """A run whose first step was executed (commit SHA) and waits in needs_qa."""
    run = apply(planned_run(2), cmd.RunNextStep())
    return apply(run, cmd.RecordStepExecutionCompleted(step_run_id=run.steps[0].step_run_id, commit_sha=SHA))


def _deliver(run: ProtocolRunState, commands: list[cmd.RecordCiReport]) -> ProtocolRunState:
    for command in commands:
        run = apply(run, command)
    return run


@pytest.mark.parametrize(("auto_qa", "fix_attempts"), [(False, 0), (False, 2), (True, 0)])
@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_every_order_of_one_ci_runs_deliveries_ends_where_the_in_order_sequence_does(
    name: str, auto_qa: bool, fix_attempts: int
) -> None:
    commands = [
        _command(s, f"{name}-{i}", auto_qa=auto_qa, fix_attempts=fix_attempts)
        for i, s in enumerate(SEQUENCES[name])
    ]
    assert len({c.ci_run.check for c in commands if c.ci_run}) == 1
    in_order = _deliver(_waiting_on_ci(), commands)
    step = in_order.steps[0]
    if name.endswith("failure"):
        assert (step.status, step.failure_source) == (StepStatus.FAILED, FailureSource.CI)
        assert (in_order.status is RunStatus.BLOCKED) == (fix_attempts == 0)
    elif auto_qa:
        assert (step.status, step.qa_pending) == (StepStatus.NEEDS_QA, True)
    else:
        assert step.status is StepStatus.COMPLETED
    for order in itertools.permutations(commands):
        assert _deliver(_waiting_on_ci(), list(order)) == in_order, [c.raw_status for c in order]
        # ... and more than once: every delivery again (another delivery id), in any order, changes nothing.
        again = [c.model_copy(update={"delivery_id": c.delivery_id + "-again"}) for c in order]
        assert _deliver(in_order, again).steps == in_order.steps


def test_a_late_in_progress_after_the_failure_leaves_the_step_failed_and_retry_open() -> None:
    queued, in_progress, failed = (
        _command(s, f"d{i}", auto_qa=False, fix_attempts=0) for i, s in enumerate(_github_run("failure"))
    )
    run = _deliver(_waiting_on_ci(), [queued, failed])
    events = decide_protocol_run(run, in_progress, ctx())
    assert len(events) == 1
    assert isinstance(events[0], ev.CiReported)
    assert events[0].stale
    run = apply(run, in_progress)
    assert (run.status, run.steps[0].status) == (RunStatus.BLOCKED, StepStatus.FAILED)
    retried = decide_protocol_run(run, cmd.RetryLatestStep(), ctx())
    assert [type(e) for e in retried] == [ev.StepExecutionRequested]


def test_a_rerun_of_the_same_workflow_is_newer_than_its_failure() -> None:
    """GitHub: the same run id with run_attempt 2. GitLab: a retried job makes the same pipeline run again,
    later than it finished."""
    first = [
        _command(s, f"a{i}", auto_qa=False, fix_attempts=0) for i, s in enumerate(_github_run("failure"))
    ]
    rerun = [
        _workflow(None, "in_progress", "2025-01-10T11:00:00Z", run_attempt=2),
        _workflow("success", "completed", "2025-01-10T11:05:00Z", run_attempt=2),
    ]
    run = _deliver(_waiting_on_ci(), first)
    run = apply(run, _command(rerun[0], "b0", auto_qa=False, fix_attempts=0))
    assert run.steps[0].status is StepStatus.RUNNING
    run = apply(run, _command(rerun[1], "b1", auto_qa=False, fix_attempts=0))
    assert (run.steps[0].status, run.status) == (StepStatus.COMPLETED, RunStatus.RUNNING)

    pipeline = [
        _command(s, f"g{i}", auto_qa=False, fix_attempts=0) for i, s in enumerate(_gitlab_pipeline("failure"))
    ]
    retried = {
        "created_at": "2025-01-10 10:10:00 UTC",
        "started_at": "2025-01-10 10:10:02 UTC",
        "finished_at": None,
    }
    retry = _gitlab("gitlab_pipeline_running", [retried], status="running", finished_at=None)
    run = _deliver(_waiting_on_ci(), pipeline)
    assert run.steps[0].status is StepStatus.FAILED
    run = apply(run, _command(retry, "g-retry", auto_qa=False, fix_attempts=0))
    assert run.steps[0].status is StepStatus.RUNNING


def _named(name: str, outcome: str | None, status: str, run_id: int, updated: str) -> cmd.RecordCiReport:
    signal = _workflow(outcome, status, updated, name=name, id=run_id)
    assert signal.ci_check == f"workflow_run:{name}"
    return _command(signal, f"{name}-{run_id}-{status}-{updated}", auto_qa=False, fix_attempts=0)


@pytest.mark.parametrize("late_start", [False, True], ids=["success-only", "start-then-success"])
def test_one_workflows_success_does_not_clear_anothers_failure_until_it_succeeds_itself(
    late_start: bool,
) -> None:
    run = _deliver(_waiting_on_ci(), [_named("lint", "failure", "completed", 1, "2025-01-10T10:05:00Z")])
    assert (run.steps[0].status, run.status) == (StepStatus.FAILED, RunStatus.BLOCKED)
    others = [_named("test", "success", "completed", 2, "2025-01-10T10:06:00Z")]
    if late_start:
        others.insert(0, _named("test", None, "in_progress", 2, "2025-01-10T10:04:00Z"))
    for other in others:
        events = decide_protocol_run(run, other, ctx())
        assert len(events) == 1
        assert isinstance(events[0], ev.CiReported)
        assert events[0].held_by == "workflow_run:lint"
        run = apply(run, other)
    assert (run.steps[0].status, run.status) == (StepStatus.FAILED, RunStatus.BLOCKED)
    # The failing workflow's own re-run succeeds: now nothing fails on the commit.
    run = apply(run, _named("lint", "success", "completed", 1, "2025-01-10T10:30:00Z"))
    assert (run.steps[0].status, run.status) == (StepStatus.COMPLETED, RunStatus.RUNNING)


def test_the_forges_combined_state_and_whole_commit_reports_speak_for_every_check() -> None:
    run = _deliver(_waiting_on_ci(), [_named("lint", "failure", "completed", 1, "2025-01-10T10:05:00Z")])
    confirmed = _named("test", "success", "completed", 2, "2025-01-10T10:06:00Z").model_copy(
        update={"commit_status": CiStatus.SUCCESS}
    )
    assert apply(run, confirmed).steps[0].status is StepStatus.COMPLETED
    whole_commit = cmd.RecordCiReport(
        provider=CiProvider.GITHUB, status=CiStatus.SUCCESS, head_sha=SHA, delivery_id="reconcile/x/success"
    )
    assert apply(run, whole_commit).steps[0].status is StepStatus.COMPLETED


def _suite(conclusion: str, suite_id: int, updated: str) -> cmd.RecordCiReport:
    """A check suite of GitHub Actions (one per workflow run, all of the app 'GitHub Actions')."""
    signal = _github(
        "check_suite",
        "github_check_suite_completed_success",
        conclusion=conclusion,
        status="completed",
        id=suite_id,
        updated_at=updated,
    )
    assert signal.ci_check == f"check_suite:GitHub Actions:{suite_id}"
    return _command(signal, f"suite-{suite_id}-{conclusion}-{updated}", auto_qa=False, fix_attempts=0)


@pytest.mark.parametrize("failure_first", [True, False], ids=["failure-first", "success-first"])
def test_one_check_suites_success_does_not_clear_anothers_failure(failure_first: bool) -> None:
    """Two workflows' suites on one commit, in either order: the lint suite's failure stands."""
    failure = _suite("failure", 100, "2025-01-10T10:05:00Z")
    success = _suite("success", 101, "2025-01-10T10:06:00Z")
    run = _deliver(_waiting_on_ci(), [failure, success] if failure_first else [success, failure])
    assert (run.steps[0].status, run.status) == (StepStatus.FAILED, RunStatus.BLOCKED)


def test_the_checks_of_a_commit_no_step_stands_on_are_forgotten() -> None:
    """A step executed again (here: after its CI failed, with a new commit) leaves its old commit's CI
    lines behind: the run's state keeps the checks of current commits only, whatever the reports."""
    run = _deliver(_waiting_on_ci(), [_named("lint", "failure", "completed", 1, "2025-01-10T10:05:00Z")])
    assert {c.head_sha for c in run.ci_checks} == {SHA}
    step = run.steps[0]
    run = apply(run, cmd.RetryLatestStep())
    new_sha = "b" * 40
    run = apply(
        run,
        cmd.RecordStepExecutionCompleted(
            step_run_id=step.step_run_id, attempt=step.attempt + 1, commit_sha=new_sha
        ),
    )
    report = _workflow("success", "completed", "2025-01-10T11:00:00Z", name="lint", id=2, head_sha=new_sha)
    run = apply(run, _command(report, "lint-2", auto_qa=False, fix_attempts=0))
    assert {c.head_sha for c in run.ci_checks} == {new_sha}
