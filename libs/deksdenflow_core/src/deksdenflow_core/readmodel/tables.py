"""The read tables, each column declared once: the projector writes rows from these, the API reads them.

Adding a column a user sees: an Alembic migration that adds it, and one ``Column`` line here (read from
the folded state, ``public=True``), plus its field in the API's response model. ``tests`` hold this
declaration against the migrated schema and against the API's response models.
"""

from __future__ import annotations

from typing import Any

from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import project as pev
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as rev
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.protocol_run import ProtocolRunState
from deksdenflow_core.domain.protocol_run.autopilot import waiting_for
from deksdenflow_core.envelope import RecordedEvent
from deksdenflow_core.readmodel.columns import Column, Sql, Table
from deksdenflow_core.readmodel.sources import (
    Fact,
    FoldedAggregate,
    StepOfRun,
    json_text,
    retry_json,
    run_order_key,
    runtime_state_json,
    short,
    step_policies_json,
)

TEXT, INT4, INT8 = Sql.TEXT, Sql.INT4, Sql.INT8
BOOL, JSONB, TIMESTAMPTZ = Sql.BOOL, Sql.JSONB, Sql.TIMESTAMPTZ


# --- projects ------------------------------------------------------------------------------------------

_P = Column[FoldedAggregate[ProjectState]]
PROJECTS = Table(
    "projects",
    key="id",
    columns=(
        _P("id", TEXT, lambda a: a.id, public=True),
        _P("name", TEXT, lambda a: a.state.name, public=True),
        _P("git_url", TEXT, lambda a: a.state.git_url, public=True),
        _P("base_branch", TEXT, lambda a: a.state.base_branch, public=True),
        _P("ci_provider", TEXT, lambda a: short(a.state.ci_provider), nullable=True, public=True),
        _P("default_models", JSONB, lambda a: a.state.default_models.model_dump_json().encode(), public=True),
        _P("local_path", TEXT, lambda a: a.state.local_path or None, nullable=True, public=True),
        _P("status", TEXT, lambda a: a.state.status.value, public=True),
        _P("status_reason", TEXT, lambda a: a.state.status_reason or None, nullable=True, public=True),
        _P("last_error", TEXT, lambda a: a.state.last_error or None, nullable=True, public=True),
        _P("retry", JSONB, lambda a: retry_json(a.state.retry), nullable=True, public=True),
        _P("onboarding_attempt", INT4, lambda a: a.state.onboarding_attempt),
        _P(
            "questions",
            JSONB,
            lambda a: json_text([q.model_dump(mode="json") for q in a.state.questions]),
            public=True,
        ),
        _P("answers", JSONB, lambda a: json_text(a.state.answers), public=True),
        # the folded domain state, input of the next evolve (JSON text: goes into jsonb as it is)
        _P("state", JSONB, lambda a: a.state.model_dump_json().encode()),
        _P("version", INT4, lambda a: a.state.version),
        _P("last_seq", INT8, lambda a: a.last_seq),
        _P("created_at", TIMESTAMPTZ, lambda a: a.created_at, fixed=True, public=True),
        _P("updated_at", TIMESTAMPTZ, lambda a: a.updated_at, public=True),
    ),
)

_T = Column[Fact[pev.ProjectTokenIssued]]
PROJECT_TOKENS = Table(
    "project_tokens",
    key="token_id",
    append_only=True,
    columns=(
        _T("token_id", TEXT, lambda f: f.event.token_id),
        _T("project_id", TEXT, lambda f: f.aggregate_id),
        # Not unique: the read model never refuses what the log holds; the API makes tokens unique.
        _T("token_hash", TEXT, lambda f: f.event.token_hash),
        _T("label", TEXT, lambda f: f.event.label),
        _T("created_at", TIMESTAMPTZ, lambda f: f.at),
        _T("revoked_at", TIMESTAMPTZ, None, nullable=True),  # set by the revocation
    ),
)

# --- protocol runs and their steps ---------------------------------------------------------------------

_R = Column[FoldedAggregate[ProtocolRunState]]
PROTOCOL_RUNS = Table(
    "protocol_runs",
    key="id",
    columns=(
        _R("id", TEXT, lambda a: a.id, public=True),
        _R("project_id", TEXT, lambda a: a.state.project_id, fixed=True, public=True),
        _R("number", INT4, lambda a: a.state.number, fixed=True, public=True),
        _R("protocol_name", TEXT, lambda a: a.state.protocol_name, fixed=True, public=True),
        _R("slug", TEXT, lambda a: a.state.slug, fixed=True, public=True),
        _R("task_name", TEXT, lambda a: a.state.task_name, fixed=True, public=True),
        _R("description", TEXT, lambda a: a.state.description, fixed=True, public=True),
        _R("base_branch", TEXT, lambda a: a.state.base_branch, fixed=True, public=True),
        _R("protocol_root", TEXT, lambda a: a.state.protocol_root, fixed=True, public=True),
        _R("status", TEXT, lambda a: a.state.status.value, public=True),
        _R(
            "paused_from",
            TEXT,
            lambda a: a.state.paused_from.value if a.state.paused_from else None,
            nullable=True,
            public=True,
        ),
        _R("blocked_reason", TEXT, lambda a: a.state.blocked_reason or None, nullable=True, public=True),
        _R("last_error", TEXT, lambda a: a.state.last_error or None, nullable=True, public=True),
        _R("retry", JSONB, lambda a: retry_json(a.state.retry), nullable=True, public=True),
        _R("planning_attempt", INT4, lambda a: a.state.planning_attempt),
        _R("planning_owner", TEXT, lambda a: a.state.planning_owner or None, nullable=True),
        _R("spec_hash", TEXT, lambda a: a.state.spec_hash or None, nullable=True, public=True),
        _R(
            "spec_findings",
            JSONB,
            lambda a: json_text(list(a.state.spec_findings)) if a.state.spec_findings else None,
            nullable=True,
            public=True,
        ),
        _R(
            "spec_rules_version",
            INT4,
            lambda a: a.state.spec_rules_version or None,
            nullable=True,
            public=True,
        ),
        _R("pr_number", INT8, lambda a: a.state.pr_number or None, nullable=True, public=True),
        _R("pr_url", TEXT, lambda a: a.state.pr_url or None, nullable=True, public=True),
        _R("pr_merged", BOOL, lambda a: a.state.pr_merged, public=True),
        _R("branch_head_sha", TEXT, lambda a: a.state.branch_head_sha or None, nullable=True, public=True),
        _R("input_tokens", INT8, lambda a: a.state.input_tokens, public=True),
        _R("output_tokens", INT8, lambda a: a.state.output_tokens, public=True),
        _R("cost_micro_usd", INT8, lambda a: a.state.cost_micro_usd, public=True),
        _R("run_policy", JSONB, lambda a: a.state.run_policy.model_dump_json().encode(), public=True),
        _R("waiting_for", TEXT, lambda a: waiting_for(a.state), nullable=True, public=True),
        # the folded domain state, input of the next evolve (JSON text: goes into jsonb as it is)
        _R("state", JSONB, lambda a: a.state.model_dump_json().encode()),
        _R("version", INT4, lambda a: a.state.version),
        _R("last_seq", INT8, lambda a: a.last_seq),
        _R("created_at", TIMESTAMPTZ, lambda a: a.created_at, fixed=True, public=True),
        _R("updated_at", TIMESTAMPTZ, lambda a: a.updated_at, public=True),
    ),
)

_S = Column[StepOfRun]
STEP_RUNS = Table(
    "step_runs",
    key="id",
    columns=(
        _S("id", TEXT, lambda s: s.step.step_run_id, public=True),
        _S("protocol_run_id", TEXT, lambda s: s.protocol_run_id, fixed=True, public=True),
        _S("project_id", TEXT, lambda s: s.project_id, fixed=True, public=True),
        _S("step_index", INT4, lambda s: s.step.index, fixed=True, public=True),
        _S("step_name", TEXT, lambda s: s.step.name, fixed=True, public=True),
        _S("step_type", TEXT, lambda s: short(s.step.step_type), nullable=True, fixed=True, public=True),
        _S("status", TEXT, lambda s: s.step.status.value, public=True),
        _S("retries", INT4, lambda s: s.step.retries, public=True),
        _S("executing", BOOL, lambda s: s.step.executing, public=True),
        _S("owner", TEXT, lambda s: s.step.owner or None, nullable=True, public=True),
        _S("engine_id", TEXT, lambda s: s.step.engine_id or None, nullable=True, fixed=True, public=True),
        _S("model", TEXT, lambda s: s.step.model or None, nullable=True, fixed=True, public=True),
        _S("qa_policy", TEXT, lambda s: short(s.step.qa_policy), nullable=True, fixed=True, public=True),
        _S("qa_attempt", INT4, lambda s: s.step.qa_attempt, public=True),
        _S("qa_pending", BOOL, lambda s: s.step.qa_pending, public=True),
        _S("last_verdict", TEXT, lambda s: short(s.step.last_verdict), nullable=True, public=True),
        _S("summary", TEXT, lambda s: s.step.summary or None, nullable=True, public=True),
        _S("commit_sha", TEXT, lambda s: s.step.commit_sha or None, nullable=True, public=True),
        _S("changed_files", JSONB, lambda s: json_text(s.step.changed_files), public=True),
        _S("failure_reason", TEXT, lambda s: s.step.failure_reason or None, nullable=True, public=True),
        _S("policies", JSONB, lambda s: step_policies_json(s.step), nullable=True, fixed=True, public=True),
        _S("runtime_state", JSONB, lambda s: runtime_state_json(s.step), public=True),
        _S("run_order", TEXT, lambda s: run_order_key(s.step), fixed=True),
        _S("created_at", TIMESTAMPTZ, lambda s: s.created_at, fixed=True, public=True),
        _S("updated_at", TIMESTAMPTZ, lambda s: s.updated_at, public=True),
    ),
)

# --- the event log and what single events add ----------------------------------------------------------

# event class -> whether it names a step (``getattr`` with a default is slow on a pydantic model)
_NAMES_STEP: dict[type, bool] = {}


def _step_of(recorded: RecordedEvent) -> str | None:
    event = recorded.event
    names_step = _NAMES_STEP.get(type(event))
    if names_step is None:
        names_step = _NAMES_STEP[type(event)] = "step_run_id" in type(event).model_fields
    return (event.step_run_id or None) if names_step else None  # type: ignore[attr-defined]


def _run_of(recorded: RecordedEvent) -> str | None:
    env = recorded.envelope
    return env.aggregate_id if env.aggregate_type == "protocol_run" else None


_E = Column[RecordedEvent]
EVENTS = Table(
    "events",
    key="position",
    append_only=True,
    columns=(
        # The event's place in the log: its decision's stream sequence * 1024 + its index in the decision.
        _E("position", INT8, lambda r: r.position, public=True),
        _E("seq", INT8, lambda r: r.stream_seq, public=True),  # the stream sequence of its decision
        _E("id", TEXT, lambda r: r.envelope.id, public=True),
        _E("type", TEXT, lambda r: r.envelope.type, public=True),
        _E("project_id", TEXT, lambda r: r.envelope.project_id, public=True),
        _E("aggregate_type", TEXT, lambda r: r.envelope.aggregate_type, public=True),
        _E("aggregate_id", TEXT, lambda r: r.envelope.aggregate_id, public=True),
        _E("protocol_run_id", TEXT, _run_of, nullable=True, public=True),
        _E("step_run_id", TEXT, _step_of, nullable=True, public=True),
        _E("aggregate_version", INT4, lambda r: r.envelope.aggregate_version, public=True),
        _E("time", TIMESTAMPTZ, lambda r: r.envelope.time, public=True),
        _E("source", TEXT, lambda r: r.envelope.source, public=True),
        _E("actor", TEXT, lambda r: r.envelope.actor, public=True),
        _E("correlation_id", TEXT, lambda r: r.envelope.correlation_id, public=True),
        _E("causation_id", TEXT, lambda r: r.envelope.causation_id, public=True),
        _E("payload", JSONB, lambda r: r.payload_json, public=True),  # the event's body as stored
    ),
)

_U = Column[Fact[rev.UsageRecorded]]
USAGE_RECORDS = Table(
    "usage_records",
    key="call_id",
    append_only=True,
    columns=(
        _U("call_id", TEXT, lambda f: f.event.call_id),
        _U("seq", INT8, lambda f: f.seq),
        _U("project_id", TEXT, lambda f: f.project_id),
        _U("protocol_run_id", TEXT, lambda f: f.aggregate_id),
        _U("step_run_id", TEXT, lambda f: f.event.step_run_id or None, nullable=True),
        _U("phase", TEXT, lambda f: short(f.event.phase), nullable=True),
        _U("engine_id", TEXT, lambda f: f.event.engine_id),
        _U("model", TEXT, lambda f: f.event.model),
        _U("input_tokens", INT8, lambda f: f.event.usage.input_tokens if f.event.usage else 0),
        _U("cached_input_tokens", INT8, lambda f: f.event.usage.cached_input_tokens if f.event.usage else 0),
        _U("output_tokens", INT8, lambda f: f.event.usage.output_tokens if f.event.usage else 0),
        _U(
            "reasoning_output_tokens",
            INT8,
            lambda f: f.event.usage.reasoning_output_tokens if f.event.usage else 0,
        ),
        _U("cost_micro_usd", INT8, lambda f: f.event.cost_micro_usd),
        _U("prompt_name", TEXT, lambda f: f.event.prompt_name or None, nullable=True),
        _U("prompt_version", TEXT, lambda f: f.event.prompt_version or None, nullable=True),
        _U("recorded_at", TIMESTAMPTZ, lambda f: f.at),
    ),
)

_C = Column[Fact[rev.CiReported]]
CI_REPORTS = Table(
    "ci_reports",
    key="position",
    append_only=True,
    columns=(
        _C("position", INT8, lambda f: f.position),  # the event's place in the log (RecordedEvent.position)
        _C("seq", INT8, lambda f: f.seq),
        _C("project_id", TEXT, lambda f: f.project_id),
        _C("protocol_run_id", TEXT, lambda f: f.aggregate_id),
        _C("step_run_id", TEXT, lambda f: f.event.step_run_id or None, nullable=True),
        _C("provider", TEXT, lambda f: short(f.event.provider), nullable=True),
        _C("status", TEXT, lambda f: short(f.event.status), nullable=True),
        _C("raw_status", TEXT, lambda f: f.event.raw_status),
        _C("head_sha", TEXT, lambda f: f.event.head_sha),
        _C("run_url", TEXT, lambda f: f.event.run_url),
        _C("delivery_id", TEXT, lambda f: f.event.delivery_id),
        _C("reported_at", TIMESTAMPTZ, lambda f: f.at),
    ),
)

# --- where the projector stands ------------------------------------------------------------------------

_K = Column[object]
CHECKPOINTS = Table(
    "checkpoints",
    key="name",
    columns=(  # written by the projector's own statement, with each batch
        _K("name", TEXT, None),
        _K("last_seq", INT8, None),
        _K("updated_at", TIMESTAMPTZ, None),
    ),
)

# Evaluations (make eval): written by the projector's own statements from the evaluation events.
EVALUATIONS = Table[object](
    "evaluations",
    key="id",
    columns=(
        _K("id", TEXT, None),
        _K("mode", TEXT, None),
        _K("baseline", TEXT, None),
        _K("status", TEXT, None),
        _K("scorer", TEXT, None),
        _K("task_ids", JSONB, None),
        _K("variants", JSONB, None),
        _K("thresholds", JSONB, None),
        _K("passed", BOOL, None, nullable=True),
        _K("summaries", JSONB, None),
        _K("problems", JSONB, None),
        _K("rescores", INT4, None),
        _K("project_ids", JSONB, None),
        _K("started_at", TIMESTAMPTZ, None),
        _K("completed_at", TIMESTAMPTZ, None, nullable=True),
        _K("updated_at", TIMESTAMPTZ, None),
    ),
)
EVALUATION_SCORES = Table[object](
    "evaluation_scores",
    key="id",
    columns=(
        _K("id", TEXT, None),
        _K("evaluation_id", TEXT, None),
        _K("rescore", INT4, None),
        _K("task_id", TEXT, None),
        _K("variant_id", TEXT, None),
        _K("project_id", TEXT, None),
        _K("score", JSONB, None),
        _K("recorded_at", TIMESTAMPTZ, None),
    ),
)

TABLES: tuple[Table[Any], ...] = (
    PROJECTS,
    PROJECT_TOKENS,
    PROTOCOL_RUNS,
    STEP_RUNS,
    EVENTS,
    USAGE_RECORDS,
    CI_REPORTS,
    CHECKPOINTS,
    EVALUATIONS,
    EVALUATION_SCORES,
)
"""Every table of the read model."""
