"""Guardrails in the codex worker through the whole system, with real git: a change that breaks a rule is
recorded with its evidence, the agent is asked again with it, and a fixed change lands; a change still
breaking a rule after the re-asks fails the step with the findings as its reason (scripted engine); and
once with the real Codex CLI, with a critical step's two QA reviewers. Every rule is broken by the real
CLI in tests/workers/test_guardrails_codex.py."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from deksdenflow_fakes.responses_api import (
    CODEX_TEST_MODEL,
    FakeResponsesApi,
    Turn,
    add_file,
    apply_patch,
    codex_provider_env,
    delete_file,
    output_schema,
    tool_outputs,
    user_text,
)

from tests.workers.conftest import Orchestra
from tests.workers.flow import action, get, planned_protocol, register, wait_for
from tests.workers.scripts import PASS, PLAN, protocol_script
from tests.workers.test_codex_worker import ENGINES, FAIL, MODELS, USAGE, codex_settings

WORKFLOW = ".github/workflows/ci.yml"


def script_with_greeting_exec(entries: list[dict[str, Any]]) -> dict[str, Any]:
    script = protocol_script()
    script["exec"]["01-greeting.md"] = entries
    return script


async def run_greeting_step(
    o: Orchestra,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    async with o.system.admin() as api:
        project = await register(api, o)
        run = await planned_protocol(api, project["id"])
        for _ in range(2):
            await action(api, f"/protocols/{run['id']}/actions/run_next_step")
            steps = await wait_for(
                api,
                f"/protocols/{run['id']}/steps",
                lambda b: (
                    b["data"][1]["status"] in ("needs_qa", "completed", "failed")
                    or (b["data"][0]["status"] == "completed" and b["data"][1]["status"] == "pending")
                ),
                what="the greeting step's execution to end",
            )
        events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
        return (
            run,
            steps["data"],
            [e["payload"] for e in events if e["type"] == "protocol_run.guardrail_violated"],
        )


async def test_a_change_that_breaks_a_rule_is_asked_again_and_the_fixed_change_lands(
    orchestra: Orchestra,
) -> None:
    o = orchestra
    o.write_script(
        script_with_greeting_exec(
            [
                {  # first answer: the greeting, and the CI workflow changed on the side
                    "message": "Add greet()",
                    "edits": [
                        {"path": "greeting.py", "content": "def greet(name):\n    return f'hi {name}'\n"},
                        {"path": WORKFLOW, "content": "on: push\njobs: {}\n"},
                    ],
                },
                {  # asked again: the workflow change is undone
                    "message": "Add greet()\n\nLeft CI alone.",
                    "edits": [{"path": WORKFLOW, "delete": True}],
                },
            ]
        )
    )
    o.start_codex_worker(o.worker_settings(auto_qa_after_exec=False))
    run, steps, violations = await run_greeting_step(o)
    assert steps[1]["status"] == "needs_qa", steps[1]
    (violation,) = violations
    assert violation["asked_again"] is True
    assert violation.get("reask", 0) == 0
    (finding,) = violation["findings"]
    assert (finding["rule"], finding["evidence"]) == ("protected_path", [WORKFLOW])
    files = await o.origin.files(run["protocol_name"])
    assert "greeting.py" in files
    assert WORKFLOW not in files


async def test_a_change_still_breaking_a_rule_after_the_re_ask_fails_the_step(orchestra: Orchestra) -> None:
    o = orchestra
    skipped = "import pytest\n\n@pytest.mark.skip\ndef test_greet():\n    assert False\n"
    o.write_script(
        script_with_greeting_exec(
            [{"message": "Add greet()", "edits": [{"path": "tests/test_greeting.py", "content": skipped}]}]
        )
    )
    o.start_codex_worker(o.worker_settings(auto_qa_after_exec=False))
    run, steps, violations = await run_greeting_step(o)
    assert steps[1]["status"] == "failed", steps[1]
    assert steps[1]["failure_reason"].startswith("guardrails: tests_weakened: tests were skipped or disabled")
    assert [v["asked_again"] for v in violations] == [True, False]
    assert violations[1]["findings"][0]["evidence"] == ["tests/test_greeting.py:3: @pytest.mark.skip"]
    assert "tests/test_greeting.py" not in await o.origin.files(run["protocol_name"])  # nothing landed


SECOND = "gpt-second-reviewer"
CRITICAL_PLAN = {**PLAN, "step_files": copy.deepcopy(PLAN["step_files"][:2])}
CRITICAL_PLAN["step_files"][1]["content"] += "\nCritical: yes\n"


def critical_model(call: Mapping[str, Any]) -> Turn:
    """Plans a critical greeting step; executes it with a CI workflow changed on the side, undone when asked
    again; the first reviewer passes it, the second fails it — first without evidence, then with it."""
    props = (output_schema(call) or {}).get("properties", {})
    prompt = user_text(call)
    if "plan_md" in props:
        return Turn.json(CRITICAL_PLAN, usage=USAGE)
    if "verdict" in props:
        if call.get("model") != SECOND:
            return Turn.json(PASS, usage=USAGE)
        if "must name its blocking findings" not in prompt:
            return Turn.json({**FAIL, "findings": {"blocking": [], "warnings": [], "notes": []}}, usage=USAGE)
        return Turn.json({**FAIL, "findings": {"blocking": ["greeting.py:2 greets nobody"], "warnings": [],
                                               "notes": []}}, usage=USAGE)  # fmt: skip
    if "00-setup.md" in prompt:
        return Turn.message("Read the repository\n\nNothing to change.", usage=USAGE)
    if tool_outputs(call):
        return Turn.message("Add greet()\n\nAdded greeting.py.", usage=USAGE)
    if "broke deksdenflow's guardrails" in prompt:
        return Turn.patch(apply_patch(delete_file(WORKFLOW)), usage=USAGE)
    greeting = add_file("greeting.py", "def greet(name):\n    return f'hi {name}'\n")
    return Turn.patch(apply_patch(greeting, add_file(WORKFLOW, "on: push\n")), usage=USAGE)


async def test_with_the_real_codex_cli_a_violation_is_fixed_and_a_critical_step_has_two_reviewers(
    orchestra: Orchestra,
) -> None:
    """End to end with the real Codex CLI: the CLI changes CI configuration on the side, the guardrail
    records it and asks again, the fixed change lands; the step is critical, so a second reviewer judges
    it: its FAIL without evidence is asked again, and its FAIL with evidence fails the step (both must
    pass)."""
    o = orchestra
    with FakeResponsesApi(handler=critical_model) as fake:
        settings = o.worker_settings(
            **codex_settings(o, fake), decompose_steps=False, qa_second_reviewer=f"codex:{SECOND}"
        )
        o.start_codex_worker(settings, codex_env=codex_provider_env(fake))
        async with o.system.admin() as api:
            project = await register(api, o, default_engines=ENGINES, default_models=MODELS)
            run = await planned_protocol(api, project["id"])
            spec = await get(api, f"/protocols/{run['id']}/spec")
            assert [s["critical"] for s in spec["steps"]] == [False, True]
            for index, status in ((0, "completed"), (1, "failed")):
                await action(api, f"/protocols/{run['id']}/actions/run_next_step")
                await wait_for(
                    api,
                    f"/protocols/{run['id']}/steps",
                    lambda b, i=index, s=status: b["data"][i]["status"] == s,
                    within=60,
                    what=f"step {index} {status}",
                )
            events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
    (violation,) = [e["payload"] for e in events if e["type"] == "protocol_run.guardrail_violated"]
    assert violation["asked_again"] is True
    assert [(f["rule"], f["evidence"]) for f in violation["findings"]] == [("protected_path", [WORKFLOW])]
    execs = [user_text(c) for c in fake.calls if "01-greeting.md" in user_text(c) and not output_schema(c)]
    assert any("- protected_path: " in p and WORKFLOW in p for p in execs)  # the re-ask said what and where
    files = await o.origin.files(run["protocol_name"])
    assert "greeting.py" in files
    assert WORKFLOW not in files
    # Two reviewers: the first passed; the second's FAIL without evidence was asked again, then counted.
    reviewers = [
        c.get("model") for c in fake.calls if "verdict" in (output_schema(c) or {}).get("properties", {})
    ]
    assert reviewers == [CODEX_TEST_MODEL, SECOND, SECOND]
    (verdict,) = [e["payload"] for e in events if e["type"] == "protocol_run.qa_verdict_recorded"]
    assert verdict["verdict"] == "QA_VERDICT_FAIL"
    assert verdict["blocking"] == [f"[codex:{SECOND}] greeting.py:2 greets nobody"]
    assert "two reviewers (both must pass)" in verdict["summary"]
