"""asyncio helpers every process shares."""

from __future__ import annotations

import asyncio

from deksdenflow_core.logging import get_logger

_log = get_logger(__name__)


async def cancel_and_wait(task: asyncio.Task[None], grace: float) -> None:
    """Cancel ``task`` and wait up to ``grace`` seconds for it to end, cancelling again as needed.

    One cancel() is not always enough on Python 3.11: its ``wait_for`` raises the inner error instead of
    CancelledError when both happen at once (nats-py's connect loop, asyncpg's timed queries), so a loop
    that catches that error and tries again swallows the cancellation.
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
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not report it as never retrieved


def cancelling() -> bool:
    """True when the current task was asked to stop, even if a library swallowed the CancelledError."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
