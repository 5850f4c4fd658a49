"""asyncio helpers every process shares."""

from __future__ import annotations

import asyncio

from deksdenflow_core.logging import get_logger

_log = get_logger(__name__)


# What a stopping process gives each of its background tasks to end.
STOP_GRACE_SECONDS = 5.0


async def cancel_and_wait(task: asyncio.Task[None], grace: float = STOP_GRACE_SECONDS) -> None:
    """Cancel ``task`` and wait up to ``grace`` seconds for it to end, cancelling again as needed; an
    error it had ended with is logged.

    One cancel() is not always enough on Python 3.11: its ``wait_for`` raises the inner error instead of
    CancelledError when both happen at once (nats-py's connect loop, asyncpg's timed queries), so a loop
    that catches that error and tries again swallows the cancellation. The task is cancelled again every
    0.1 s, its clean-up included: what it does on its way out must bear being cut short.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            _log.warning("task did not stop when cancelled", task=task.get_name())
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(0.1, remaining))
    if not task.cancelled() and (error := task.exception()) is not None:
        _log.warning("task had failed", task=task.get_name(), error=repr(error))


def cancelling() -> bool:
    """True when the current task was asked to stop, even if a library swallowed the CancelledError."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
