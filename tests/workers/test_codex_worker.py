"""The codex worker with the real Codex CLI (pinned npm install) against a fake Responses API server."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from typing import Any

import psutil
import pytest
from deksdenflow_fakes.responses_api import (
    CODEX_TEST_MODEL,
    FakeResponsesApi,
    Turn,
    Usage,
    add_file,
    apply_patch,
    codex_provider_args,
    codex_provider_env,
    output_schema,
    tool_outputs,
    user_text,
)

from tests.engines.conftest import AGENTS_BIN
from tests.support import eventually
from tests.workers.conftest import Orchestra
from tests.workers.flow import action, get, planned_protocol, register, wait_for
from tests.workers.scripts import PASS, PLAN

USAGE = Usage(input_tokens=1200, cached_input_tokens=200, output_tokens=300, reasoning_output_tokens=50)
FAIL = {
    **PASS,
    "verdict": "FAIL",
    "findings": {"blocking": ["docs are missing"], "warnings": [], "notes": []},
}


def model(call: Mapping[str, Any]) -> Turn:
    """A model that plans, refines, edits a file with apply_patch, and judges (the docs step fails QA)."""
    props = (output_schema(call) or {}).get("properties", {})
    if "plan_md" in props:
        return Turn.json(PLAN, usage=USAGE)
    if set(props) == {"content"}:
        return Turn.json({"content": "# Refined\n\n1. Do it.\n"}, usage=USAGE)
    if "verdict" in props:
        return Turn.json(FAIL if "02-docs.md" in user_text(call) else PASS, usage=USAGE)
    step = re.search(r"You execute step `([^`]+)`", user_text(call))
    assert step is not None, "an execution prompt names its step"
    path, content = ("greeting.py", "def greet(name):\n    return name\n")
    if step.group(1) != "01-greeting.md":
        path, content = (f"notes/{step.group(1)}", "done\n")
    if not tool_outputs(call):
        return Turn.patch(apply_patch(add_file(path, content)), usage=USAGE)
    return Turn.message(f"Add {path}\n\nAdded {path}.", usage=USAGE)


@pytest.fixture
def fake_model() -> Iterator[FakeResponsesApi]:
    with FakeResponsesApi(handler=model) as fake:
        yield fake


def codex_settings(o: Orchestra, fake: FakeResponsesApi) -> dict[str, Any]:
    return {
        "codex_bin": str(AGENTS_BIN / "codex"),
        "codex_args": shlex.join(codex_provider_args(fake)),
        "default_engine": "codex",
        "scripted_script": None,
    }


MODELS = dict.fromkeys(("planning", "decompose", "exec", "qa"), CODEX_TEST_MODEL)
ENGINES = dict.fromkeys(("planning", "decompose", "exec", "qa"), "codex")


async def test_codex_plans_executes_and_gates_with_qa(
    orchestra: Orchestra, fake_model: FakeResponsesApi
) -> None:
    o = orchestra
    o.start_codex_worker(
        o.worker_settings(**codex_settings(o, fake_model)), codex_env=codex_provider_env(fake_model)
    )
    async with o.system.admin() as api:
        project = await register(api, o, default_engines=ENGINES, default_models=MODELS)
        run = await planned_protocol(api, project["id"])
        assert run["status"] == "planned", run
        # The planning request carried the protocol-planning schema; the worker validated the answer.
        planning = [
            c for c in fake_model.calls if "plan_md" in (output_schema(c) or {}).get("properties", {})
        ]
        assert len(planning) == 1
        assert "Add greeting" in user_text(planning[0])

        for index, status in ((0, "completed"), (1, "completed"), (2, "failed")):
            await action(api, f"/protocols/{run['id']}/actions/run_next_step")
            steps = await wait_for(
                api,
                f"/protocols/{run['id']}/steps",
                lambda b, i=index, s=status: b["data"][i]["status"] == s,
                within=60,
                what=f"step {index} {status}",
            )
        assert "greeting.py" in steps["data"][1]["changed_files"]
        assert "greet" in await o.origin.show(run["protocol_name"], "greeting.py")
        blocked = await get(api, f"/protocols/{run['id']}")
        assert blocked["status"] == "blocked"

        events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
        usage = [e["payload"] for e in events if e["type"] == "protocol_run.usage_recorded"]
        # Real usage as the CLI reported it (summed over the turn's requests), once per call.
        assert usage
        assert all(u["usage"]["input_tokens"] % 1200 == 0 for u in usage)
        assert {u["phase"] for u in usage} >= {"PHASE_PLANNING", "PHASE_EXEC", "PHASE_QA"}
        verdicts = [e["payload"] for e in events if e["type"] == "protocol_run.qa_verdict_recorded"]
        assert [v["verdict"] for v in verdicts] == ["QA_VERDICT_PASS", "QA_VERDICT_FAIL"]  # 00 skips QA
        assert verdicts[-1]["blocking"] == ["docs are missing"]


async def test_invalid_plan_is_retried_once_then_planning_fails(orchestra: Orchestra) -> None:
    o = orchestra

    def bad_planner(call: Mapping[str, Any]) -> Turn:
        return Turn.message("here is my plan: step one, step two", usage=USAGE)

    with FakeResponsesApi(handler=bad_planner) as fake:
        o.start_codex_worker(o.worker_settings(**codex_settings(o, fake)), codex_env=codex_provider_env(fake))
        async with o.system.admin() as api:
            project = await register(api, o, default_engines=ENGINES, default_models=MODELS)
            run = await planned_protocol(api, project["id"])
            assert run["status"] == "failed"
            assert "invalid plan output" in run["blocked_reason"]
            assert len(fake.calls) == 2
            assert "previous answer was rejected" in user_text(fake.calls[1])
            events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
            assert [e["type"] for e in events].count("protocol_run.usage_recorded") == 2


async def test_a_qa_answer_still_invalid_after_the_re_ask_is_a_failing_verdict(orchestra: Orchestra) -> None:
    """Fail-closed: an invalid answer is asked again once with the reason, then recorded as a FAIL."""
    o = orchestra

    def vague_qa(call: Mapping[str, Any]) -> Turn:
        if "verdict" in (output_schema(call) or {}).get("properties", {}):
            return Turn.message("Looks fine to me!", usage=USAGE)
        return model(call)

    with FakeResponsesApi(handler=vague_qa) as fake:
        o.start_codex_worker(o.worker_settings(**codex_settings(o, fake)), codex_env=codex_provider_env(fake))
        async with o.system.admin() as api:
            project = await register(api, o, default_engines=ENGINES, default_models=MODELS)
            run = await planned_protocol(api, project["id"])
            for index, status in ((0, "completed"), (1, "failed")):
                await action(api, f"/protocols/{run['id']}/actions/run_next_step")
                await wait_for(
                    api,
                    f"/protocols/{run['id']}/steps",
                    lambda b, i=index, s=status: b["data"][i]["status"] == s,
                    within=60,
                    what=f"step {index} {status}",
                )
            qa_calls = [c for c in fake.calls if "verdict" in (output_schema(c) or {}).get("properties", {})]
            assert len(qa_calls) == 2
            assert "Your previous answer was rejected: not JSON" in user_text(qa_calls[1])
            events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
            [verdict] = [e["payload"] for e in events if e["type"] == "protocol_run.qa_verdict_recorded"]
            assert verdict["verdict"] == "QA_VERDICT_FAIL"
            assert verdict["blocking"][0].startswith("QA output was not a valid verdict: not JSON")


def codex_processes() -> list[psutil.Process]:
    """The codex CLI processes started by this test process (the in-process worker's agents)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "codex" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:  # ended while we looked
            continue
    return found


async def test_cancel_mid_execution_kills_the_codex_process(orchestra: Orchestra) -> None:
    o = orchestra

    def slow_executor(call: Mapping[str, Any]) -> Turn:
        if "You execute step" in user_text(call):
            return Turn.message("too late").held(120)  # the model "thinks" until the run is cancelled
        return model(call)

    with FakeResponsesApi(handler=slow_executor) as fake:
        o.start_codex_worker(o.worker_settings(**codex_settings(o, fake)), codex_env=codex_provider_env(fake))
        async with o.system.admin() as api:
            project = await register(api, o, default_engines=ENGINES, default_models=MODELS)
            run = await planned_protocol(api, project["id"])
            tip = await o.origin.tip(run["protocol_name"])
            await action(api, f"/protocols/{run['id']}/actions/run_next_step")
            await eventually(lambda: bool(codex_processes()), within=20, what="codex to run the step")
            await action(api, f"/protocols/{run['id']}/actions/cancel")
            await eventually(
                lambda: not codex_processes(),
                within=30,
                what="the codex process to be gone (the model holds its answer for 120 s)",
            )
            await wait_for(api, f"/protocols/{run['id']}", lambda r: r["status"] == "cancelled")
            assert await o.origin.tip(run["protocol_name"]) == tip  # nothing pushed after


async def test_a_rejected_plan_is_planned_again_with_the_reason_in_the_planners_prompt(
    orchestra: Orchestra, fake_model: FakeResponsesApi
) -> None:
    """plan_approval: required on an autopilot project: the run waits in planned; a rejection plans again
    and the real Codex CLI's planner is told why; an approval starts the steps by itself."""
    o = orchestra
    o.start_codex_worker(
        o.worker_settings(**codex_settings(o, fake_model)), codex_env=codex_provider_env(fake_model)
    )
    async with o.system.admin() as api:
        project = await register(
            api, o, default_engines=ENGINES, default_models=MODELS, run_policy={"plan_approval": "required"}
        )
        run = await planned_protocol(api, project["id"])
        assert (run["status"], run["waiting_for"]) == ("planned", "plan_approval")
        reason = "Put the greeting in its own module, and say so in the plan"
        rejected = await api.post(f"/protocols/{run['id']}/actions/reject_plan", json={"reason": reason})
        assert rejected.status_code == 200, rejected.text
        again = await wait_for(
            api,
            f"/protocols/{run['id']}",
            lambda r: r["status"] == "planned" and r["waiting_for"] == "plan_approval",
            within=60,
            what="the plan made again",
        )
        planning = [
            c for c in fake_model.calls if "plan_md" in (output_schema(c) or {}).get("properties", {})
        ]
        assert len(planning) == 2
        assert reason not in user_text(planning[0])
        assert reason in user_text(planning[1]), "the planner is told why its plan was rejected"
        assert again["spec_hash"] is not None

        await action(api, f"/protocols/{run['id']}/actions/approve_plan")
        steps = await wait_for(
            api,
            f"/protocols/{run['id']}/steps",
            lambda b: b["data"][1]["status"] == "completed",
            within=90,
            what="the steps going by themselves after the approval",
        )
        assert steps["data"][0]["status"] == "completed"
