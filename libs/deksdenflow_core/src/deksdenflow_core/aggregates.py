"""Load → decide → append, with one re-decide on a lost race. Shared by the API and the workers.

An aggregate kind bundles its pure functions; the ``Repository`` folds an aggregate from the log,
runs ``decide`` with the time and deterministic ids, and appends with optimistic concurrency.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

from deksdenflow_core.contracts.base import ContractModel
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1.protocol_run import CreateProtocolRun
from deksdenflow_core.domain.context import DecisionContext, DeterministicIds
from deksdenflow_core.domain.evaluation import NO_PROJECT as EVALUATION_PROJECT
from deksdenflow_core.domain.evaluation import (
    EvaluationCommand,
    EvaluationEvent,
    EvaluationState,
    decide_evaluation,
    evolve_evaluation,
)
from deksdenflow_core.domain.naming import ProtocolCatalog, decide_create_protocol
from deksdenflow_core.domain.project import (
    ProjectCommand,
    ProjectEvent,
    ProjectState,
    decide_project,
    evolve_project,
)
from deksdenflow_core.domain.protocol_run import (
    ProtocolRunCommand,
    ProtocolRunEvent,
    ProtocolRunState,
    decide_protocol_run,
    evolve_protocol_run,
)
from deksdenflow_core.domain.webhook import (
    WebhookCommand,
    WebhookEvent,
    WebhookState,
    decide_webhook,
    evolve_webhook,
)
from deksdenflow_core.envelope import RecordedEvent
from deksdenflow_core.errors import ConcurrencyConflict, DomainError
from deksdenflow_core.eventstore import AppendMeta, AppendResult, JetStreamEventStore, Loaded, Position

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E")

# The first event of a protocol run: its decisions are a project's numbering boundary.
_CREATED = "protocol_run.created"


@dataclass(frozen=True)
class AggregateKind(Generic[S, C, E]):
    """The pure functions of one aggregate type."""

    aggregate_type: str
    initial: Callable[[str], S]
    evolve: Callable[[S, E], S]
    decide: Callable[[S, C, DecisionContext], list[E]]
    project_id_of: Callable[[S, str], str]

    def fold(self, aggregate_id: str, events: list[RecordedEvent]) -> S:
        state = self.initial(aggregate_id)
        for recorded in events:
            state = self.evolve(state, cast(E, recorded.event))
        return state


PROJECT: AggregateKind[ProjectState, ProjectCommand, ProjectEvent] = AggregateKind(
    aggregate_type="project",
    initial=ProjectState.initial,
    evolve=evolve_project,
    decide=decide_project,
    project_id_of=lambda _state, aggregate_id: aggregate_id,
)
PROTOCOL_RUN: AggregateKind[ProtocolRunState, ProtocolRunCommand, ProtocolRunEvent] = AggregateKind(
    aggregate_type="protocol_run",
    initial=ProtocolRunState.initial,
    evolve=evolve_protocol_run,
    decide=decide_protocol_run,
    project_id_of=lambda state, _aggregate_id: state.project_id,
)
WEBHOOK: AggregateKind[WebhookState, WebhookCommand, WebhookEvent] = AggregateKind(
    aggregate_type="webhook",
    initial=WebhookState.initial,
    evolve=evolve_webhook,
    decide=decide_webhook,
    project_id_of=lambda state, _aggregate_id: state.project_id,
)

EVALUATION: AggregateKind[EvaluationState, EvaluationCommand, EvaluationEvent] = AggregateKind(
    aggregate_type="evaluation",
    initial=EvaluationState.initial,
    evolve=evolve_evaluation,
    decide=decide_evaluation,
    project_id_of=lambda _state, _aggregate_id: EVALUATION_PROJECT,
)


@dataclass(frozen=True)
class Current(Generic[S]):
    """An aggregate's state and where it stands in the log."""

    state: S
    position: Position


@dataclass(frozen=True)
class Outcome(Generic[S]):
    """What a command did: the state after it and the events it appended (possibly none)."""

    state: S
    appended: AppendResult


class Repository:
    """Aggregates over the event store.

    Folded states are cached in memory with the stream position they were folded to. ``load`` reads only
    the aggregate's events after that position (usually none) and folds them on top; ``execute`` even
    decides on the cached state directly and lets the conditional append tell it when the cache was
    behind (see ``execute_many``). The log stays the authority: a stale cache costs a retry, never a
    wrong write.
    """

    def __init__(
        self,
        store: JetStreamEventStore,
        *,
        clock: Callable[[], datetime] | None = None,
        cache_size: int = 10_000,
    ) -> None:
        self.store = store
        self._clock = clock or (lambda: datetime.now(UTC))
        self._cache: OrderedDict[tuple[str, str], Current[Any]] = OrderedDict()
        self._cache_size = cache_size

    async def load(self, kind: AggregateKind[S, Any, Any], aggregate_id: str) -> Current[S]:
        key = (kind.aggregate_type, aggregate_id)
        cached: Current[S] | None = self._cache.get(key)
        if cached is None:
            loaded = await self.store.load(kind.aggregate_type, aggregate_id)
            current = Current(state=kind.fold(aggregate_id, loaded.events), position=loaded.position)
        else:
            newer = await self.store.read(
                self.store.subjects.aggregate(kind.aggregate_type, aggregate_id),
                from_seq=cached.position.last_seq + 1,
            )
            state = cached.state
            for recorded in newer.events:
                state = kind.evolve(state, cast(Any, recorded.event))
            position = newer.position if newer.events else cached.position
            current = Current(state=state, position=position)
        self._remember(key, current)
        return current

    def _remember(self, key: tuple[str, str], current: Current[Any]) -> None:
        if current.position.last_seq == 0:  # nothing to remember about an aggregate that does not exist
            return
        self._cache[key] = current
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def execute(
        self,
        kind: AggregateKind[S, C, E],
        aggregate_id: str,
        command: C,
        meta: AppendMeta,
        *,
        redecide: int = 1,
        authorize: Callable[[S], None] | None = None,
    ) -> Outcome[S]:
        """Decide ``command`` on the current state and append the result.

        On a lost race the command is decided again on the new state, up to ``redecide`` times; after
        that ``ConcurrencyConflict`` propagates (the API answers 409). ``authorize`` sees the loaded state
        before anything is decided and may raise.
        """
        return await self.execute_many(
            kind, aggregate_id, [command], meta, redecide=redecide, authorize=authorize
        )

    async def execute_many(
        self,
        kind: AggregateKind[S, C, E],
        aggregate_id: str,
        commands: Sequence[C],
        meta: AppendMeta,
        *,
        redecide: int = 1,
        authorize: Callable[[S], None] | None = None,
        new: bool = False,
    ) -> Outcome[S]:
        """Decide ``commands`` one after the other on the evolving state; append all events at once
        (one decision), or nothing if any command is refused.

        The first try decides on the cached state without asking the log (one round trip per command:
        the conditional append itself). If the cache was stale, the append is refused, or the decision
        fails or finds nothing to do; then the aggregate is loaded from the log and decided again — that
        costs nothing of the ``redecide`` budget, which counts only races lost on freshly loaded state.
        ``new``: the caller just made the id up (a creation), so the first try assumes the aggregate does
        not exist instead of reading the log to find nothing; if it does exist, the append conflicts.
        """
        key = (kind.aggregate_type, aggregate_id)
        lost = 0
        trust_cache = True
        while True:
            cached: Current[S] | None = self._cache.get(key) if trust_cache else None
            if cached is None and trust_cache and new:
                cached = Current(state=kind.fold(aggregate_id, []), position=Position())
            current = cached if cached is not None else await self.load(kind, aggregate_id)
            if authorize is not None:
                authorize(current.state)
            try:
                state, events = self._decide(kind, current.state, commands, meta, aggregate_id)
            except DomainError:
                if cached is None:
                    raise
                trust_cache = False  # maybe refused only because the cache was behind: ask the log
                continue
            if not events and cached is not None:
                # "Nothing to do" appends nothing, so no conditional append would catch a stale cache:
                # confirm it against the log.
                trust_cache = False
                continue
            try:
                appended = await self.store.append(
                    project_id=kind.project_id_of(state, aggregate_id),
                    aggregate_type=kind.aggregate_type,
                    aggregate_id=aggregate_id,
                    events=cast(list[ContractModel], events),
                    expected=current.position,
                    meta=meta,
                )
            except ConcurrencyConflict:
                self._cache.pop(key, None)
                trust_cache = False
                if cached is None:
                    lost += 1
                    if lost > redecide:
                        raise
                continue
            if appended.events and not appended.duplicate:
                last = appended.events[-1]
                position = Position(last_seq=last.stream_seq, version=last.envelope.aggregate_version)
                self._remember(key, Current(state=state, position=position))
            return Outcome(state=state, appended=appended)

    def _decide(
        self,
        kind: AggregateKind[S, C, E],
        state: S,
        commands: Sequence[C],
        meta: AppendMeta,
        aggregate_id: str,
    ) -> tuple[S, list[E]]:
        ctx = DecisionContext(now=self._clock(), new_id=DeterministicIds(_seed(meta, aggregate_id)))
        events: list[E] = []
        for command in commands:
            decided = kind.decide(state, command, ctx)
            for event in decided:
                state = kind.evolve(state, event)
            events.extend(decided)
        return state, events

    async def catalog(self, project_id: str) -> tuple[ProtocolCatalog, Loaded]:
        """The project's protocols, folded from their ``created`` events (each the first event of its
        decision, so the decisions they lead are the numbering's consistency boundary)."""
        loaded = await self.store.read(self.store.subjects.of_type(_CREATED, project_id=project_id))
        catalog = ProtocolCatalog()
        for recorded in loaded.events:
            if recorded.envelope.type == _CREATED:
                catalog = catalog.evolve(cast(Any, recorded.event))
        return catalog, loaded

    async def create_protocol_run(
        self, project_id: str, command: CreateProtocolRun, meta: AppendMeta, *, redecide: int = 1
    ) -> Outcome[ProtocolRunState]:
        """Open a protocol. Its number is unique per project: the append is conditional on no other
        protocol having been created in the project since the catalog was read."""
        for attempt in range(redecide + 1):
            project = await self.load(PROJECT, project_id)
            catalog, loaded = await self.catalog(project_id)
            ctx = DecisionContext(now=self._clock(), new_id=DeterministicIds(_seed(meta, project_id)))
            created = decide_create_protocol(project.state, catalog, command, ctx)
            try:
                appended = await self.store.append(
                    project_id=project_id,
                    aggregate_type=PROTOCOL_RUN.aggregate_type,
                    aggregate_id=created.protocol_run_id,
                    events=[created],
                    expected=Position(last_seq=loaded.position.last_seq, version=0),
                    meta=meta,
                    boundary=self.store.subjects.of_type(_CREATED, project_id=project_id),
                )
            except ConcurrencyConflict:
                if attempt == redecide:
                    raise
                continue
            state = evolve_protocol_run(ProtocolRunState.initial(created.protocol_run_id), created)
            return Outcome(state=state, appended=appended)
        raise AssertionError("unreachable")


def _seed(meta: AppendMeta, aggregate_id: str) -> str:
    """New ids derive from the cause, so the same cause re-decided yields the same ids."""
    cause = meta.causation_id or meta.correlation_id or str(uuid.uuid4())
    return f"{cause}/{aggregate_id}"
