"""Prometheus metrics of the codex worker: jobs, agent calls, tokens by phase and model, QA verdicts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram


class Outcome:
    """How a job ended; ``ok`` unless the job says otherwise or raises."""

    def __init__(self) -> None:
        self.value = "ok"

    def set(self, value: str) -> None:
        self.value = value


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs = Counter(
            "deksdenflow_worker_jobs_total", "Jobs by type and outcome", ["type", "outcome"], registry=r
        )
        self.job_seconds = Histogram(
            "deksdenflow_worker_job_seconds",
            "Job duration by type",
            ["type"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
            registry=r,
        )
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
            "Tokens by phase, model and direction",
            ["phase", "model", "direction"],
            registry=r,
        )
        self.qa_verdicts = Counter("deksdenflow_qa_verdicts_total", "QA verdicts", ["verdict"], registry=r)
        self.budget_refusals = Counter(
            "deksdenflow_budget_exceeded_total", "Agent calls over a budget, by mode", ["mode"], registry=r
        )

    @contextmanager
    def job(self, kind: str) -> Iterator[Outcome]:
        outcome = Outcome()
        started = time.perf_counter()
        try:
            yield outcome
        except BaseException:
            outcome.set("error")
            raise
        finally:
            self.jobs.labels(kind, outcome.value).inc()
            self.job_seconds.labels(kind).observe(time.perf_counter() - started)
