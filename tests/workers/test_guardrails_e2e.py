"""Guardrails in the codex worker, with the scripted engine and real git: a change that breaks a rule is
recorded with its evidence, the agent is asked again with it, and a fixed change lands; a change still
breaking a rule after the re-asks fails the step with the findings as its reason."""

from __future__ import annotations

from typing import Any

from tests.workers.conftest import Orchestra
from tests.workers.flow import action, get, planned_protocol, register, wait_for
from tests.workers.scripts import protocol_script

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
