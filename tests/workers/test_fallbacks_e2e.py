"""Fallback chains with the real Codex CLI against a fake Responses API that limits one model: the call
moves on to the next model of the chain (an event says why), the limited model then cools down (later
calls start further down, and say so), and a QA FAIL moves nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deksdenflow_fakes.responses_api import CODEX_TEST_MODEL, FakeResponsesApi, Turn, codex_provider_env

from tests.workers.conftest import Orchestra
from tests.workers.flow import action, get, planned_protocol, register, wait_for
from tests.workers.test_codex_worker import ENGINES, codex_settings, model

LIMITED = "gpt-limited"
SPARE_QA = "gpt-spare-qa"


def limited_model(call: Mapping[str, Any]) -> Turn:
    """One model's account is spent; the others answer as the codex worker tests' model does."""
    if call.get("model") == LIMITED:
        return Turn.http_error(429, "You've hit your usage limit. Upgrade to Pro or try again later.")
    return model(call)


async def test_a_limited_model_falls_back_cools_down_and_a_qa_fail_moves_nothing(
    orchestra: Orchestra,
) -> None:
    o = orchestra
    with FakeResponsesApi(handler=limited_model) as fake:
        settings = o.worker_settings(**codex_settings(o, fake), fallback_cooldown_seconds=3600)
        o.start_codex_worker(settings, codex_env=codex_provider_env(fake))
        models = {"planning": LIMITED, "decompose": LIMITED, "exec": LIMITED, "qa": CODEX_TEST_MODEL}
        fallbacks = {
            "planning": [f"codex:{CODEX_TEST_MODEL}"],
            "decompose": [f"codex:{CODEX_TEST_MODEL}"],
            "exec": [f"codex:{CODEX_TEST_MODEL}"],
            "qa": [f"codex:{SPARE_QA}"],
        }
        async with o.system.admin() as api:
            project = await register(
                api, o, default_engines=ENGINES, default_models=models, fallbacks=fallbacks
            )
            assert project["fallbacks"]["exec"] == [f"codex:{CODEX_TEST_MODEL}"]
            run = await planned_protocol(api, project["id"])
            assert run["status"] == "planned", run
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

    switches = [e["payload"] for e in events if e["type"] == "protocol_run.engine_fallback_taken"]
    first, *later = switches
    # The planner's model was limited: the call moved on, and said why.
    assert first["phase"] == "PHASE_PLANNING"
    assert (first["from_engine"], first["from_model"]) == ("codex", LIMITED)
    assert (first["to_engine"], first["to_model"]) == ("codex", CODEX_TEST_MODEL)
    assert first["reason"] in ("usage_limit", "rate_limit"), first
    assert int(first["cooldown_until_ms"]) > 0
    # Cooling down: every later call of the limited model's phases started at the spare, and said so.
    assert later
    assert {s["reason"] for s in later} == {"cooldown"}
    assert {s["from_model"] for s in later} == {LIMITED}
    assert [c.get("model") for c in fake.calls].count(LIMITED) == 1
    # The docs step failed QA (its verdict): QA never fell back, the spare QA model was never asked.
    assert not [s for s in switches if s["phase"] == "PHASE_QA"]
    assert SPARE_QA not in [c.get("model") for c in fake.calls]
    verdicts = [e["payload"]["verdict"] for e in events if e["type"] == "protocol_run.qa_verdict_recorded"]
    assert verdicts[-1] == "QA_VERDICT_FAIL"
