"""``GET /health``: 200 when NATS and PostgreSQL both answer, 503 naming the one that does not and why."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from deksdenflow_api.connections import Connections

router = APIRouter(tags=["operations"])


def get_connections(request: Request) -> Connections:
    """The connections opened by the app's lifespan."""
    connections: Connections = request.app.state.connections
    return connections


async def _run_check(check: Callable[[], Awaitable[None]], seconds: float) -> str | None:
    """None if ``check`` passes within ``seconds``, else why it did not."""
    try:
        async with asyncio.timeout(seconds):
            await check()
    except TimeoutError:
        return f"no answer within {seconds:g}s"
    except Exception as exc:  # any failure is a health result, not an API error
        return f"{type(exc).__name__}: {exc}"
    return None


@router.get(
    "/health",
    summary="Liveness and readiness: do NATS and PostgreSQL answer?",
    responses={503: {"description": "At least one dependency is down; `errors` says which and why."}},
)
async def health(connections: Annotated[Connections, Depends(get_connections)]) -> JSONResponse:
    """Check NATS (a JetStream request) and PostgreSQL (``SELECT 1``) concurrently, each time-bounded."""
    nats_error, pg_error = await asyncio.gather(
        _run_check(connections.nats.check, connections.health_timeout),
        _run_check(connections.postgres.check, connections.health_timeout),
    )
    errors = {name: error for name, error in (("nats", nats_error), ("postgres", pg_error)) if error}
    body: dict[str, Any] = {
        "status": "unavailable" if errors else "ok",
        "checks": {"nats": "down" if nats_error else "ok", "postgres": "down" if pg_error else "ok"},
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=503 if errors else 200)
