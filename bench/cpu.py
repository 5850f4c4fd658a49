"""CPU seconds used by the processes of this machine, by name (Linux ``/proc``), between two snapshots.

On a small machine the projector, PostgreSQL and nats-server share the same cores: a rate alone does not
say which of them was the limit. Elsewhere than Linux the figures are simply empty.
"""

from __future__ import annotations

import os
from pathlib import Path

_SERVERS = ("postgres", "nats-server")


def snapshot() -> dict[tuple[int, str], float]:
    """CPU seconds (user + system) so far of every process we can read, by (pid, name)."""
    out: dict[tuple[int, str], float] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return out
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[(int(entry.name), name)] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def used(before: dict[tuple[int, str], float], after: dict[tuple[int, str], float]) -> str:
    """``"this process 4.6 s, postgres 2.2 s, nats-server 0.6 s"``: CPU used between two snapshots."""
    me = os.getpid()
    totals = {"this process": 0.0, "postgres": 0.0, "nats-server": 0.0}
    for key, seconds in after.items():
        delta = seconds - before.get(key, 0.0)
        pid, name = key
        if pid == me:
            totals["this process"] += delta
        elif name in _SERVERS:
            totals[name] += delta
    return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in totals.items())


def by_role(
    before: dict[tuple[int, str], float], after: dict[tuple[int, str], float], roles: dict[int, str]
) -> dict[str, float]:
    """CPU seconds between two snapshots by role: the processes ``roles`` names (pid -> role), this
    process ("client"), PostgreSQL and nats-server (every process of theirs), and the rest ("other")."""
    me = os.getpid()
    totals = dict.fromkeys((*roles.values(), "client", *_SERVERS, "other"), 0.0)
    for key, seconds in after.items():
        delta = seconds - before.get(key, 0.0)
        pid, name = key
        role = roles.get(pid) or ("client" if pid == me else name if name in _SERVERS else "other")
        totals[role] += delta
    return totals
