"""Protocol runs show their run policy and what they wait for.

``run_policy``: the policy the run recorded at creation; rows written before policies are manual runs
and get the manual policy (what the domain folds for them, so a rebuild writes the same).
``waiting_for``: what an autopilot run waits on that is not a worker (a person's plan approval or
review, CI on its head commit, the merge), or null.

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


# deksdenflow_core.domain.run_policy.MANUAL as the projector writes it (a migration does not import the
# domain: what it wrote must not change when the domain does).
_MANUAL = (
    '{"mode":"RUN_MODE_MANUAL","plan_approval":"PLAN_APPROVAL_AUTO","qa_after_execution":false,'
    '"pr":{"open":"PR_OPENING_NEVER","ready_when_done":false,"reviewers":[]},'
    '"merge":{"mode":"MERGE_MODE_NEVER","method":"MERGE_METHOD_MERGE","required_checks":[],'
    '"required_approvals":0},"review_fix_attempts":0}'
)


def _quoted(json_text: str) -> str:
    return "'" + json_text.replace("'", "''").replace(":", "\\:") + "'"


def upgrade() -> None:
    op.add_column(
        "protocol_runs",
        # (colons escaped: text() would read ":false" as a bound parameter)
        sa.Column("run_policy", JSONB, nullable=False, server_default=sa.text(_quoted(_MANUAL) + "::jsonb")),
    )
    op.alter_column("protocol_runs", "run_policy", server_default=None)
    op.add_column("protocol_runs", sa.Column("waiting_for", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("protocol_runs", "waiting_for")
    op.drop_column("protocol_runs", "run_policy")
