"""The run's story folded from its events (live and as it was at any position), and refusals in words."""

from __future__ import annotations

from typing import Any

from deksdenflow_api.console.client import Answer
from deksdenflow_api.console.explain import explain_refusal
from deksdenflow_api.console.timeline import Timelines, fold
from deksdenflow_api.routes.protocols import split_patch


def _events() -> list[dict[str, Any]]:
    rows: list[tuple[str, str | None, dict[str, Any]]] = [
        ("protocol_run.created", None, {}),
        ("protocol_run.planning_requested", None, {"attempt": 1}),
        ("protocol_run.planning_started", None, {"attempt": 1}),
        ("protocol_run.planning_completed", None, {
            "steps": [{"name": "a.md"}], "engine_id": "scripted", "decompose_prompt_version": "d1",
            "steps_refined": 3, "steps_kept_as_planned": 1,
        }),
        ("protocol_run.step_execution_requested", "s1", {"step_run_id": "s1"}),
        ("protocol_run.step_execution_started", "s1", {"step_run_id": "s1"}),
        ("protocol_run.usage_recorded", "s1", {
            "step_run_id": "s1", "cost_micro_usd": 2500, "engine_id": "codex", "model": "m",
            "usage": {"input_tokens": 10, "output_tokens": 3},
        }),
        ("protocol_run.step_execution_completed", "s1", {
            "step_run_id": "s1", "commit_sha": "abc1234", "prompt_version": "p1",
            "engine_id": "codex", "model": "m",
        }),
        ("protocol_run.qa_requested", "s1", {"step_run_id": "s1"}),
        ("protocol_run.qa_verdict_recorded", "s1", {"step_run_id": "s1", "verdict": "FAIL",
                                                    "summary": "no test"}),
        ("protocol_run.paused", None, {}),
        ("protocol_run.resumed", None, {}),
        ("protocol_run.blocked", None, {"reason": "QA failed"}),
    ]  # fmt: skip
    return [
        {"position": 1024 * (i + 1), "type": t, "time": f"2026-01-01T00:00:{i:02d}+00:00", "step_run_id": s,
         "payload": p}
        for i, (t, s, p) in enumerate(rows)
    ]  # fmt: skip


def test_the_fold_tells_each_attempt_with_its_engine_tokens_cost_and_duration() -> None:
    timeline = fold(_events())
    assert timeline.status == "blocked"
    assert timeline.blocked_reason == "QA failed"
    assert timeline.planning[0].outcome == "completed"
    assert timeline.planning[0].detail == "3 steps refined, 1 kept as planned"
    (step,) = timeline.ordered_steps()
    assert step.name == "a.md"
    execution, qa = step.attempts
    assert (execution.kind, execution.number, execution.outcome) == ("execution", 1, "completed")
    assert (execution.engine, execution.model, execution.prompt_version) == ("codex", "m", "p1")
    assert (execution.input_tokens, execution.output_tokens, execution.cost_micro_usd) == (10, 3, 2500)
    assert execution.duration_seconds == 2.0  # from its start to its end
    assert (qa.kind, qa.outcome, qa.detail) == ("qa", "fail", "no test")
    assert step.commits == ["abc1234"]
    assert timeline.cost_micro_usd == 2500


def test_time_travel_folds_up_to_a_position_and_the_cache_folds_only_what_is_new() -> None:
    events = _events()
    then = fold(events, until=events[3]["position"])
    assert then.status == "planned"
    assert [s.name for s in then.ordered_steps()] == ["a.md"]
    assert fold(events, until=events[10]["position"]).status == "paused"
    assert fold(events, until=events[11]["position"]).status == "running"  # resumed to where it was
    cache = Timelines(size=1)
    live = cache.get("r1")
    for event in events[:5]:
        live.apply(event)
    assert cache.get("r1") is live
    assert cache.get("r2") is not live
    assert cache.get("r1").events == 0  # evicted: folded again from the start


def test_a_refusal_is_explained_in_words() -> None:
    answer = Answer(
        409, {"code": "conflict", "message": "only a paused run can be resumed", "current_status": "pending"}
    )
    text = explain_refusal("resume", answer)
    assert text == (
        "Could not resume (409): it does not apply to the current state. The API says: only a paused run can "
        "be resumed. The run is pending. Start it, or cancel it."
    )


def test_a_patch_is_split_per_file() -> None:
    patch = "diff --git a/x.txt b/x.txt\n+x\ndiff --git a/d/y.py b/d/y.py\n-y\n"
    assert [(f.path, f.patch.splitlines()[1]) for f in split_patch(patch)] == [
        ("x.txt", "+x"),
        ("d/y.py", "-y"),
    ]
    assert split_patch("") == []


def test_a_ci_failure_shows_its_log_excerpt_from_the_fix_request() -> None:
    at = "2026-01-01T00:00:00+00:00"
    events = [
        {"position": 1024, "type": "protocol_run.ci_reported", "time": at, "step_run_id": "s1",
         "payload": {"step_run_id": "s1", "status": "CI_STATUS_FAILURE", "head_sha": "abc1234"}},
        {"position": 2048, "type": "protocol_run.step_execution_requested", "time": at, "step_run_id": "s1",
         "payload": {"step_run_id": "s1", "ci_failure": {"head_sha": "abc1234", "job_name": "test",
                                                          "log_excerpt": "E   assert 1 == 2"}}},
    ]  # fmt: skip
    timeline = fold(events)
    (ci,) = timeline.ci
    assert (ci.status, ci.head_sha, ci.excerpt) == ("failure", "abc1234", "E   assert 1 == 2")
    assert timeline.ordered_steps()[0].attempts[0].detail == "CI fix: test failed"


def test_a_step_a_trigger_queued_has_its_own_line_and_a_loop_resets_the_steps_it_takes_back() -> None:
    rows: list[tuple[str, str | None, dict[str, Any]]] = [
        ("protocol_run.planning_completed", None, {"steps": [{"name": "00-a.md"}, {"name": "01-b.md"}]}),
        ("protocol_run.step_execution_requested", "s0", {"step_run_id": "s0"}),
        ("protocol_run.step_completed", "s0", {"step_run_id": "s0"}),
        ("protocol_run.trigger_queued", None, {
            "from_step_run_id": "s0", "step": {"step_run_id": "t2", "index": 2, "name": "02-reviewer.md"},
        }),
        ("protocol_run.checkpoint_reached", "s0", {"step_run_id": "s0", "reason": "look first"}),
        ("protocol_run.checkpoint_passed", "s0", {"step_run_id": "s0"}),
        ("protocol_run.step_execution_requested", "t2", {"step_run_id": "t2"}),
        ("protocol_run.step_completed", "t2", {"step_run_id": "t2"}),
        ("protocol_run.step_execution_requested", "s1", {"step_run_id": "s1"}),
        ("protocol_run.step_failed", "s1", {"step_run_id": "s1"}),
        ("protocol_run.loop_taken", "s1", {"step_run_id": "s1", "reset_step_run_ids": ["s0", "s1"]}),
    ]  # fmt: skip
    events = [
        {"position": 1024 * (i + 1), "type": t, "time": f"2026-01-01T00:00:{i:02d}+00:00", "step_run_id": s,
         "payload": p}
        for i, (t, s, p) in enumerate(rows)
    ]  # fmt: skip
    at_checkpoint = fold(events, until=5 * 1024)
    assert (at_checkpoint.status, at_checkpoint.blocked_reason) == ("blocked", "look first")
    timeline = fold(events)
    assert [(s.name, s.status) for s in timeline.ordered_steps()] == [
        ("00-a.md", "pending"),
        ("01-b.md", "pending"),
        ("02-reviewer.md", "completed"),
    ]
