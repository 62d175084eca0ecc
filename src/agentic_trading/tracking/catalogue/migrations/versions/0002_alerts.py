"""Alerts: one row per alert event, claimed by the process that sends it.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("alert", sa.JSON, nullable=False),
        sa.Column("claimed_at", sa.Float, nullable=False),
        sa.Column("claimed_by", sa.String(255), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("sent_at", sa.Float),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("ix_alerts_unsent", "alerts", ["sent_at", "claimed_at"])


def downgrade() -> None:
    op.drop_table("alerts")
