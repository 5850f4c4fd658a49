"""Evaluations: one row per evaluation (its variants, thresholds, status and conclusion) and one row per
scored run (``rescore`` 0 for the first scores, n for the n-th re-score, so no score is overwritten).

``project_ids``: the projects of its runs, a JSON array (a project token sees the evaluations that ran on
its project).

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("baseline", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("scorer", sa.Text, nullable=False),
        sa.Column("task_ids", JSONB, nullable=False),
        sa.Column("variants", JSONB, nullable=False),
        sa.Column("thresholds", JSONB, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=True),
        sa.Column("summaries", JSONB, nullable=False),
        sa.Column("problems", JSONB, nullable=False),
        sa.Column("rescores", sa.Integer, nullable=False),
        sa.Column("project_ids", JSONB, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("evaluations_by_start", "evaluations", ["started_at"])
    op.create_table(
        "evaluation_scores",
        # <evaluation id>/<rescore>/<variant id>/<task id>
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("evaluation_id", sa.Text, nullable=False),
        sa.Column("rescore", sa.Integer, nullable=False),
        sa.Column("task_id", sa.Text, nullable=False),
        sa.Column("variant_id", sa.Text, nullable=False),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("score", JSONB, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("evaluation_scores_by_evaluation", "evaluation_scores", ["evaluation_id", "rescore"])


def downgrade() -> None:
    op.drop_index("evaluation_scores_by_evaluation", "evaluation_scores")
    op.drop_table("evaluation_scores")
    op.drop_index("evaluations_by_start", "evaluations")
    op.drop_table("evaluations")
