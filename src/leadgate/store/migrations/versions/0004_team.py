"""The sales team: loaded team files (newest is active) and reps' day-to-day overrides.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "team_configs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("loaded_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_team_configs"),
    )
    op.create_table(
        "rep_overrides",
        sa.Column("rep_id", sa.String(200), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.CheckConstraint("capacity IS NULL OR capacity >= 1", name="ck_rep_overrides_capacity"),
        sa.PrimaryKeyConstraint("rep_id", name="pk_rep_overrides"),
    )


def downgrade() -> None:
    op.drop_table("rep_overrides")
    op.drop_table("team_configs")
