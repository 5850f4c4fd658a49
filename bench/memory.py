"""Memory of a process and its descendants: RSS, PSS and USS (psutil reads ``/proc/<pid>/smaps_rollup``).

RSS counts every page a process has mapped, shared ones included, so summing it over PostgreSQL's
backends counts the shared buffers once per backend. PSS divides each shared page among the processes
that map it, so it adds up to what a group of processes really holds; USS is what one process alone
holds (what its exit would free). Elsewhere than Linux PSS and USS read as 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psutil

MIB = 1024 * 1024


@dataclass(frozen=True)
class Memory:
    """Bytes held by a group of processes, and how many processes were counted."""

    rss: int = 0
    pss: int = 0
    uss: int = 0
    processes: int = 0

    def __add__(self, other: Memory) -> Memory:
        return Memory(
            self.rss + other.rss,
            self.pss + other.pss,
            self.uss + other.uss,
            self.processes + other.processes,
        )

    def mib(self) -> tuple[float, float, float]:
        """(RSS, PSS, USS) in MiB."""
        return self.rss / MIB, self.pss / MIB, self.uss / MIB


def of_tree(pid: int, *, exclude: Iterable[int] = ()) -> Memory:
    """The memory of ``pid`` and every process under it, but those in ``exclude`` (the bench's own
    PostgreSQL backend, say). Processes that end while being read (a git child, a backend) are skipped."""
    root = psutil.Process(pid)
    skip = set(exclude)
    total = Memory()
    for proc in [root, *root.children(recursive=True)]:
        if proc.pid in skip:
            continue
        try:
            info = proc.memory_full_info()
        except psutil.NoSuchProcess:  # includes zombies
            continue
        total += Memory(info.rss, getattr(info, "pss", 0), getattr(info, "uss", 0), 1)
    return total
