"""Fallback chains through the whole system, with the real Codex CLI against a fake Responses API where
each phase's model is limited one way: planning's has hit its usage limit (a 429 the CLI words as "You've
hit your usage limit"), decomposition's is rate limited (a plain 429), execution's has too small a
context window. Each call moves on to the next model of its chain (an event says why), the model it left
cools down (later calls start further down, and say so), a step's own chain wins over the project's for
its execution, and QA — an invalid answer re-asked, a FAIL recorded — moves nothing."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from deksdenflow_core.assets import prompt_text, version_of
from deksdenflow_fakes.responses_api import (
    CODEX_TEST_MODEL,
    FakeResponsesApi,
    Turn,
    codex_provider_env,
    output_schema,
    tool_outputs,
    user_text,
)

from tests.workers.conftest import Orchestra
from tests.workers.flow import action, get, planned_protocol, register, wait_for
from tests.workers.scripts import PLAN
from tests.workers.test_codex_worker import ENGINES, USAGE, codex_settings, model

LIMITED = "gpt-limited"  # its account's usage is spent
RATED = "gpt-rated"  # rate limited
NARROW = "gpt-narrow"  # its context window is too small for the step
SPARE_EXEC = "gpt-spare-exec"  # the project's exec fallback
SPARE_QA = "gpt-spare-qa"  # the project's QA fallback: never needed
# The greeting step names its own chain (kept through its refinement).
OWN_CHAIN = {**PLAN, "step_files": copy.deepcopy(PLAN["step_files"])}
OWN_CHAIN["step_files"][1]["content"] += f"\nFallbacks: codex:{CODEX_TEST_MODEL}\n"


def limited_models(call: Mapping[str, Any], qa_asked: list[str]) -> Turn:
    """The limited models fail as the real services do; the others answer as the codex worker tests'
    model does, except the greeting step's first QA answer, which is not a verdict."""
    name = call.get("model")
    if name == LIMITED:
        return Turn.http_error(429, "The usage limit has been reached", error_type="usage_limit_reached")
    if name == RATED:
        return Turn.http_error(429, "Rate limit reached for gpt-rated on requests per min (RPM)")
    if name == NARROW:
        return Turn.failed(
            "Your input exceeds the context window of this model.", code="context_length_exceeded"
        )
    props = (output_schema(call) or {}).get("properties", {})
    step = re.search(r"You execute step `([^`]+)`", user_text(call))
    if name == SPARE_EXEC and step and not tool_outputs(call):
        # A model outside the CLI's catalog has no apply_patch: it writes with the shell.
        return Turn.shell(f"mkdir -p notes && echo done > notes/{step.group(1)}", usage=USAGE)
    if "plan_md" in props:
        return Turn.json(OWN_CHAIN, usage=USAGE)
    if "verdict" in props and "01-greeting.md" in user_text(call):
        qa_asked.append(str(name))
        if len(qa_asked) == 1:
            return Turn.message("Looks fine to me!", usage=USAGE)
    return model(call)


async def test_limited_models_fall_back_cool_down_a_steps_chain_wins_and_qa_moves_nothing(
    orchestra: Orchestra,
) -> None:
    o = orchestra
    qa_asked: list[str] = []
    with FakeResponsesApi(handler=lambda call: limited_models(call, qa_asked)) as fake:
        settings = o.worker_settings(**codex_settings(o, fake), fallback_cooldown_seconds=3600)
        o.start_codex_worker(settings, codex_env=codex_provider_env(fake))
        models = {"planning": LIMITED, "decompose": RATED, "exec": NARROW, "qa": CODEX_TEST_MODEL}
        fallbacks = {
            "planning": [f"codex:{CODEX_TEST_MODEL}"],
            "decompose": [f"codex:{CODEX_TEST_MODEL}"],
            "exec": [f"codex:{SPARE_EXEC}"],
            "qa": [f"codex:{SPARE_QA}"],
        }
        async with o.system.admin() as api:
            project = await register(
                api, o, default_engines=ENGINES, default_models=models, fallbacks=fallbacks
            )
            assert project["fallbacks"]["exec"] == [f"codex:{SPARE_EXEC}"]
            run = await planned_protocol(api, project["id"])
            assert run["status"] == "planned", run
            spec = await get(api, f"/protocols/{run['id']}/spec")
            assert [(s["name"], s["fallbacks"]) for s in spec["steps"]] == [
                ("00-setup.md", []),
                ("01-greeting.md", [f"codex:{CODEX_TEST_MODEL}"]),
                ("02-docs.md", []),
            ]
            for index, status in ((0, "completed"), (1, "completed"), (2, "failed")):
                await action(api, f"/protocols/{run['id']}/actions/run_next_step")
                await wait_for(
                    api,
                    f"/protocols/{run['id']}/steps",
                    lambda b, i=index, s=status: b["data"][i]["status"] == s,
                    within=90,
                    what=f"step {index} {status}",
                )
            events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
            step_ids = {
                s["step_name"]: s["id"] for s in (await get(api, f"/protocols/{run['id']}/steps"))["data"]
            }

    switches = [e["payload"] for e in events if e["type"] == "protocol_run.engine_fallback_taken"]
    seen = [
        (s["phase"], s.get("step_run_id", ""), s["from_model"], s["to_model"], s["reason"]) for s in switches
    ]
    setup, greeting, docs = (step_ids[n] for n in ("00-setup.md", "01-greeting.md", "02-docs.md"))
    assert seen == [
        # Each limited model: the call moved on, and said why.
        ("PHASE_PLANNING", "", LIMITED, CODEX_TEST_MODEL, "usage_limit"),
        ("PHASE_DECOMPOSE", "", RATED, CODEX_TEST_MODEL, "rate_limit"),
        # ... then cooled down: the next call started at the spare, and said so.
        ("PHASE_DECOMPOSE", "", RATED, CODEX_TEST_MODEL, "cooldown"),
        ("PHASE_EXEC", setup, NARROW, SPARE_EXEC, "context_window"),
        # The greeting step's own chain won over the project's; the docs step had the project's.
        ("PHASE_EXEC", greeting, NARROW, CODEX_TEST_MODEL, "cooldown"),
        ("PHASE_EXEC", docs, NARROW, SPARE_EXEC, "cooldown"),
    ]
    assert all(int(s["cooldown_until_ms"]) > 0 for s in switches if s["reason"] != "cooldown")
    assert "usage limit" in switches[0]["error"]
    assert "context window" in switches[3]["error"]
    asked = [c.get("model") for c in fake.calls]
    assert (asked.count(LIMITED), asked.count(RATED), asked.count(NARROW)) == (1, 1, 1)
    # QA never fell back: its invalid answer was asked again of the same model, its FAIL recorded.
    assert qa_asked == [CODEX_TEST_MODEL, CODEX_TEST_MODEL]
    assert SPARE_QA not in asked
    verdicts = [e["payload"]["verdict"] for e in events if e["type"] == "protocol_run.qa_verdict_recorded"]
    assert verdicts == ["QA_VERDICT_PASS", "QA_VERDICT_FAIL"]
    # The decompose prompt is in the registry like the others: its calls name it and its version.
    usage = [e["payload"] for e in events if e["type"] == "protocol_run.usage_recorded"]
    decompose = {
        (u.get("prompt_name"), u.get("prompt_version")) for u in usage if u["phase"] == "PHASE_DECOMPOSE"
    }
    assert decompose == {("decompose", version_of(prompt_text("decompose")))}
