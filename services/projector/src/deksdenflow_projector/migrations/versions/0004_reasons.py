"""Projects and protocol runs say why they are not moving.

``projects.status_reason``: why the project is in its status when that needs a person (the onboarding's
failure, the blocking questions left to answer). ``last_error`` (projects and runs): the latest error a
job met. ``retry``: the job that failed and will be tried again — what failed, why, which try, and when
the next comes — or null. Rows written before this migration get them from their next event (or from
``make rebuild``, which replays the log).

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


def downgrade() -> None:
    for table in ("protocol_runs", "projects"):
        op.drop_column(table, "retry")
        op.drop_column(table, "last_error")
    op.drop_column("projects", "status_reason")
