"""Protocol runs show their run policy and what they wait for.

``run_policy``: the policy the run recorded at creation (null on rows written before policies, which
are manual runs; a rebuild fills it). ``waiting_for``: what an autopilot run waits on that is not a
worker — a person's plan approval, CI on its head commit, the merge — or null.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("protocol_runs", sa.Column("run_policy", JSONB, nullable=True))
    op.add_column("protocol_runs", sa.Column("waiting_for", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("protocol_runs", "waiting_for")
    op.drop_column("protocol_runs", "run_policy")
