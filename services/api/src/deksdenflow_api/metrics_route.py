"""``GET /metrics``: the API's Prometheus metrics (no auth, like /health)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    """Requests (count and latency by route, method, status), appends, conflicts, idempotent replays."""
    registry = request.app.state.ctx.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
