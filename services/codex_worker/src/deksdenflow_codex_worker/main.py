"""Composition root of the codex worker process."""

from __future__ import annotations

import asyncio
import sys

from deksdenflow_core import tracing
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.logging import configure_logging
from deksdenflow_core.service import serve_worker
from deksdenflow_core.settings import LogSettings
from deksdenflow_git import Git, GitIdentity, MirrorCache
from nats.aio.client import Client as NATS
from prometheus_client import generate_latest

from deksdenflow_codex_worker.engines.registry import build_registry
from deksdenflow_codex_worker.metrics import WorkerMetrics
from deksdenflow_codex_worker.settings import WorkerSettings
from deksdenflow_codex_worker.worker import CodexWorker


def make_worker(store: JetStreamEventStore, settings: WorkerSettings, metrics: WorkerMetrics) -> CodexWorker:
    home = settings.home.resolve()
    git = Git(identity=GitIdentity(settings.git_user, settings.git_email))
    return CodexWorker(
        store,
        settings,
        build_registry(settings, codex_home_root=home / "codex-home"),
        MirrorCache(home / "git" / "codex-worker", git),
        metrics=metrics,
    )


def main() -> int:
    configure_logging(LogSettings(), service="codex-worker")
    tracing.configure("codex_worker")  # spans only when OTEL_* configures an exporter
    settings = WorkerSettings()
    metrics = WorkerMetrics()

    async def build(store: JetStreamEventStore, nc: NATS) -> CodexWorker:
        del nc  # the worker talks to NATS only through the store
        return make_worker(store, settings, metrics)

    # The standard event loop, not uvloop: a worker starts some thirty git processes per step, and
    # uvloop starts each with a full fork() of the worker (20 to 35 ms of CPU per git command at a worker's
    # size) where the standard loop uses vfork/posix_spawn (~5 ms): half the CPU per step
    # (bench.autopilot_scale: 0.9 s → 0.45 s per step, wall time halved).
    return asyncio.run(
        serve_worker(
            "codex-worker",
            build,
            ops_host=settings.codex_worker_host,
            ops_port=settings.codex_worker_port,
            metrics=lambda: generate_latest(metrics.registry),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
