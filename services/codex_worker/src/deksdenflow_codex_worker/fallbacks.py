"""Fallback chains: which engine and model an agent call tries next when the one it used is limited or
down, and which ones this worker skips for a while after such an error.

A phase's chain is its own engine and model, then the project's fallbacks for the phase (else this
worker's ``DEKSDENFLOW_FALLBACKS_<PHASE>``): ``engine`` or ``engine:model`` entries. A call moves on only
on a classified error (``engines.failures.fallback_reason``); the entry it leaves cools down for
``DEKSDENFLOW_FALLBACK_COOLDOWN_SECONDS``, during which later calls start further down the chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

log = structlog.get_logger("deksdenflow.codex_worker")


@dataclass(frozen=True, slots=True)
class Choice:
    """An engine and a model ("" : the engine's default model)."""

    engine: str
    model: str

    @classmethod
    def parse(cls, entry: str) -> Choice:
        engine, _, model = entry.strip().partition(":")
        return cls(engine, model)

    def __str__(self) -> str:
        return f"{self.engine}:{self.model}" if self.model else self.engine


def chain(primary: Choice, entries: Iterable[str], known: Callable[[str], bool]) -> list[Choice]:
    """``primary`` then the entries' choices, each once, engines this worker has only (others logged)."""
    choices = [primary]
    for entry in entries:
        choice = Choice.parse(entry)
        if not known(choice.engine):
            log.warning("fallback skipped: unknown engine", entry=entry)
        elif choice not in choices:
            choices.append(choice)
    return choices


class Cooldowns:
    """Engines and models this worker skips until a time, after a limit or an outage."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._seconds = seconds
        self._clock = clock
        self._until: dict[Choice, float] = {}

    def cooling(self, choice: Choice) -> bool:
        until = self._until.get(choice)
        if until is None:
            return False
        if until <= self._clock():
            del self._until[choice]
            return False
        return True

    def start(self, choice: Choice) -> float:
        """Skip ``choice`` from now on for the cooldown; returns until when (Unix seconds)."""
        until = self._until[choice] = self._clock() + self._seconds
        return until

    def usable(self, choices: list[Choice]) -> list[Choice]:
        """The choices not cooling down, in order; all of them when every one is (a call must be made)."""
        return [c for c in choices if not self.cooling(c)] or choices
