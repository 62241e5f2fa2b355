"""Erasure records without personal data: erasures and erased message hashes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("counts", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_erasures"),
    )
    op.create_table(
        "erased_messages",
        sa.Column("message_sha256", sa.String(64), nullable=False),
        sa.Column("erasure_id", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["erasure_id"], ["erasures.id"], name="fk_erased_messages_erasure_id_erasures"
        ),
        sa.PrimaryKeyConstraint("message_sha256", name="pk_erased_messages"),
    )
    op.create_index("ix_erased_messages_erasure_id", "erased_messages", ["erasure_id"])


def downgrade() -> None:
    op.drop_index("ix_erased_messages_erasure_id", table_name="erased_messages")
    op.drop_table("erased_messages")
    op.drop_table("erasures")
