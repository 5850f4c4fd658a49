"""Structured logging for every process: key/value, JSON on demand, with ids bound per unit of work.

``configure_logging`` is called once by each process's ``main``. ``bind_ids`` binds the ids of the
event or request being handled (``event_id``, ``correlation_id``, ``causation_id``, ``stream_seq`` …)
into context variables, so every log line inside the handler carries them without passing loggers.

No secret reaches a log line, in either mode, from structlog or from stdlib loggers (uvicorn, nats,
asyncpg …): tracebacks are rendered plainly (never with local variables), and one processor
(``redact_secrets``, see ``deksdenflow_core.redaction``) runs last on every record before rendering.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from deksdenflow_core.redaction import Redactor
from deksdenflow_core.settings import LogSettings


def configure_logging(settings: LogSettings, *, service: str) -> None:
    """Route stdlib and structlog through one renderer: JSON if ``DEKSDENFLOW_LOG_JSON=1``, else console."""
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        # Plain tracebacks (the traceback module's), as text, in both modes: the console renderer's own
        # (rich / better-exceptions) show local variables, which hold request headers and settings.
        structlog.processors.format_exc_info,
        Redactor.from_environment(),  # last: it sees the message, every field and the traceback text
    ]
    renderer: structlog.types.Processor
    if settings.log_json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    structlog.contextvars.bind_contextvars(service=service)


@contextmanager
def bind_ids(**ids: Any) -> Iterator[None]:
    """Bind ids (None values are skipped) for the duration of a block, restoring the previous ones after."""
    # Tokens rather than ``bound_contextvars``: that one copies and scans the whole context on entry to save
    # the previous values, which an API request pays on every call; a token restores them exactly.
    tokens = structlog.contextvars.bind_contextvars(**{k: v for k, v in ids.items() if v is not None})
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger for a module; the name appears as ``logger`` in every line."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
