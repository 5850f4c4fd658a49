"""Fold a batch of events into the aggregates it touches, with the domain's own ``evolve``.

What comes out is what the read model needs: each touched aggregate's latest state, which steps the
batch changed (only those rows are written), and the events that add a row of their own (usage, CI
reports, tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import project as pev
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as rev
from deksdenflow_core.domain import project as project_domain
from deksdenflow_core.domain.project import ProjectState, evolve_project
from deksdenflow_core.domain.protocol_run import ProtocolRunState, evolve_protocol_run
from deksdenflow_core.domain.protocol_run import state as run_domain
from deksdenflow_core.domain.protocol_run.state import StepState
from deksdenflow_core.envelope import RecordedEvent
from deksdenflow_core.readmodel.sources import Fact

# An aggregate as folded so far: state, created_at, updated_at, sequence of its last event.
Folded = tuple[Any, datetime, datetime, int]


@dataclass
class Known:
    """Aggregates as they stand before a batch, by id (an aggregate missing here starts initial)."""

    projects: dict[str, Folded] = field(default_factory=dict)
    runs: dict[str, Folded] = field(default_factory=dict)


@dataclass
class Touched:
    """What a batch did: the aggregates it touched (latest state) and the rows it adds."""

    projects: dict[str, tuple[ProjectState, datetime, datetime, int]] = field(default_factory=dict)
    runs: dict[str, tuple[ProtocolRunState, datetime, datetime, int]] = field(default_factory=dict)
    # run id -> its steps before the batch (a re-plan that drops steps must delete their rows)
    steps_before: dict[str, tuple[StepState, ...]] = field(default_factory=dict)
    # step id -> (first, last) time the batch changed it; first is the created_at of a new step row
    steps_changed: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    tokens_issued: list[Fact[pev.ProjectTokenIssued]] = field(default_factory=list)
    tokens_revoked: list[tuple[str, datetime]] = field(default_factory=list)  # (token id, when)
    usage: list[Fact[rev.UsageRecorded]] = field(default_factory=list)
    ci: list[Fact[rev.CiReported]] = field(default_factory=list)


def fold(events: list[RecordedEvent], known: Known, touched: Touched) -> None:
    """Fold ``events`` into ``touched``, starting each aggregate from ``known`` (or its initial state)."""
    projects, runs, steps_changed = touched.projects, touched.runs, touched.steps_changed
    known_projects, known_runs = known.projects, known.runs
    for recorded in events:
        env, event, seq = recorded.envelope, recorded.event, recorded.stream_seq
        at = env.time
        aggregate_id = env.aggregate_id
        if env.aggregate_type == run_domain.AGGREGATE_TYPE:
            current = runs.get(aggregate_id) or known_runs.get(aggregate_id)
            if current is None:
                current = (ProtocolRunState.initial(aggregate_id), at, at, seq)
            run, created = current[0], current[1]
            if aggregate_id not in runs:
                touched.steps_before[aggregate_id] = run.steps
            after = evolve_protocol_run(run, event)  # type: ignore[arg-type]  # the type picks the union member
            runs[aggregate_id] = (after, created, at, seq)
            if after.steps is not run.steps:
                # evolve copies only the steps it changes: identity tells which ones did
                for st in _changed(run.steps, after.steps):
                    first = steps_changed.get(st.step_run_id, (at, at))[0]
                    steps_changed[st.step_run_id] = (first, at)
            if isinstance(event, rev.UsageRecorded):
                touched.usage.append(Fact(event, env.project_id, aggregate_id, seq, at, recorded.position))
            elif isinstance(event, rev.CiReported):
                touched.ci.append(Fact(event, env.project_id, aggregate_id, seq, at, recorded.position))
        elif env.aggregate_type == project_domain.AGGREGATE_TYPE:
            known_project = projects.get(aggregate_id) or known_projects.get(aggregate_id)
            if known_project is None:
                known_project = (ProjectState.initial(aggregate_id), at, at, seq)
            state, created = known_project[0], known_project[1]
            projects[aggregate_id] = (evolve_project(state, event), created, at, seq)  # type: ignore[arg-type]
            if isinstance(event, pev.ProjectTokenIssued):
                touched.tokens_issued.append(
                    Fact(event, env.project_id, aggregate_id, seq, at, recorded.position)
                )
            elif isinstance(event, pev.ProjectTokenRevoked):
                touched.tokens_revoked.append((event.token_id, at))


def _changed(before: tuple[StepState, ...], after: tuple[StepState, ...]) -> list[StepState]:
    """The steps in ``after`` that are not, by identity, the same step object in ``before``."""
    if len(before) == len(after):
        changed = []
        for b, a in zip(before, after, strict=True):
            if b is not a:
                if b.step_run_id != a.step_run_id:  # a new plan: compare by id
                    break
                changed.append(a)
        else:
            return changed
    by_id = {st.step_run_id: st for st in before}
    return [st for st in after if by_id.get(st.step_run_id) is not st]
