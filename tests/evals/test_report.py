"""Scoring a run's events and comparing variants are pure: the same events give the same scores and the
same table, byte for byte; a variant below the baseline by more than the threshold is a regression."""

from __future__ import annotations

from typing import Any

from evals import report

EVENTS = [
    {
        "type": "protocol_run.usage_recorded",
        "payload": {"usage": {"input_tokens": 100, "output_tokens": 7}, "cost_micro_usd": 40},
    },
    {"type": "protocol_run.guardrail_violated", "payload": {}},
    {
        "type": "protocol_run.usage_recorded",
        "payload": {"usage": {"input_tokens": 50, "output_tokens": 3}, "cost_micro_usd": "10"},
    },
    {
        "type": "protocol_run.qa_verdict_recorded",
        "payload": {"step_run_id": "s1", "verdict": "QA_VERDICT_FAIL"},
    },
    {
        "type": "protocol_run.qa_verdict_recorded",
        "payload": {"step_run_id": "s1", "verdict": "QA_VERDICT_PASS"},
    },
    {"type": "protocol_run.completed", "payload": {}},
]


def row(variant: str, task: str, resolved: bool, agrees: str) -> dict[str, Any]:
    return {
        "variant_id": variant,
        "task_id": task,
        "resolved": resolved,
        "f2p_passed": int(resolved),
        "f2p_total": 1,
        "p2p_passed": 1,
        "p2p_total": 1,
        "qa_verdict": "PASS",
        "qa_agrees": agrees,
        "input_tokens": 10,
        "output_tokens": 1,
        "cost_micro_usd": 7,
        "turns": 3,
        "guardrail_violations": 0,
        "wall_ms": 1234,
    }


def test_a_runs_events_score_the_same_every_time() -> None:
    scored = report.score_events(EVENTS)
    assert scored == report.score_events(list(EVENTS))
    assert (scored.qa_verdict, scored.input_tokens, scored.output_tokens) == ("PASS", 150, 10)
    assert (scored.cost_micro_usd, scored.turns, scored.guardrail_violations) == (50, 2, 1)
    assert scored.run_status == "completed"
    assert report.score_events([]).qa_verdict == report.QA_NONE
    # QA that passes a change which does not resolve the task disagrees; no verdict is not counted
    assert report.qa_agrees("PASS", resolved=False, label="PASS") == "no"
    assert report.qa_agrees("FAIL", resolved=False, label="PASS") == "yes"
    assert report.qa_agrees(report.QA_NONE, resolved=True, label="PASS") == ""


def test_the_table_is_the_same_bytes_and_names_the_regression() -> None:
    scores = [
        row("base", "t1", True, "yes"),
        row("base", "t2", True, "yes"),
        row("worse", "t1", True, "yes"),
        row("worse", "t2", False, "no"),
    ]
    summaries = [
        report.summarise(v, f"codex:m {v}", (s for s in scores if s["variant_id"] == v))
        for v in ("base", "worse")
    ]
    strict = report.regressions(summaries, "base", report.Thresholds())
    assert strict == {"base": [], "worse": ["resolved 50% < 100%", "QA agreement 50% < 100%"]}
    loose = report.regressions(summaries, "base", report.Thresholds(resolved_drop=0.5, qa_drop=0.5))
    assert loose["worse"] == []
    tables = {report.table(scores, summaries, "base", strict, {}) for _ in range(3)}
    assert len(tables) == 1
    table = tables.pop()
    assert "  REGRESSION: resolved 50% < 100%; QA agreement 50% < 100%" in table
    assert "1.2" not in table  # wall time is not in the table
    assert report.verdict(strict, {}) == ["worse regressed: resolved 50% < 100%; QA agreement 50% < 100%"]
    assert report.verdict(strict, {"worse": True}) == []  # a canary caught
    assert report.verdict(loose, {"worse": True}) == ["worse was expected to regress and did not"]
