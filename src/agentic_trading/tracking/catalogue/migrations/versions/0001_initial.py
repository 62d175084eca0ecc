"""The first catalogue: runs, their final metrics and config values, the model registry.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("heartbeat_at", sa.Float),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("study", sa.String(128)),
        sa.Column("trial", sa.Integer),
        sa.Column("group_id", sa.String(64)),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("final_metrics", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("artifacts", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_runs_created", "runs", ["created_at"])
    op.create_index("ix_runs_experiment_created", "runs", ["experiment", "created_at"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_study", "runs", ["study"])
    op.create_index("ix_runs_group", "runs", ["group_id"])
    op.create_table(
        "run_metrics",
        sa.Column(
            "run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
    )  # fmt: skip
    op.create_index("ix_run_metrics_name_value", "run_metrics", ["name", "value"])
    op.create_table(
        "run_config",
        sa.Column(
            "run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("number", sa.Float),
        sa.Column("text", sa.String(255)),
    )  # fmt: skip
    op.create_index("ix_run_config_key_number", "run_config", ["key", "number"])
    op.create_index("ix_run_config_key_text", "run_config", ["key", "text"])
    op.create_table(
        "models",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("description", sa.Text),
    )
    op.create_table(
        "model_versions",
        sa.Column(
            "name", sa.String(128), sa.ForeignKey("models.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("verdict", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )  # fmt: skip
    op.create_table(
        "model_aliases",
        sa.Column(
            "name", sa.String(128), sa.ForeignKey("models.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )  # fmt: skip


def downgrade() -> None:
    for table in ("model_aliases", "model_versions", "models", "run_config", "run_metrics"):
        op.drop_table(table)
    op.drop_table("runs")
