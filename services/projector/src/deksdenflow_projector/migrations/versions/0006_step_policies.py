"""Steps show their policies and what the policies did.

``step_runs.policies``: the step's loop, trigger and checkpoint policies as the plan gave them (null: none).
``step_runs.runtime_state``: loops taken, how deep in a chain of triggers the step is and which step queued
it, and the agent's last directive. Rows written before this migration get them from their next event (or
from ``make rebuild``, which replays the log).

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("step_runs", sa.Column("policies", JSONB, nullable=True))
    op.add_column(
        "step_runs", sa.Column("runtime_state", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    )


def downgrade() -> None:
    op.drop_column("step_runs", "runtime_state")
    op.drop_column("step_runs", "policies")
