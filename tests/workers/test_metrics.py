"""Metrics of the whole system after real work: a budget warns before it stops (an event and a metric),
every durable consumer's backlog is sampled, and ``promtool check metrics`` finds nothing to say about
any service's ``/metrics``."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest
from deksdenflow_codex_worker import budget
from deksdenflow_codex_worker.budget import Limit, Scope, Spent
from prometheus_client import CollectorRegistry, generate_latest

from tests.workers.conftest import Orchestra
from tests.workers.flow import get, planned_protocol, register
from tests.workers.scripts import protocol_script


def promtool_findings(exposition: bytes) -> str:
    """What ``promtool check metrics`` says about an exposition ("" when nothing)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: make test installs Debian's prometheus package"
    done = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, check=False, timeout=60
    )
    return (done.stdout + done.stderr).decode().strip() if done.returncode else ""


def sample(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float | None:
    return registry.get_sample_value(name, labels)


def test_crossed_budgets_at_the_warning_share() -> None:
    limits = [Limit(Scope.STEP, 100, 0), Limit(Scope.PROTOCOL, 0, 1_000)]
    spent = {Scope.STEP: Spent(79, 0), Scope.PROTOCOL: Spent(10, 800)}
    assert budget.crossed(limits, spent, 0.8) == [budget.Crossed(Scope.PROTOCOL, "cost", 800, 1_000)]
    assert [c.kind for c in budget.crossed(limits, {**spent, Scope.STEP: Spent(80, 0)}, 0.8)] == [
        "tokens",
        "cost",
    ]
    assert budget.crossed(limits, spent, 0) == []


async def test_a_budget_warns_once_and_every_service_exports_clean_metrics(orchestra: Orchestra) -> None:
    o = orchestra
    o.write_script(protocol_script())
    # Planning makes three calls of 1,100 tokens: the second one crosses half of 4,000, none is refused.
    worker = o.start_codex_worker(
        o.worker_settings(
            token_budget_mode="warn",
            max_tokens_per_protocol=4_000,
            budget_warn_share=0.5,
            planning_model="m-plan",
            decompose_model="m-plan",
            # USD per million tokens: a call of 800 fresh input, 200 cached, 100 output costs $0.0017.
            price_table='{"m-plan": {"input": 1.0, "cached_input": 0.5, "output": 8.0}}',
        )
    )
    async with o.system.admin() as api:
        project = await register(api, o)
        run = await planned_protocol(api, project["id"])
        assert run["status"] == "planned"
        events = (await get(api, f"/protocols/{run['id']}/events?limit=500"))["data"]
        warnings = [e["payload"] for e in events if e["type"] == "protocol_run.budget_warning_recorded"]
        assert len(warnings) == 1, warnings
        assert (warnings[0]["scope"], warnings[0]["kind"], warnings[0]["limit"]) == (
            "protocol",
            "tokens",
            4000,
        )
        assert warnings[0]["spent"] >= 2_000
        r = worker.metrics.registry
        assert sample(r, "deksdenflow_budget_warnings_total", {"scope": "protocol", "kind": "tokens"}) == 1
        assert sample(r, "deksdenflow_budget_exceeded_total", {"mode": "warn"}) is None  # warned, not over
        tokens = {"phase": "planning", "model": "m-plan", "direction": "cached_input"}
        assert sample(r, "deksdenflow_tokens_total", tokens) == 200
        cost = sample(r, "deksdenflow_agent_cost_usd_total", {"phase": "planning", "model": "m-plan"})
        assert cost == pytest.approx(0.0017)
        assert sample(r, "deksdenflow_worker_jobs_total", {"type": "PlanningRequested", "outcome": "ok"}) == 1

        # The backlog of every durable consumer, the workers' too, from the projector.
        projector = o.system.projector
        await projector.sample_consumers()
        consumers = {
            s.labels["consumer"]
            for family in projector.metrics.registry.collect()
            if family.name == "deksdenflow_consumer_pending_messages"
            for s in family.samples
        }
        assert {"projector", "feed", "codex_worker", "git_ci_worker"} <= consumers, consumers

        api_metrics = (await api.get("/metrics")).content
    assert o.git_worker is not None
    expositions = {
        "api": api_metrics,
        "projector": generate_latest(o.system.projector.metrics.registry),
        "codex_worker": generate_latest(worker.metrics.registry),
        "git_ci_worker": generate_latest(o.git_worker.metrics.registry),
    }
    findings = await asyncio.gather(*(asyncio.to_thread(promtool_findings, e) for e in expositions.values()))
    assert dict(zip(expositions, findings, strict=True)) == dict.fromkeys(expositions, "")
