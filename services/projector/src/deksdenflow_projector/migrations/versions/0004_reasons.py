"""Projects and protocol runs say why they are not moving.

``projects.status_reason``: why the project is in its status when that needs a person (the onboarding's
failure, the blocking questions left to answer). ``last_error`` (projects and runs): the latest error a
job met. ``retry``: the job that failed and will be tried again — what failed, why, which try, and when
the next comes — or null. Rows written before this migration get them from their next event (or from
``make rebuild``, which replays the log).

``usage_records.prompt_name``/``prompt_version``: the prompt behind each agent call (null before).

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("status_reason", sa.Text, nullable=True))
    for table in ("projects", "protocol_runs"):
        op.add_column(table, sa.Column("last_error", sa.Text, nullable=True))
        op.add_column(table, sa.Column("retry", JSONB, nullable=True))
    op.add_column("usage_records", sa.Column("prompt_name", sa.Text, nullable=True))
    op.add_column("usage_records", sa.Column("prompt_version", sa.Text, nullable=True))
    op.create_index("usage_by_prompt", "usage_records", ["prompt_name", "prompt_version"])


def downgrade() -> None:
    op.drop_index("usage_by_prompt", "usage_records")
    op.drop_column("usage_records", "prompt_version")
    op.drop_column("usage_records", "prompt_name")
    for table in ("protocol_runs", "projects"):
        op.drop_column(table, "retry")
        op.drop_column(table, "last_error")
    op.drop_column("projects", "status_reason")
