"""Loop, trigger and checkpoint policies end to end: real NATS, PostgreSQL and git, both workers and the
scripted engine, on an autopilot run whose plan was imported with policies (as a CodeMachine workflow
gives them). The agents' directives are files they leave in the worktree, validated by the worker.
Every decision is read back from ``GET /protocols/{id}/events``; the steps show their policies and what
the policies did."""

from __future__ import annotations

import json
from typing import Any

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    ImportedPlan,
    ImportedStepFile,
    LoopCause,
    StepCheckpointPolicy,
    StepLoopPolicy,
    StepPolicies,
    StepTriggerPolicy,
)
from deksdenflow_core.eventstore import AppendMeta

from tests.workers.conftest import Orchestra
from tests.workers.flow import action, get, register, wait_for
from tests.workers.scripts import PASS


def _directive(**directive: str) -> dict[str, str]:
    """The scripted agent leaves a directive file, as a CodeMachine agent does."""
    return {"path": ".deksdenflow/directive.json", "content": json.dumps(directive)}


def _edit(name: str, attempt: int = 0) -> dict[str, str]:
    return {"path": f"work/{name}.txt", "content": f"{name} attempt {attempt}\n"}


SCRIPT: dict[str, Any] = {
    "exec": {
        # an invalid directive is rejected and the step goes on
        "00-setup.md": {"message": "Set up", "edits": [_edit("setup"), _directive(action="explode")]},
        # the first pass asks for the reviewer (the trigger is on directive only); the loop's pass does not
        "01-build.md": [
            {"message": "Build", "edits": [_edit("build"), _directive(action="trigger", reason="review me")]},
            {"message": "Build again", "edits": [_edit("build", 1), _directive(action="continue")]},
        ],
        # each reviewer asks for one more: the second is as deep as the chain may go, the third is refused
        # (a reviewer changes no file: a step a trigger queued needs no change of its own)
        "*": {
            "message": "Reviewed",
            "edits": [_directive(action="trigger", agent="reviewer", prompt="Review again.")],
        },
        "02-test.md": {"message": "Tests fail", "edits": [_edit("test")], "fail": "tests are red"},
    },
    "qa": {"*": {"message": PASS}},
}


def _plan() -> ImportedPlan:
    return ImportedPlan(
        source="test workflow",
        steps=[
            ImportedStepFile(
                filename="00-setup.md",
                content="# Setup\n",
                policies=StepPolicies(checkpoint=StepCheckpointPolicy(reason="check the setup")),
            ),
            ImportedStepFile(
                filename="01-build.md",
                content="# Build\n",
                policies=StepPolicies(
                    trigger=StepTriggerPolicy(
                        agent="reviewer",
                        prompt="# Review\n\nReview the build.",
                        on_directive_only=True,
                        max_depth=2,
                    )
                ),
            ),
            ImportedStepFile(
                filename="02-test.md",
                content="# Test\n",
                policies=StepPolicies(
                    loop=StepLoopPolicy(
                        back_to="01-build.md", on=[LoopCause.EXECUTION_FAILED], max_iterations=1
                    )
                ),
            ),
        ],
    )


async def test_loop_trigger_and_checkpoint_decisions_are_events_and_reads(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(SCRIPT)
    o.start_codex_worker(o.worker_settings(codex_worker_tries=1))
    async with o.system.admin() as api:
        project = await register(api, o, run_policy={"pr": {"open": "never"}})
        # what a CodeMachine import route creates: a run whose imported plan carries policies
        created = await o.system.repo.create_protocol_run(
            project["id"],
            cmd.CreateProtocolRun(task_name="Policies", imported=_plan()),
            AppendMeta(source="test", actor="user:test"),
        )
        run_id = created.state.protocol_run_id
        await action(api, f"/protocols/{run_id}/actions/start")

        stopped = await wait_for(
            api, f"/protocols/{run_id}", lambda r: r["waiting_for"] == "checkpoint", what="the checkpoint"
        )
        assert stopped["status"] == "blocked"
        assert "check the setup" in stopped["blocked_reason"]
        await action(api, f"/protocols/{run_id}/actions/continue")
        await action(api, f"/protocols/{run_id}/actions/continue", expect=409)

        blocked = await wait_for(
            api,
            f"/protocols/{run_id}",
            lambda r: r["status"] == "blocked" and r["waiting_for"] != "checkpoint",
            within=90,
            what="the loop spent",
        )
        assert "loop spent: taken 1 of 1" in blocked["blocked_reason"]
        events = (await get(api, f"/protocols/{run_id}/events?limit=500"))["data"]
        steps = (await get(api, f"/protocols/{run_id}/steps"))["data"]

    def payloads(kind: str) -> list[dict[str, Any]]:
        return [e["payload"] for e in events if e["type"] == f"protocol_run.{kind}"]

    (rejected,) = payloads("directive_rejected")
    assert ".deksdenflow/directive.json: does not match agent-directive: action" in rejected["error"]
    assert len(payloads("checkpoint_reached")) == 1
    assert len(payloads("checkpoint_passed")) == 1
    queued = payloads("trigger_queued")
    assert [(q["agent"], q["depth"], q["max_depth"]) for q in queued] == [
        ("reviewer", 1, 2),
        ("reviewer", 2, 2),
    ]
    (refused,) = payloads("trigger_refused")
    assert (refused["depth"], refused["max_depth"]) == (3, 2)
    (taken,) = payloads("loop_taken")
    assert (taken["back_to"], taken["cause"], taken["iteration"]) == (
        "01-build.md",
        "LOOP_CAUSE_EXECUTION_FAILED",
        1,
    )
    (spent,) = payloads("loop_spent")
    assert (spent["iterations"], spent["max_iterations"]) == (1, 1)

    # the steps in the run's order: each one a trigger queued right after the step that queued it
    assert [s["step_name"] for s in steps] == [
        "00-setup.md",
        "01-build.md",
        "03-reviewer.md",
        "04-reviewer.md",
        "02-test.md",
    ]
    by_name = {s["step_name"]: s for s in steps}
    assert by_name["02-test.md"]["runtime_state"]["loop_iterations"] == 1
    assert by_name["02-test.md"]["policies"]["loop"]["back_to"] == "01-build.md"
    assert by_name["04-reviewer.md"]["runtime_state"]["trigger_depth"] == 2
    assert by_name["04-reviewer.md"]["runtime_state"]["queued_by"] == by_name["03-reviewer.md"]["id"]
    assert by_name["04-reviewer.md"]["runtime_state"]["last_directive"] == {
        "action": "trigger",
        "reason": "",
    }
    assert by_name["01-build.md"]["retries"] == 1, "the loop ran the build again as its next attempt"
    # the queued step's file is its prompt, on the branch beside the plan's; no directive file was committed
    root = f".protocols/{created.state.protocol_name}"
    assert (
        await o.origin.show(created.state.protocol_name, f"{root}/03-reviewer.md")
        == "# Review\n\nReview the build.\n"
    )
    files = await o.origin.files(created.state.protocol_name)
    assert ".deksdenflow/directive.json" not in files
    # each valid directive rides on its step's commit (a redelivered job reports it from there)
    assert await o.origin.count(created.state.protocol_name, "Deksdenflow-Directive: {") == 4
