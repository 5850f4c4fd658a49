"""Metric label values that stay few, whatever the input: a label fed from configuration or from a
project's settings (a model's name) keeps its first ``limit`` distinct values and calls every later one
``other``, so one misconfigured deployment cannot grow a family without bound."""

from __future__ import annotations

import threading

OTHER = "other"


class BoundedLabel:
    """The values one label may take: the first ``limit`` distinct ones seen, then ``other``."""

    def __init__(self, limit: int = 50) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        value = value or "unknown"
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return OTHER
