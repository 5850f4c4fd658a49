"""The workers' operations endpoint: /health for probes, /metrics for Prometheus."""

from __future__ import annotations

import httpx
from deksdenflow_codex_worker.metrics import WorkerMetrics
from deksdenflow_core.ops import OpsServer
from prometheus_client import generate_latest


async def test_health_and_metrics_over_http() -> None:
    state = {"nats": "ok"}
    metrics = WorkerMetrics()
    metrics.jobs.labels("StepExecutionRequested", "ok").inc()

    async def health() -> dict[str, str]:
        return dict(state)

    server = OpsServer("127.0.0.1", 0, health=health, metrics=lambda: generate_latest(metrics.registry))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.bound_port}") as client:
            ok = await client.get("/health")
            assert (ok.status_code, ok.json()) == (200, {"status": "ok", "checks": {"nats": "ok"}})
            state["nats"] = "disconnected"
            down = await client.get("/health")
            assert down.status_code == 503
            assert down.json()["checks"] == {"nats": "disconnected"}
            scraped = await client.get("/metrics")
            assert scraped.status_code == 200
            assert (
                'deksdenflow_worker_jobs_total{outcome="ok",type="StepExecutionRequested"} 1.0'
                in scraped.text
            )
            assert (await client.get("/nope")).status_code == 404
            assert (await client.post("/health")).status_code == 405
    finally:
        await server.stop()
