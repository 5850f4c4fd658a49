"""Probes. ``GET /livez``: the process serves. ``GET /health``: NATS and PostgreSQL answer (503 naming the
one that does not, and why). ``GET /readyz``: ready for traffic — ``/health``'s checks, and the read
model serves (migrated, caught up with the log, not stalled)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from deksdenflow_api.connections import Connections
from deksdenflow_api.context import ApiContext, get_context

router = APIRouter(tags=["operations"])


async def get_connections(request: Request) -> Connections:
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


def _answer(results: dict[str, str | None], **extra: Any) -> JSONResponse:
    errors = {name: error for name, error in results.items() if error}
    body: dict[str, Any] = {
        "status": "unavailable" if errors else "ok",
        "checks": {name: "down" if error else "ok" for name, error in results.items()},
        **extra,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=503 if errors else 200)


async def _dependencies(connections: Connections) -> dict[str, str | None]:
    nats_error, pg_error = await asyncio.gather(
        _run_check(connections.nats.check, connections.health_timeout),
        _run_check(connections.postgres.check, connections.health_timeout),
    )
    return {"nats": nats_error, "postgres": pg_error}


@router.get("/livez", summary="Liveness: the process serves (depends on nothing else).")
async def livez() -> dict[str, str]:
    """200 as long as the process answers; for restarts (Kubernetes livenessProbe)."""
    return {"status": "ok"}


@router.get(
    "/health",
    summary="Do NATS and PostgreSQL answer?",
    responses={503: {"description": "At least one dependency is down; `errors` says which and why."}},
)
async def health(connections: Annotated[Connections, Depends(get_connections)]) -> JSONResponse:
    """Check NATS (a JetStream request) and PostgreSQL (``SELECT 1``) concurrently, each time-bounded."""
    return _answer(await _dependencies(connections))


@router.get(
    "/readyz",
    summary="Readiness: dependencies answer and the read model serves (caught up, not stalled).",
    responses={503: {"description": "Not ready; `errors` says which check failed and why."}},
)
async def readyz(
    connections: Annotated[Connections, Depends(get_connections)],
    ctx: Annotated[ApiContext, Depends(get_context)],
) -> JSONResponse:
    """``/health``'s checks, then the read model against the head of the log (Kubernetes readinessProbe;
    ``make run`` announces the system once it answers 200)."""
    results = await _dependencies(connections)
    results["read_model"] = "not checked: a dependency is down" if any(results.values()) else None
    if results["read_model"] is None:

        async def read_model() -> None:
            ctx.readiness.check(await (await ctx.store()).stream_last_seq())

        results["read_model"] = await _run_check(read_model, connections.health_timeout)
    return _answer(results, checkpoint=ctx.watcher.current)
