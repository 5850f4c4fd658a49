"""When to start a crashed process again, and when to give up on it.

A process that dies is started again after a delay that doubles with each crash in a row (0.5 s, 1 s,
2 s ... up to a ceiling); a run that lasted long enough counts as healthy and resets the delay. Too many
crashes within a window is a crash loop: starting again would not help, so the caller gives up.
"""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    """Backoff and crash-loop limits (``DEKSDENFLOW_RESTART_*`` settings)."""

    initial_delay: float = 0.5
    max_delay: float = 30.0
    stable_after: float = 30.0
    max_crashes: int = 5
    window: float = 60.0


class CrashHistory:
    """The crashes of one process; ``record`` says how long to wait before the next start, or None."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._recent: deque[float] = deque()
        self._in_a_row = 0

    def record(self, started_at: float, now: float) -> float | None:
        """Record a crash at ``now`` of a run started at ``started_at``; the delay before the next start,
        or None when this crash makes ``max_crashes`` within ``window`` seconds (a crash loop)."""
        policy = self.policy
        if now - started_at >= policy.stable_after:
            self._in_a_row = 0
        self._in_a_row += 1
        self._recent.append(now)
        while self._recent and now - self._recent[0] > policy.window:
            self._recent.popleft()
        if len(self._recent) >= policy.max_crashes:
            return None
        return float(min(policy.max_delay, policy.initial_delay * 2 ** (self._in_a_row - 1)))

    @property
    def crashes_in_window(self) -> int:
        return len(self._recent)


def describe_exit(code: int | None) -> str:
    """``exit code 7``, ``killed by SIGKILL``, or ``no exit status`` for a process's return code."""
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
