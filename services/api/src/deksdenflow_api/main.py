"""Composition root of the API process: settings, logging, app, uvicorn.

uvicorn owns the signals: on SIGTERM or SIGINT it stops accepting, finishes in-flight requests, then
runs the lifespan exit, which drains NATS and closes the PostgreSQL pool.
"""

from __future__ import annotations

import gc
import sys

import uvicorn
from deksdenflow_core import tracing
from deksdenflow_core.logging import configure_logging, get_logger
from deksdenflow_core.settings import ApiSettings, DatabaseSettings, EventStoreSettings, LogSettings
from pydantic import ValidationError

from deksdenflow_api.app import create_app

EXIT_RUNTIME_ERROR = 1
EXIT_BAD_CONFIGURATION = 2


def main() -> int:
    """Run the API until it is told to stop; the return value is the process exit code."""
    try:
        settings = ApiSettings()
        event_store = EventStoreSettings()
        database = DatabaseSettings()
        log_settings = LogSettings()
    except ValidationError as exc:
        print(f"deksdenflow-api: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_BAD_CONFIGURATION
    configure_logging(log_settings, service="api")
    tracing.configure("api")  # spans only when OTEL_* configures an exporter
    app = create_app(settings, event_store=event_store, database=database)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            lifespan="on",
            log_config=None,  # keep the structlog handlers configured above
            timeout_graceful_shutdown=10,
        )
    )
    # Everything allocated so far lives as long as the process: keep it out of the collector's scans,
    # and collect the young generation less often. Fewer, shorter GC pauses trim the latency tail.
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    get_logger(__name__).info("API starting", host=settings.api_host, port=settings.api_port)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits with its own codes (3 when it cannot bind): report ours
        return EXIT_RUNTIME_ERROR if exc.code else 0
    return 0 if server.started else EXIT_RUNTIME_ERROR
