"""Run logs: a unique run id, so a run delivered twice is stored once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a constraint to an existing table (it recreates it);
    # on PostgreSQL these are plain ALTER TABLE statements.
    with op.batch_alter_table("run_logs") as batch:
        batch.add_column(sa.Column("run_id", sa.String(length=32), nullable=True))
        batch.create_unique_constraint(op.f("uq_run_logs_run_id"), ["run_id"])


def downgrade() -> None:
    with op.batch_alter_table("run_logs") as batch:
        batch.drop_constraint(op.f("uq_run_logs_run_id"), type_="unique")
        batch.drop_column("run_id")
