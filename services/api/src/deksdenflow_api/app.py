"""The FastAPI application factory. Nothing is created or connected at import time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from deksdenflow_core import tracing
from deksdenflow_core.aio import cancel_and_wait
from deksdenflow_core.logging import get_logger
from deksdenflow_core.nats_internals import use_fast_header_parser
from deksdenflow_core.settings import ApiSettings, DatabaseSettings, EventStoreSettings
from deksdenflow_core.subjects import Subjects
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from opentelemetry.trace import Span

from deksdenflow_api import console, docs, errors, health, metrics_route, spec_audit
from deksdenflow_api.admission import FairAdmission
from deksdenflow_api.connections import Connections, NatsConnection, PostgresPool
from deksdenflow_api.consistency import CheckpointWatcher
from deksdenflow_api.context import ApiContext
from deksdenflow_api.fanout import EventFanout
from deksdenflow_api.idempotency import IdempotencyStore
from deksdenflow_api.middleware import ApiMetrics, Idempotency, RequestContext
from deksdenflow_api.readiness import ReadModelReadiness
from deksdenflow_api.routes import (
    evaluations,
    events,
    projects,
    prompts,
    protocols,
    queues,
    specs,
    usage,
    webhooks,
)
from deksdenflow_api.sealing import Sealer

_log = get_logger(__name__)

SHUTDOWN_TIMEOUT_SECONDS = 5.0

DESCRIPTION = """
Commands become events in the log (JetStream); reads come from the read model (PostgreSQL).

* **Auth**: `Authorization: Bearer <admin token>` on everything but the probes (`/livez`, `/health`,
  `/readyz`) and `/metrics`, or
  `X-Project-Token: <token>` for one project (created with the project, shown once).
* **Idempotency**: send `Idempotency-Key` on any POST; a repeat returns the first answer and appends nothing.
* **Read-your-writes**: reads through the API process that took a write wait (briefly) until the read
  model has it. Every write answers `X-Event-Sequence`; send it back as `X-Min-Event-Sequence` on a read
  through any replica to see at least that write.
* **Webhooks**: `POST /webhooks/github` and `/webhooks/gitlab` take no bearer token: they are
  authenticated by the provider's signature (`X-Hub-Signature-256`) or token (`X-Gitlab-Token`) with
  `DEKSDENFLOW_WEBHOOK_TOKEN` or the project's own secret (`POST /projects/{id}/webhook-secret`).
* **Request ids**: `X-Request-ID` is taken (or generated), echoed, and recorded as the cause of the
  events a request appends.
"""


def create_app(
    settings: ApiSettings, *, event_store: EventStoreSettings, database: DatabaseSettings
) -> FastAPI:
    """Build the API; its lifespan opens NATS, the PostgreSQL pool and the checkpoint watcher."""
    metrics = ApiMetrics()
    idempotency = IdempotencyStore(
        f"{event_store.stream_name}_IDEMPOTENCY",
        settings.idempotency_ttl_days,
        sealer=_sealer(settings),
        presence_prefix=Subjects(event_store.subject_prefix).api_presence,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        use_fast_header_parser()
        connections = Connections(
            nats=NatsConnection(
                event_store.nats_url,
                name="deksdenflow-api",
                connect_timeout=event_store.connect_timeout_seconds,
            ),
            postgres=PostgresPool(database.db_url),
            health_timeout=settings.health_timeout_seconds,
        )
        await connections.postgres.start()
        connections.nats.start()
        watcher = CheckpointWatcher(database.db_url)
        watcher.start()
        fanout = EventFanout(
            lambda: connections.postgres.pool,
            watcher,
            metrics,
            max_clients=settings.sse_max_clients,
            queue_events=settings.sse_client_queue_events,
        )
        fanout.start()
        app.state.connections = connections
        app.state.ctx = ApiContext(
            settings=settings,
            event_store=event_store,
            connections=connections,
            watcher=watcher,
            idempotency=idempotency,
            metrics=metrics,
            readiness=ReadModelReadiness(watcher, settings.read_model_stall_seconds),
            fanout=fanout,
        )
        # Spec rules newer than the last audit's: the stored plans are audited again (in the background).
        auditing = asyncio.create_task(spec_audit.audit_on_start(app.state.ctx), name="spec-audit")
        try:
            yield
        finally:
            await cancel_and_wait(auditing, SHUTDOWN_TIMEOUT_SECONDS)
            await fanout.close()
            await watcher.close()
            await connections.nats.close(SHUTDOWN_TIMEOUT_SECONDS)
            await connections.postgres.close(SHUTDOWN_TIMEOUT_SECONDS)

    app = FastAPI(
        title="deksdenflow",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from packaged assets instead (docs.py): no CDN
        redoc_url=None,
    )
    errors.install(app)
    _add_routes(
        app,
        health.router,
        metrics_route.router,
        projects.router,
        protocols.router,
        events.router,
        usage.router,
        prompts.router,
        specs.router,
        evaluations.router,
        queues.router,
        webhooks.router,
    )
    docs.install(app)
    console.install(app)
    # Outermost last: RequestContext wraps everything, so replayed answers carry ids and are counted.
    # A lambda on purpose: the context exists only once the lifespan has started.
    # Innermost: a command waits for its turn (per project, see admission.py) only once it is sure to run.
    app.add_middleware(FairAdmission, limit=settings.max_commands_in_flight, waiting=metrics.commands_waiting)
    app.add_middleware(Idempotency, store=idempotency, nats=lambda: app.state.ctx.nats(), metrics=metrics)  # noqa: PLW0108
    app.add_middleware(RequestContext, metrics=metrics)
    if tracing.enabled():
        _instrument(app)
    return app


def _instrument(app: FastAPI) -> None:
    """The request spans (OpenTelemetry's FastAPI instrumentation), outermost, when spans are recorded:
    a request's ``traceparent`` is their parent, and the append a command makes is their child."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor  # noqa: PLC0415

    def mark(span: Span, scope: dict[str, Any]) -> None:
        if span.is_recording():
            span.set_attribute(tracing.SERVICE_ATTRIBUTE, "api")

    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls="/livez,/health,/readyz,/metrics",
        exclude_spans=["receive", "send"],
        server_request_hook=mark,
    )


def _add_routes(app: FastAPI, *routers: APIRouter) -> None:
    """The routers' routes, on the app itself.

    ``include_router`` keeps each router as a node that every request walks (matching its routes twice)
    and that hands the request on through a context of its own: on a point read that was a tenth of the
    API's CPU. A router's own settings (tags, prefix, dependencies, responses) are already in each route
    it made, and the app passes none of its own, so adding the routes flat gives the same routes, OpenAPI
    schema and dispatch order as including the routers.
    """
    for router in routers:
        if not all(isinstance(route, APIRoute) for route in router.routes):
            raise ValueError(f"{router!r} includes other routers: include it with include_router")
        app.router.routes.extend(router.routes)


def _sealer(settings: ApiSettings) -> Sealer:
    secrets = settings.idempotency_secrets()
    if secrets:
        return Sealer(secrets)
    _log.warning(
        "DEKSDENFLOW_IDEMPOTENCY_SECRET is not set: Idempotency-Key answers are sealed with a key of this "
        "process only and cannot be replayed after a restart or by another replica"
    )
    return Sealer.ephemeral()
