"""The subject scheme: ``<prefix>.<space>.<project_id>.<aggregate_type>.<aggregate_id>.<event>``.

``<event>`` is the part of the event type after the aggregate type (``protocol_run.created`` →
``created``), so NATS wildcards select by project, aggregate, or event type, and NATS permissions can
scope a subscriber to one project. Two spaces use it:

* ``evt`` — the log: one message per *decision* (the events one command produced, stored all or none),
  on the subject of the decision's first event. Event-sourced readers (``decide``'s loads, the projector,
  a rebuild) read it; optimistic concurrency is checked on it.
* ``feed`` — the feed: the same events, one message per event, in log order, written from the log by the
  projector process. Subscribers that select events by type (the workers, analytics) read it: every
  event is there exactly once, on its own subject, with its own envelope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deksdenflow_core.errors import ContractError

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def check_token(kind: str, value: str) -> str:
    """A subject token must be non-empty and free of ``.``, ``*``, ``>`` and whitespace."""
    if not _TOKEN.match(value):
        raise ContractError(f"{kind} {value!r} cannot be used in a subject (letters, digits, _ and - only)")
    return value


def split_type(event_type: str) -> tuple[str, str]:
    """``protocol_run.created`` → ``("protocol_run", "created")``."""
    aggregate_type, _, name = event_type.partition(".")
    if not name:
        raise ContractError(f"event type {event_type!r} is not <aggregate_type>.<name>")
    return aggregate_type, name


@dataclass(frozen=True)
class Subjects:
    """Subjects and filters under one prefix (``df`` in production; unique per test)."""

    prefix: str = "df"
    space: str = "evt"

    @property
    def feed(self) -> Subjects:
        """The same scheme on the feed (one message per event)."""
        return Subjects(self.prefix, "feed")

    @property
    def stream_subjects(self) -> list[str]:
        return [f"{self.prefix}.{self.space}.>"]

    def event(self, project_id: str, aggregate_type: str, aggregate_id: str, event_type: str) -> str:
        agg, name = split_type(event_type)
        if agg != aggregate_type:
            raise ContractError(f"event {event_type} does not belong to aggregate type {aggregate_type}")
        return ".".join(
            (
                self.prefix,
                self.space,
                check_token("project id", project_id),
                check_token("aggregate type", aggregate_type),
                check_token("aggregate id", aggregate_id),
                name,
            )
        )

    def aggregate(self, aggregate_type: str, aggregate_id: str) -> str:
        """Every event of one aggregate (any project)."""
        agg_type = check_token("aggregate type", aggregate_type)
        return f"{self.prefix}.{self.space}.*.{agg_type}.{check_token('aggregate id', aggregate_id)}.*"

    def project(self, project_id: str) -> str:
        """Every event of one project."""
        return f"{self.prefix}.{self.space}.{check_token('project id', project_id)}.>"

    def of_type(self, event_type: str, *, project_id: str = "*") -> str:
        """Every event of one type, optionally within one project. On the log (``evt``) that is every
        decision whose first event has the type — a consistency boundary; to read each event of a type,
        wherever it stands in its decision, use the ``feed``."""
        agg, name = split_type(event_type)
        if project_id != "*":
            check_token("project id", project_id)
        return f"{self.prefix}.{self.space}.{project_id}.{agg}.*.{name}"

    @property
    def all(self) -> str:
        return f"{self.prefix}.{self.space}.>"

    # --- request/reply services between processes (not part of the log) ---------------------------------

    @property
    def branches_service(self) -> str:
        """The git worker answers branch listings here (a queue group); the API asks."""
        return f"{self.prefix}.svc.git.branches"

    @property
    def diffs_service(self) -> str:
        """The git worker answers diff requests here (a queue group), from its mirrors; the API asks."""
        return f"{self.prefix}.svc.git.diffs"

    @property
    def api_presence(self) -> str:
        """Under this, each API process answers on ``<instance>``: whether a claim's owner is alive."""
        return f"{self.prefix}.svc.api.presence"
