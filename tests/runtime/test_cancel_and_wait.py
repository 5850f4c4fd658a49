"""``cancel_and_wait``: how every process stops its background tasks. One cancel is not always enough
on Python 3.11 (a library's ``wait_for`` can swallow it), so it cancels again until the task ends or
the grace runs out; a task's own failure is logged, not lost."""

from __future__ import annotations

import asyncio
import contextlib

from deksdenflow_core.aio import cancel_and_wait, cancelling
from structlog.testing import capture_logs

from tests.support import eventually


async def test_a_task_that_swallows_a_cancel_is_cancelled_again_until_it_ends() -> None:
    tries = 0
    saw_it_asked = []

    async def retrying() -> None:
        nonlocal tries
        while True:
            tries += 1
            if tries == 1:
                with contextlib.suppress(asyncio.CancelledError):  # as a library's wait_for may do
                    await asyncio.sleep(3600)
                saw_it_asked.append(cancelling())
            await asyncio.sleep(0.05)  # the retry's pause: the next cancel lands here

    task = asyncio.create_task(retrying())
    await eventually(lambda: tries == 1)
    await cancel_and_wait(task, 30)
    assert task.cancelled()
    assert saw_it_asked == [True]  # what the start-up audit's loop checks to give up at once


async def test_a_task_that_never_ends_is_left_after_the_grace_with_a_warning() -> None:
    stubborn = True

    async def deaf() -> None:
        while stubborn:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    task = asyncio.create_task(deaf(), name="deaf")
    await asyncio.sleep(0)
    try:
        with capture_logs() as logs:
            await cancel_and_wait(task, 0.3)
        assert not task.done()
        assert {"event": "task did not stop when cancelled", "task": "deaf", "log_level": "warning"} in logs
    finally:
        stubborn = False
        task.cancel()
        await asyncio.wait({task})


async def test_a_task_that_had_failed_has_its_error_logged() -> None:
    async def failing() -> None:
        raise RuntimeError("the database went away")

    task = asyncio.create_task(failing(), name="tracker")
    await asyncio.wait({task})
    with capture_logs() as logs:
        await cancel_and_wait(task)
    assert {
        "event": "task had failed",
        "task": "tracker",
        "error": "RuntimeError('the database went away')",
        "log_level": "warning",
    } in logs
