"""Protocol runs show what the latest spec audit found wrong with their plan.

``spec_findings``: the problems the run's latest recorded spec audit found in its stored plan (a JSON
array of messages), or null when it found none; ``spec_rules_version``: the version of the spec rules
that audit applied, or null before any audit was recorded for the run. Rows written before this
migration get them from their next event (or from ``make rebuild``, which replays the log).

Revision ID: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("protocol_runs", sa.Column("spec_findings", JSONB, nullable=True))
    op.add_column("protocol_runs", sa.Column("spec_rules_version", sa.Integer, nullable=True))


def downgrade() -> None:
    op.drop_column("protocol_runs", "spec_rules_version")
    op.drop_column("protocol_runs", "spec_findings")
