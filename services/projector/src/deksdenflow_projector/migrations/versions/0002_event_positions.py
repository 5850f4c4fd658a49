"""Events have a position: one message of the log is a decision, whose events share its sequence.

An event's position is its decision's stream sequence * 1024 + its index in the decision, unique and
increasing; it replaces the sequence as the key of ``events`` and ``ci_reports`` and as the order of the
event indexes. Rows written before are events of single-event messages: position = seq * 1024.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_EVENT_INDEXES = (
    ("events_by_project", ["project_id"], None),
    ("events_by_run", ["protocol_run_id"], "protocol_run_id IS NOT NULL"),
    ("events_by_step", ["step_run_id"], "step_run_id IS NOT NULL"),
    ("events_by_type", ["type"], None),
)


def _keyed_by_position(table: str) -> None:
    op.add_column(table, sa.Column("position", sa.BigInteger, nullable=True))
    op.execute(f"UPDATE {table} SET position = seq * 1024")
    op.alter_column(table, "position", nullable=False)
    op.drop_constraint(f"{table}_pkey", table, type_="primary")
    op.create_primary_key(f"{table}_pkey", table, ["position"])


def upgrade() -> None:
    _keyed_by_position("events")
    op.alter_column("events", "seq", comment="stream sequence of the event's decision")
    for name, columns, where in _EVENT_INDEXES:
        op.drop_index(name, "events")
        op.create_index(
            name, "events", [*columns, "position"], postgresql_where=sa.text(where) if where else None
        )
    _keyed_by_position("ci_reports")
    op.drop_index("ci_reports_by_run", "ci_reports")
    op.create_index("ci_reports_by_run", "ci_reports", ["protocol_run_id", "position"])


def downgrade() -> None:
    op.drop_index("ci_reports_by_run", "ci_reports")
    op.create_index("ci_reports_by_run", "ci_reports", ["protocol_run_id", "seq"])
    for name, columns, where in _EVENT_INDEXES:
        op.drop_index(name, "events")
        op.create_index(name, "events", [*columns, "seq"], postgresql_where=sa.text(where) if where else None)
    for table in ("ci_reports", "events"):
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
        op.create_primary_key(f"{table}_pkey", table, ["seq"])
        op.drop_column(table, "position")
