"""The git/CI worker's metrics: the job families every worker has, and PRs/MRs by provider and outcome."""

from __future__ import annotations

from deksdenflow_core.jobs import JobMetrics
from prometheus_client import CollectorRegistry, Counter


class GitCiMetrics(JobMetrics):
    """Every metric of one git/CI worker process, in its own registry (what ``/metrics`` serves)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        super().__init__(self.registry)
        self.prs = Counter(
            "deksdenflow_prs_total",
            "PRs/MRs by provider and outcome",
            ["provider", "outcome"],
            registry=self.registry,
        )
