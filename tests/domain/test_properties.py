"""Property-based tests of the state machines (hypothesis).

* no sequence of accepted commands leads to a state ``evolve`` rejects;
* invariants hold after every accepted command;
* terminal states stay terminal;
* folding is deterministic (refolding the log gives the same state).
"""

from __future__ import annotations

from typing import Any

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiStatus,
    ClarificationQuestion,
    QaPolicy,
    QaVerdict,
    StepPlan,
    StepType,
)
from deksdenflow_core.domain.project import ProjectState, ProjectStatus, decide_project, evolve_project
from deksdenflow_core.domain.protocol_run import (
    TERMINAL_RUN_STATUSES,
    ProtocolRunCommand,
    ProtocolRunEvent,
    ProtocolRunState,
    RunStatus,
    StepStatus,
    decide_protocol_run,
    evolve_protocol_run,
)
from deksdenflow_core.errors import DomainError, IllegalTransition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.domain.builders import ctx, new_run

KINDS = [
    "start",
    "pause",
    "resume",
    "cancel",
    "run_next",
    "retry_latest",
    "open_pr",
    "run_step",
    "run_qa",
    "approve",
    "plan_started",
    "plan_done",
    "plan_bad",
    "plan_failed",
    "exec_started",
    "attempt_failed",
    "exec_done",
    "exec_failed",
    "block_step",
    "qa_verdict",
    "pushed",
    "pr_opened",
    "pr_failed",
    "pr_merged",
    "pr_closed",
    "ci",
    "usage",
    "delete_branch",
]

# The lifecycle's main path is weighted up and the endings down, so sequences get deep into a run.
_WEIGHT = {
    "start": 4,
    "plan_done": 6,
    "run_next": 6,
    "exec_done": 6,
    "qa_verdict": 4,
    "approve": 3,
    "run_qa": 3,
    "retry_latest": 2,
    "run_step": 2,
    "ci": 2,
    "cancel": 1,
    "pr_merged": 1,
}
WEIGHTED_KINDS = [k for k in KINDS for _ in range(_WEIGHT.get(k, 1))]

abstract_command = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(WEIGHTED_KINDS),
        "step": st.integers(0, 4),
        "attempt_delta": st.sampled_from([0, 0, 0, -1, 1]),
        "flag": st.booleans(),
        "n": st.integers(1, 4),
        "verdict": st.sampled_from(list(QaVerdict)),
        "qa": st.sampled_from([QaPolicy.FULL, QaPolicy.SKIP, QaPolicy.LIGHT]),
        "ci": st.sampled_from([CiStatus.RUNNING, CiStatus.SUCCESS, CiStatus.FAILURE]),
        "key": st.integers(0, 3),
        # Guided commands pick a kind that fits the current status, so sequences reach deep states;
        # unguided ones are arbitrary, so illegal commands keep being tried everywhere.
        "guided": st.booleans(),
        "pick": st.integers(0, 9),
    }
)

LIKELY: dict[RunStatus, list[str]] = {
    RunStatus.PENDING: ["start"],
    RunStatus.PLANNING: ["plan_done", "plan_done", "plan_started", "plan_failed", "plan_bad"],
    RunStatus.PLANNED: ["run_next", "run_next", "open_pr", "start"],
    RunStatus.RUNNING: [
        "exec_done",
        "exec_done",
        "run_qa",
        "qa_verdict",
        "approve",
        "run_next",
        "exec_failed",
        "ci",
        "attempt_failed",
        "exec_started",
        "block_step",
        "pr_opened",
    ],
    RunStatus.BLOCKED: ["retry_latest", "approve", "run_step", "run_qa", "qa_verdict", "ci"],
    RunStatus.PAUSED: ["resume", "exec_done", "qa_verdict"],
    RunStatus.FAILED: ["start"],
    RunStatus.CANCELLED: ["usage", "ci", "exec_done", "delete_branch"],
    RunStatus.COMPLETED: ["open_pr", "pr_opened", "pr_merged", "usage", "delete_branch"],
}


def concretize(state: ProtocolRunState, a: dict[str, Any]) -> ProtocolRunCommand:
    """Turn an abstract command into a concrete one against the current state."""
    steps = state.steps
    step = steps[a["step"] % len(steps)] if steps else None
    sid = step.step_run_id if step else "missing-step"
    exec_attempt = max(0, (step.attempt if step else 0) + a["attempt_delta"])
    plan_attempt = max(0, state.planning_attempt + a["attempt_delta"])
    sha = step.commit_sha if step and a["flag"] else f"sha-{a['key']}"
    k = a["kind"]
    if a["guided"]:
        likely = LIKELY[state.status]
        k = likely[a["pick"] % len(likely)]
    plan = tuple(
        StepPlan(
            index=i,
            name=f"{i:02d}-s.md",
            step_type=StepType.SETUP if i == 0 else StepType.WORK,
            qa_policy=a["qa"],
        )
        for i in range(a["n"])
    )
    simple: dict[str, ProtocolRunCommand] = {
        "start": cmd.StartProtocolRun(),
        "pause": cmd.PauseProtocolRun(),
        "resume": cmd.ResumeProtocolRun(),
        "cancel": cmd.CancelProtocolRun(reason="r"),
        "run_next": cmd.RunNextStep(),
        "retry_latest": cmd.RetryLatestStep(),
        "open_pr": cmd.OpenPullRequest(),
        "run_step": cmd.RunStep(step_run_id=sid),
        "run_qa": cmd.RunStepQa(step_run_id=sid),
        "approve": cmd.ApproveStep(step_run_id=sid),
        "plan_started": cmd.RecordPlanningStarted(attempt=plan_attempt, worker_id=f"w{a['key']}"),
        "plan_done": cmd.RecordPlanningCompleted(attempt=plan_attempt, steps=plan),
        "plan_bad": cmd.RecordPlanningCompleted(attempt=plan_attempt, steps=plan[::-1] + plan[:1]),
        "plan_failed": cmd.RecordPlanningFailed(attempt=plan_attempt, reason="x"),
        "exec_started": cmd.RecordStepExecutionStarted(
            step_run_id=sid, attempt=exec_attempt, worker_id=f"w{a['key']}"
        ),
        "attempt_failed": cmd.RecordStepAttemptFailed(
            step_run_id=sid, attempt=exec_attempt, try_number=1, reason="t"
        ),
        "exec_done": cmd.RecordStepExecutionCompleted(
            step_run_id=sid, attempt=exec_attempt, commit_sha=f"sha-{a['key']}", auto_qa=a["flag"]
        ),
        "exec_failed": cmd.RecordStepExecutionFailed(step_run_id=sid, attempt=exec_attempt, reason="x"),
        "block_step": cmd.RecordStepBlocked(step_run_id=sid, reason="budget"),
        "qa_verdict": cmd.RecordQaVerdict(
            step_run_id=sid,
            qa_attempt=(step.qa_attempt if step else 0) + min(0, a["attempt_delta"]),
            verdict=a["verdict"],
        ),
        "pushed": cmd.RecordBranchPushed(branch=state.protocol_name, commit_sha=sha),
        "pr_opened": cmd.RecordPullRequestOpened(
            attempt=state.pr_attempt, number=a["key"] + 1, url=f"u{a['key']}"
        ),
        "pr_failed": cmd.RecordPullRequestFailed(attempt=state.pr_attempt, reason="x"),
        "pr_merged": cmd.RecordPullRequestMerged(number=1),
        "pr_closed": cmd.RecordPullRequestClosed(number=1),
        "ci": cmd.RecordCiReport(status=a["ci"], head_sha=sha, delivery_id=f"d{a['key']}", auto_qa=a["flag"]),
        "usage": cmd.RecordUsage(call_id=f"c{a['key']}", cost_micro_usd=10),
        "delete_branch": cmd.RequestBranchDeletion(),
    }
    return simple[k]


def check_invariants(s: ProtocolRunState) -> None:
    executing = [x for x in s.steps if x.executing]
    assert len(executing) <= 1, "at most one step executes at a time"
    assert all(x.status is StepStatus.RUNNING for x in executing)
    if s.is_terminal:
        assert not any(
            x.status in (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.NEEDS_QA) for x in s.steps
        )
        assert s.paused_from is None
    if s.effective_status in (RunStatus.PENDING, RunStatus.PLANNING, RunStatus.FAILED):
        assert all(x.status is StepStatus.PENDING for x in s.steps)
    if s.status is RunStatus.PAUSED:
        assert s.paused_from is not None
        assert s.paused_from is not RunStatus.PAUSED
    assert s.paused_from is None or s.status is RunStatus.PAUSED
    assert all(x.qa_attempt >= 0 and x.attempt >= 0 for x in s.steps)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(abstract_command, max_size=60))
def test_accepted_commands_never_lead_to_a_state_evolve_rejects(abstract: list[dict[str, Any]]) -> None:
    state = new_run()
    log: list[ProtocolRunEvent] = []
    for i, a in enumerate(abstract):
        command = concretize(state, a)
        before = state
        try:
            events = decide_protocol_run(state, command, ctx(f"c{i}"))
        except IllegalTransition as exc:
            refused_in = exc.current_status  # every refusal names the status it was refused in
            assert refused_in in {x.value for x in RunStatus} | {x.value for x in StepStatus}
            continue
        except DomainError:
            continue
        for e in events:
            state = evolve_protocol_run(state, e)  # must never raise
        log.extend(events)
        check_invariants(state)
        if before.is_terminal:
            assert state.status is before.status, "terminal states stay terminal"
    # Folding is deterministic: the log refolded from scratch gives the same state, twice.
    refolded = new_run()
    for e in log:
        refolded = evolve_protocol_run(refolded, e)
    assert refolded == state
    assert state.version == new_run().version + len(log)


project_command = st.one_of(
    st.builds(pcmd.RequestOnboarding),
    st.builds(
        pcmd.RecordOnboardingCompleted,
        attempt=st.integers(0, 3),
        questions=st.lists(
            st.builds(ClarificationQuestion, key=st.sampled_from(["a", "b"]), blocking=st.booleans()),
            max_size=2,
        ).map(tuple),
    ),
    st.builds(pcmd.RecordOnboardingFailed, attempt=st.integers(0, 3), reason=st.just("x")),
    st.builds(
        pcmd.AnswerClarifications,
        answers=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.text(max_size=3), max_size=2),
    ),
    st.builds(pcmd.IssueProjectToken, token_id=st.sampled_from(["t1", "t2"]), token_hash=st.just("ab" * 32)),
    st.builds(pcmd.RevokeProjectToken, token_id=st.sampled_from(["t1", "t2"])),
    st.builds(pcmd.RegisterProject, name=st.just("n"), git_url=st.just("u")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(project_command, max_size=25))
def test_project_decisions_always_fold(commands: list[Any]) -> None:
    state = ProjectState.initial("p")
    state = evolve_project(
        state, decide_project(state, pcmd.RegisterProject(name="n", git_url="/srv/u.git"), ctx())[0]
    )
    log = []
    for command in commands:
        try:
            events = decide_project(state, command, ctx())
        except DomainError:
            continue
        for e in events:
            state = evolve_project(state, e)
        log.extend(events)
        if state.status is ProjectStatus.BLOCKED:
            assert state.unanswered_blocking, "a blocked project has an unanswered blocking question"
    refolded = ProjectState.initial("p")
    refolded = evolve_project(
        refolded, decide_project(refolded, pcmd.RegisterProject(name="n", git_url="/srv/u.git"), ctx())[0]
    )
    for e in log:
        refolded = evolve_project(refolded, e)
    assert refolded == state


def test_terminal_statuses_are_exactly_cancelled_and_completed() -> None:
    assert {s.value for s in TERMINAL_RUN_STATUSES} == {"cancelled", "completed"}
