"""The catalogue's tables (SQLAlchemy Core): one row per run, its final metrics and scalar
config values for sorting and filtering, the model registry, and the alerts sent. Alembic migrations under
``migrations/`` create and change them; this module is their shape today."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "SCHEMA_VERSION",
    "alerts",
    "aliases",
    "metadata",
    "model_versions",
    "models",
    "run_config",
    "run_metrics",
    "runs",
]

#: The Alembic revision the code expects; an older catalogue is upgraded on open.
SCHEMA_VERSION = "0002"

metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),  # seconds since the epoch, UTC
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
    sa.Index("ix_runs_created", "created_at"),
    sa.Index("ix_runs_experiment_created", "experiment", "created_at"),
    sa.Index("ix_runs_status", "status"),
    sa.Index("ix_runs_study", "study"),
    sa.Index("ix_runs_group", "group_id"),
)

run_metrics = sa.Table(
    "run_metrics",
    metadata,
    sa.Column(
        "run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Index("ix_run_metrics_name_value", "name", "value"),
)

run_config = sa.Table(
    "run_config",
    metadata,
    sa.Column(
        "run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("number", sa.Float),
    sa.Column("text", sa.String(255)),
    sa.Index("ix_run_config_key_number", "key", "number"),
    sa.Index("ix_run_config_key_text", "key", "text"),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("description", sa.Text),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column(
        "name", sa.String(128), sa.ForeignKey("models.name", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("artifact_uri", sa.Text, nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("verdict", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column(
        "name", sa.String(128), sa.ForeignKey("models.name", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

#: One row per alert event (``run:<id>:crashed``, ``study:<name>:finished``): the process
#: that inserts it sends the alert, so two processes never send the same one. An unsent row
#: whose claim is older than the lease is taken over by a watcher.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("alert", sa.JSON, nullable=False),
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("claimed_by", sa.String(255), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("sent_at", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Index("ix_alerts_unsent", "sent_at", "claimed_at"),
)
