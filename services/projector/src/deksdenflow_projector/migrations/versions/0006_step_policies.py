"""Steps show their policies and what the policies did.

``step_runs.policies``: the step's loop, trigger and checkpoint policies as the plan gave them (null: none).
``step_runs.runtime_state``: loops taken, how deep in a chain of triggers the step is and which step queued
it, and the agent's last directive. Rows written before this migration get them from their next event (or
from ``make rebuild``, which replays the log).

``step_runs.run_order``: where the step stands in its run, as text that sorts in order (a step a trigger
queued comes right after the step that queued it, whatever its index); existing rows: their index.

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("step_runs", sa.Column("policies", JSONB, nullable=True))
    op.add_column(
        "step_runs", sa.Column("runtime_state", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    op.add_column("step_runs", sa.Column("run_order", sa.Text, nullable=True))
    op.execute("UPDATE step_runs SET run_order = lpad(step_index::text, 4, '0')")
    op.alter_column("step_runs", "run_order", nullable=False)
    op.create_index("step_runs_in_order", "step_runs", ["protocol_run_id", "run_order"])


def downgrade() -> None:
    op.drop_index("step_runs_in_order", "step_runs")
    op.drop_column("step_runs", "run_order")
    op.drop_column("step_runs", "runtime_state")
    op.drop_column("step_runs", "policies")
