"""Read-your-writes: wait until the projector's checkpoint reaches a sequence.

One dedicated connection LISTENs on the checkpoint channel (the projector NOTIFYs after each committed
batch, and after a rebuild swap); waiters are woken on each notification. A periodic read of the
checkpoint table covers notifications missed while the listening connection was being re-established.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from deksdenflow_core.aio import cancel_and_wait
from deksdenflow_core.logging import get_logger
from deksdenflow_core.readmodel import CHECKPOINT_CHANNEL, PROJECTOR_NAME, SCHEMA

log = get_logger(__name__)
_POLL_SECONDS = 1.0


class CheckpointWatcher:
    """The read model's checkpoint as last seen, and a way to wait for it to advance."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self.current = 0
        self.migrated = False  # the read model's tables exist (the projector has migrated)
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="checkpoint-watcher")

    async def close(self) -> None:
        if self._task is not None:
            # (again as needed: its retry loop may catch an error that stood for the cancellation)
            await cancel_and_wait(self._task)

    async def wait_for(self, seq: int, within: float) -> bool:
        """True once the checkpoint is at least ``seq``; False if ``within`` seconds pass first."""
        if self.current >= seq:
            return True
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: self.current >= seq)
        except TimeoutError:
            return self.current >= seq
        return True

    async def _advance(self, seq: int) -> None:
        if seq > self.current:
            async with self._changed:
                self.current = seq
                self._changed.notify_all()

    async def _run(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn)

                def on_notify(_c: object, _pid: int, _channel: str, payload: str) -> None:
                    schema, _, seq = payload.rpartition(":")
                    if schema == SCHEMA and seq.isdigit():
                        asyncio.get_running_loop().create_task(self._advance(int(seq)))

                await conn.add_listener(CHECKPOINT_CHANNEL, on_notify)
                while True:
                    await self._advance(await self._read(conn))
                    await asyncio.sleep(_POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("checkpoint watcher reconnecting", error=repr(exc))
                await asyncio.sleep(_POLL_SECONDS)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()

    async def _read(self, conn: asyncpg.Connection) -> int:
        try:
            value = await conn.fetchval(
                f'SELECT last_seq FROM "{SCHEMA}".checkpoints WHERE name = $1', PROJECTOR_NAME
            )
        except asyncpg.UndefinedTableError:  # the projector has not migrated yet
            return 0
        self.migrated = True
        return int(value or 0)
