"""Readiness: the read model serves — migrated, caught up with the log, and keeping up with it.

Caught up means: at least at the log's last sequence as this process first saw it (so a fresh start is
ready once the projector has applied what was written before it). Keeping up means not stalled: events
waiting beyond the checkpoint while it does not move for ``read_model_stall_seconds``.
"""

from __future__ import annotations

import time

from deksdenflow_core.errors import InfrastructureError
from deksdenflow_core.progress import Progress

from deksdenflow_api.consistency import CheckpointWatcher


class ReadModelReadiness:
    """Judges the read model from the checkpoint (the watcher's) and the head of the log (given)."""

    def __init__(self, watcher: CheckpointWatcher, stall_after_seconds: float) -> None:
        self._watcher = watcher
        self._target: int | None = None
        self._caught_up = False
        self.progress = Progress(stall_after_seconds)

    def check(self, head: int) -> None:
        """Raise ``InfrastructureError`` saying why the read model does not serve yet."""
        watcher, now = self._watcher, time.monotonic()
        if not watcher.migrated:
            raise InfrastructureError("the read model is not migrated yet (is the projector running?)")
        if self._target is None:
            self._target = head
        self.progress.observe(watcher.current, head, now)
        if not self._caught_up:
            if watcher.current < self._target:
                raise InfrastructureError(
                    f"the read model is at sequence {watcher.current}, catching up to {self._target}",
                    checkpoint=watcher.current,
                    target=self._target,
                )
            self._caught_up = True
        if reason := self.progress.stalled(now):
            raise InfrastructureError(f"the read model is {reason}", checkpoint=watcher.current, head=head)
