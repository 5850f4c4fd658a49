"""The first read model: projects, tokens, protocol runs, step runs, the event log, usage, CI, checkpoint.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.TIMESTAMP(timezone=True)


def _audit() -> list[sa.Column[object]]:
    return [
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("git_url", sa.Text, nullable=False),
        sa.Column("base_branch", sa.Text, nullable=False),
        sa.Column("ci_provider", sa.Text, nullable=True),
        sa.Column("default_models", JSONB, nullable=False),
        sa.Column("local_path", sa.Text, nullable=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("onboarding_attempt", sa.Integer, nullable=False),
        sa.Column("questions", JSONB, nullable=False),
        sa.Column("answers", JSONB, nullable=False),
        sa.Column("state", JSONB, nullable=False, comment="folded domain state, input of the next evolve"),
        *_audit(),
    )
    op.create_index("projects_by_created", "projects", ["created_at", "id"])

    op.create_table(
        "project_tokens",
        sa.Column("token_id", sa.Text, primary_key=True),
        sa.Column("project_id", sa.Text, nullable=False),
        # Not unique: the read model never refuses what the log holds; the API makes tokens unique.
        sa.Column("token_hash", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_index("project_tokens_by_project", "project_tokens", ["project_id"])
    op.create_index("project_tokens_by_hash", "project_tokens", ["token_hash"])

    op.create_table(
        "protocol_runs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("protocol_name", sa.Text, nullable=False),
        sa.Column("slug", sa.Text, nullable=False),
        sa.Column("task_name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("base_branch", sa.Text, nullable=False),
        sa.Column("protocol_root", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("paused_from", sa.Text, nullable=True),
        sa.Column("blocked_reason", sa.Text, nullable=True),
        sa.Column("planning_attempt", sa.Integer, nullable=False),
        sa.Column("planning_owner", sa.Text, nullable=True),
        sa.Column("spec_hash", sa.Text, nullable=True),
        sa.Column("pr_number", sa.BigInteger, nullable=True),
        sa.Column("pr_url", sa.Text, nullable=True),
        sa.Column("pr_merged", sa.Boolean, nullable=False),
        sa.Column("branch_head_sha", sa.Text, nullable=True),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_micro_usd", sa.BigInteger, nullable=False),
        sa.Column("state", JSONB, nullable=False, comment="folded domain state, input of the next evolve"),
        *_audit(),
        sa.UniqueConstraint("project_id", "number", name="protocol_runs_number_per_project"),
    )
    op.create_index("protocol_runs_by_name", "protocol_runs", ["protocol_name"])

    op.create_table(
        "step_runs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("protocol_run_id", sa.Text, nullable=False),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("step_index", sa.Integer, nullable=False),
        sa.Column("step_name", sa.Text, nullable=False),
        sa.Column("step_type", sa.Text, nullable=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("executing", sa.Boolean, nullable=False),
        sa.Column("owner", sa.Text, nullable=True),
        sa.Column("engine_id", sa.Text, nullable=True),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("qa_policy", sa.Text, nullable=True),
        sa.Column("qa_attempt", sa.Integer, nullable=False),
        sa.Column("qa_pending", sa.Boolean, nullable=False),
        sa.Column("last_verdict", sa.Text, nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("commit_sha", sa.Text, nullable=True),
        sa.Column("changed_files", JSONB, nullable=False),
        sa.Column("failure_reason", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("protocol_run_id", "step_index", name="step_runs_index_per_run"),
    )

    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger, primary_key=True, comment="JetStream stream sequence"),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("aggregate_type", sa.Text, nullable=False),
        sa.Column("aggregate_id", sa.Text, nullable=False),
        sa.Column("protocol_run_id", sa.Text, nullable=True),
        sa.Column("step_run_id", sa.Text, nullable=True),
        sa.Column("aggregate_version", sa.Integer, nullable=False),
        sa.Column("time", TS, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("correlation_id", sa.Text, nullable=False),
        sa.Column("causation_id", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
    )
    op.create_index("events_by_project", "events", ["project_id", "seq"])
    op.create_index(
        "events_by_run",
        "events",
        ["protocol_run_id", "seq"],
        postgresql_where=sa.text("protocol_run_id IS NOT NULL"),
    )
    op.create_index(
        "events_by_step",
        "events",
        ["step_run_id", "seq"],
        postgresql_where=sa.text("step_run_id IS NOT NULL"),
    )
    op.create_index("events_by_type", "events", ["type", "seq"])
    op.create_index("events_by_time", "events", ["time"])

    op.create_table(
        "usage_records",
        sa.Column("call_id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("protocol_run_id", sa.Text, nullable=False),
        sa.Column("step_run_id", sa.Text, nullable=True),
        sa.Column("phase", sa.Text, nullable=True),
        sa.Column("engine_id", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("reasoning_output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_micro_usd", sa.BigInteger, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
    )
    op.create_index("usage_by_project", "usage_records", ["project_id"])
    op.create_index("usage_by_run", "usage_records", ["protocol_run_id"])
    op.create_index(
        "usage_by_step", "usage_records", ["step_run_id"], postgresql_where=sa.text("step_run_id IS NOT NULL")
    )

    op.create_table(
        "ci_reports",
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("protocol_run_id", sa.Text, nullable=False),
        sa.Column("step_run_id", sa.Text, nullable=True),
        sa.Column("provider", sa.Text, nullable=True),
        sa.Column("status", sa.Text, nullable=True),
        sa.Column("raw_status", sa.Text, nullable=False),
        sa.Column("head_sha", sa.Text, nullable=False),
        sa.Column("run_url", sa.Text, nullable=False),
        sa.Column("delivery_id", sa.Text, nullable=False),
        sa.Column("reported_at", TS, nullable=False),
    )
    op.create_index("ci_reports_by_run", "ci_reports", ["protocol_run_id", "seq"])

    op.create_table(
        "checkpoints",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "checkpoints",
        "ci_reports",
        "usage_records",
        "events",
        "step_runs",
        "protocol_runs",
        "project_tokens",
        "projects",
    ):
        op.drop_table(table)
