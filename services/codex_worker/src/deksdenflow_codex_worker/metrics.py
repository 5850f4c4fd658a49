"""Prometheus metrics of the codex worker: jobs, agent calls and their errors, tokens and cost by phase and
model, QA verdicts, budgets."""

from __future__ import annotations

from deksdenflow_core.jobs import JobMetrics
from deksdenflow_core.labels import BoundedLabel
from prometheus_client import CollectorRegistry, Counter, Histogram


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # The job families every worker shares (the dispatcher observes them).
        self.job_metrics = JobMetrics(r)
        self.jobs = self.job_metrics.jobs
        self.job_seconds = self.job_metrics.job_seconds
        self.agent_calls = Counter(
            "deksdenflow_agent_calls_total",
            "Agent calls by phase, engine and result",
            ["phase", "engine", "result"],
            registry=r,
        )
        self.agent_seconds = Histogram(
            "deksdenflow_agent_call_seconds",
            "Agent call duration",
            ["phase", "engine"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
            registry=r,
        )
        self.tokens = Counter(
            "deksdenflow_tokens_total",
            "Tokens by phase, model and direction (input, cached_input, output)",
            ["phase", "model", "direction"],
            registry=r,
        )
        self.cost = Counter(
            "deksdenflow_agent_cost_usd_total",
            "What agent calls cost in USD (engine's figure, else the price table) by phase and model",
            ["phase", "model"],
            registry=r,
        )
        self.agent_errors = Counter(
            "deksdenflow_agent_errors_total",
            "Agent calls that failed, by phase, engine, model and kind (engine_error: the engine could not "
            "answer; failed: the agent reported a failure)",
            ["phase", "engine", "model", "kind"],
            registry=r,
        )
        self.qa_verdicts = Counter(
            "deksdenflow_qa_verdicts_total",
            "QA verdicts by verdict and policy",
            ["verdict", "policy"],
            registry=r,
        )
        self.budget_refusals = Counter(
            "deksdenflow_budget_exceeded_total", "Agent calls over a budget, by mode", ["mode"], registry=r
        )
        self.fallbacks = Counter(
            "deksdenflow_agent_fallbacks_total",
            "Agent calls moved on to the next engine and model of their fallback chain, by phase and reason",
            ["phase", "reason"],
            registry=r,
        )
        self.budget_warnings = Counter(
            "deksdenflow_budget_warnings_total",
            "Budgets whose warning share was crossed (one per run and budget), by scope (step, protocol, "
            "project) and kind (tokens, cost)",
            ["scope", "kind"],
            registry=r,
        )
        # Model names come from settings and projects: bounded, whatever they say.
        self.model = BoundedLabel()
