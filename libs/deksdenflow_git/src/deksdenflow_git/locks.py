"""Exclusive advisory file locks (``flock``) that asyncio code can wait for without blocking the loop.

``flock`` belongs to an open file description, so two descriptors of the same file conflict even
inside one process, and the kernel drops the lock when its holder dies: a crashed worker never leaves
a lock behind. Waiting polls with ``LOCK_NB`` instead of blocking a thread, so cancelling a waiter
cannot leave a thread that later takes the lock for nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from pathlib import Path

_FIRST_POLL_SECONDS = 0.005
_MAX_POLL_SECONDS = 0.1


class FileLock:
    """An exclusive lock on ``path`` (created if missing), held while its descriptor is open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits."""
        if self._fd is not None:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    async def acquire(self) -> None:
        """Wait until the lock is ours, polling with a growing interval."""
        delay = _FIRST_POLL_SECONDS
        while not self.try_acquire():
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_POLL_SECONDS)

    def release(self, *, unlink: bool = False) -> None:
        """Drop the lock; ``unlink`` also removes the file.

        Unlinking is only safe when every opener of this path serialises on another lock (otherwise a
        waiter could lock the unlinked file while a newcomer locks a new one); callers guarantee it.
        """
        if self._fd is None:
            return
        try:
            if unlink:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        finally:
            os.close(self._fd)
            self._fd = None
