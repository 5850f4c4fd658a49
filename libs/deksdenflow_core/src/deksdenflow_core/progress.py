"""Is a reader of the log keeping up? Pure bookkeeping over observations (no I/O, no clock of its own).

A reader is *stalled* when events have waited in the log beyond its position, and its position has not
moved, for ``stall_after_seconds``. A reader that is merely behind but moving is not stalled, and nor is
one with nothing to read, however long ago it last moved.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Progress:
    """Observations of (position, head of the log) over time; ``stalled`` says whether and why."""

    stall_after_seconds: float
    position: int = 0
    head: int = 0
    # When the reader was first seen with events waiting at its current position; None: not waiting.
    _waiting_since: float | None = None
    _last_seen: float | None = None

    def observe(self, position: int, head: int, now: float) -> None:
        """Record what was seen at ``now`` (a monotonic clock)."""
        moved = position != self.position
        self.position, self.head, self._last_seen = position, head, now
        if head <= position:
            self._waiting_since = None
        elif moved or self._waiting_since is None:
            # Waiting starts counting when it is first seen, not when the reader last moved: after a
            # quiet hour, one new event is not a stall.
            self._waiting_since = now

    def stalled(self, now: float) -> str | None:
        """Why the reader is stalled, or None if it is not (as of the last observation)."""
        if self._waiting_since is None or now - self._waiting_since < self.stall_after_seconds:
            return None
        return (
            f"stalled: {self.head - self.position} events wait beyond sequence {self.position}, "
            f"which has not moved for {now - self._waiting_since:.0f}s"
        )

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)
