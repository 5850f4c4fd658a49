"""What a decision may know about the world: the time and a source of ids, both passed in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from deksdenflow_core.errors import DeksdenflowError

_NAMESPACE = uuid.UUID("5b0f5e7e-3c1d-4d6c-9a39-6c0b1e9e2a41")


class InvariantViolation(DeksdenflowError):
    """``evolve`` met an event that cannot apply to the state: the log or the code is wrong."""

    code = "invariant_violation"


@dataclass
class DeterministicIds:
    """Ids derived from a seed (e.g. the id of the causing event or request).

    Re-running the same decision with the same seed yields the same ids, so a retried handler appends
    events that JetStream recognises as duplicates instead of new facts.
    """

    seed: str
    _counter: int = field(default=0, init=False)

    def __call__(self) -> str:
        self._counter += 1
        return str(uuid.uuid5(_NAMESPACE, f"{self.seed}:{self._counter}"))


@dataclass(frozen=True)
class DecisionContext:
    """The inputs of a decision besides state and command."""

    now: datetime
    new_id: DeterministicIds
