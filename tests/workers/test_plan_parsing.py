"""The planner's structured output on its own: what is accepted, what is refused and why (the reason is
what the re-ask and the planning failure say), and how a plan becomes files and step specs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from deksdenflow_codex_worker.planning import InvalidOutput, keep_settings, parse_json, parse_plan
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import QaPolicy, StepPlan, StepType
from deksdenflow_core.errors import PermanentFailure

ROOT = ".protocols/0001-add-greeting"


def step_file(filename: str, **fields: Any) -> dict[str, Any]:
    return {
        "filename": filename,
        "content": f"# {filename}\n",
        "qa_policy": None,
        "engine_id": None,
        "model": None,
    } | fields


def planner_output(*files: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "plan_md": "# Plan\n",
        "context_md": "# Context\n",
        "log_md": "# Log\n",
        "step_files": list(files) or [step_file("00-setup.md"), step_file("01-greet.md")],
    } | fields


def refusal(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    with pytest.raises(InvalidOutput) as refused:
        parse_plan(text, ROOT)
    return str(refused.value)


# --- accepted ------------------------------------------------------------------------------------------


def test_a_valid_plan_becomes_a_setup_step_then_work_steps() -> None:
    out = parse_plan(json.dumps(planner_output()), ROOT)
    assert out.step_plans(ROOT) == (
        StepPlan(
            index=0,
            name="00-setup.md",
            step_type=StepType.SETUP,
            qa_policy=QaPolicy.FULL,
            file_path=f"{ROOT}/00-setup.md",
        ),
        StepPlan(
            index=1,
            name="01-greet.md",
            step_type=StepType.WORK,
            qa_policy=QaPolicy.FULL,
            file_path=f"{ROOT}/01-greet.md",
        ),
    )


def test_a_single_step_is_a_work_step() -> None:
    out = parse_plan(json.dumps(planner_output(step_file("00-only.md"))), ROOT)
    assert [s.step_type for s in out.step_plans(ROOT)] == [StepType.WORK]


def test_step_files_are_ordered_by_name_whatever_order_they_come_in() -> None:
    files = [step_file("02-c.md"), step_file("00-a.md"), step_file("01-b.md")]
    out = parse_plan(json.dumps(planner_output(*files)), ROOT)
    assert [s.filename for s in out.steps] == ["00-a.md", "01-b.md", "02-c.md"]


@pytest.mark.parametrize(
    ("given", "policy"),
    [("skip", QaPolicy.SKIP), ("light", QaPolicy.LIGHT), ("full", QaPolicy.FULL), (None, QaPolicy.FULL)],
)
def test_qa_policy_per_step_defaults_to_full(given: str | None, policy: QaPolicy) -> None:
    out = parse_plan(json.dumps(planner_output(step_file("00-only.md", qa_policy=given))), ROOT)
    assert out.steps[0].qa_policy is policy


def test_engine_and_model_per_step_are_kept_and_null_means_the_default() -> None:
    files = [step_file("00-setup.md"), step_file("01-greet.md", engine_id="claude-code", model="opus")]
    out = parse_plan(json.dumps(planner_output(*files)), ROOT)
    assert [(s.engine_id, s.model) for s in out.steps] == [("", ""), ("claude-code", "opus")]


@pytest.mark.parametrize("fence", ["```json\n{}\n```", "```\n{}\n```", "  ```{}```  "])
def test_a_markdown_code_fence_around_the_json_is_tolerated(fence: str) -> None:
    out = parse_plan(fence.replace("{}", json.dumps(planner_output())), ROOT)
    assert len(out.steps) == 2


def test_files_and_spec_are_what_the_job_writes_and_reads_back_to_the_same_plan() -> None:
    files = [
        step_file("00-setup.md", qa_policy="skip"),
        step_file("01-greet.md", engine_id="codex", model="m"),
    ]
    out = parse_plan(json.dumps(planner_output(*files)), ROOT)
    assert set(out.files()) == {"plan.md", "context.md", "log.md", "00-setup.md", "01-greet.md"}
    assert out.spec() == [
        {"filename": "00-setup.md", "qa_policy": "skip", "engine_id": None, "model": None},
        {"filename": "01-greet.md", "qa_policy": "full", "engine_id": "codex", "model": "m"},
    ]
    written = out.files()
    read_back = {
        "plan_md": written["plan.md"],
        "context_md": written["context.md"],
        "log_md": written["log.md"],
        "step_files": [{**meta, "content": written[str(meta["filename"])]} for meta in out.spec()],
    }
    assert parse_plan(json.dumps(read_back), ROOT) == out


# --- refused -------------------------------------------------------------------------------------------


def test_output_that_is_not_json_is_refused_with_where_it_broke() -> None:
    assert refusal("Here is the plan: {") == "not JSON (Expecting value at line 1)"
    assert refusal('{"plan_md": "x",\n').startswith("not JSON (")


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (
            {"plan_md": "# Plan\n"},
            "does not match protocol-planning: (root): 'context_md' is a required property",
        ),
        (
            planner_output(extra=1),
            "does not match protocol-planning: (root): Additional properties are not allowed",
        ),
        (planner_output(plan_md=""), "does not match protocol-planning: plan_md: '' should be non-empty"),
        (
            planner_output(step_files=[]),
            "does not match protocol-planning: step_files: [] should be non-empty",
        ),
        (
            planner_output(step_file("00-Setup.md")),
            "does not match protocol-planning: step_files/0/filename: '00-Setup.md' does not match",
        ),
        (
            planner_output(step_file("plan.md")),
            "does not match protocol-planning: step_files/0/filename: 'plan.md' does not match",
        ),
        (
            planner_output(step_file("00-a.md", engine_id="gpt")),
            "does not match protocol-planning: step_files/0/engine_id: 'gpt' is not one of",
        ),
        (
            planner_output(step_file("00-a.md", qa_policy="none")),
            "does not match protocol-planning: step_files/0/qa_policy: 'none' is not one of",
        ),
    ],
)
def test_output_that_does_not_match_the_schema_is_refused_with_the_first_problem(
    output: Any, reason: str
) -> None:
    assert refusal(output).startswith(reason)


@pytest.mark.parametrize(
    ("names", "numbers"),
    [
        (["01-a.md", "02-b.md"], [1, 2]),  # no setup step 00
        (["00-a.md", "02-b.md"], [0, 2]),  # a gap
        (["00-a.md", "01-b.md", "01-c.md"], [0, 1, 1]),  # a number twice
        (["00-a.md", "00-a.md"], [0, 0]),  # a file twice
    ],
)
def test_step_files_must_be_numbered_from_00_without_gaps(names: list[str], numbers: list[int]) -> None:
    reason = refusal(planner_output(*(step_file(n) for n in names)))
    assert reason == f"step files must be numbered 00, 01, ... without gaps, got {numbers}"


def test_parse_json_checks_any_schema_by_name() -> None:
    verdict = {"summary": "ok", "findings": {"blocking": [], "warnings": [], "notes": []}, "next_actions": []}
    assert parse_json(json.dumps(verdict | {"verdict": "PASS"}), "qa-verdict")["verdict"] == "PASS"
    with pytest.raises(InvalidOutput, match=r"^does not match qa-verdict: verdict: 'MAYBE' is not one of"):
        parse_json(json.dumps(verdict | {"verdict": "MAYBE"}), "qa-verdict")


def test_invalid_output_is_a_permanent_failure() -> None:
    refused = InvalidOutput("not JSON")
    assert isinstance(refused, PermanentFailure)
    assert not refused.retryable
    assert str(refused) == refused.message == "not JSON"


def test_a_step_files_own_fallbacks_and_critical_mark_reach_its_spec_and_are_checked() -> None:
    own = (
        "# Greet\n\nScope: greet.py\n- **Fallbacks:** `claude-code:claude-sonnet-4-5`, codex\nCritical: yes\n"
    )
    out = parse_plan(
        json.dumps(planner_output(step_file("00-setup.md"), step_file("01-greet.md", content=own))), ROOT
    )
    setup, greet = out.step_plans(ROOT)
    assert (list(greet.fallbacks), greet.critical) == (["claude-code:claude-sonnet-4-5", "codex"], True)
    assert (list(setup.fallbacks), setup.critical) == ([], False)
    wrong = "# Greet\n\nFallbacks: Codex GPT, gemini:pro, " + ", ".join(["codex"] * 4) + "\n"
    said = refusal(planner_output(step_file("00-setup.md"), step_file("01-greet.md", content=wrong)))
    assert "step 1 (01-greet.md): fallbacks: at most 5 entries, got 6" in said
    assert "step 1 (01-greet.md): fallbacks: 'Codex GPT' is not engine or engine:model" in said
    assert "'gemini:pro' names an unknown engine (known: codex, claude-code, scripted)" in said


def test_a_refinement_keeps_the_planned_settings_lines() -> None:
    planned = "# Greet\n\nScope: greet.py\nFallbacks: codex:gpt-5\n\nAdd greet().\n"
    assert keep_settings(planned, "# Greet\n\n1. Write greet().\n") == (
        "# Greet\n\n1. Write greet().\n\nScope: greet.py\nFallbacks: codex:gpt-5\n"
    )
    widened = "# Greet\n\nScope: **\nCritical: yes\n1. Write greet().\n"
    assert (
        keep_settings(planned, widened)
        == "# Greet\n\n1. Write greet().\n\nScope: greet.py\nFallbacks: codex:gpt-5\n"
    )
    assert keep_settings("# Greet\n", "# Refined\n\n1. Do it.\n") == "# Refined\n\n1. Do it.\n"  # untouched
