"""Handovers to sales (one per lead and qualification cycle) and sales' dispositions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(200)


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _serial() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "handovers",
        sa.Column("id", _serial(), autoincrement=True, nullable=False),
        sa.Column("lead_id", ID, nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rep_id", ID, nullable=True),
        sa.Column("team", sa.String(200), nullable=True),
        sa.Column("queue", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("company_domain", sa.String(320), nullable=True),
        sa.Column("breakdown", _json(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("created_at", _at(), nullable=False),
        sa.Column("assigned_at", _at(), nullable=True),
        sa.Column("remind_at", _at(), nullable=True),
        sa.Column("due_at", _at(), nullable=True),
        sa.Column("contacted_at", _at(), nullable=True),
        sa.Column("reminded_at", _at(), nullable=True),
        sa.Column("escalated_at", _at(), nullable=True),
        sa.Column("closed_at", _at(), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name="fk_handovers_lead_id_leads"),
        sa.PrimaryKeyConstraint("id", name="pk_handovers"),
        sa.UniqueConstraint("lead_id", "cycle", name="uq_handovers_lead_id_cycle"),
    )
    op.create_index("ix_handovers_status_due_at", "handovers", ["status", "due_at"])
    op.create_index("ix_handovers_rep_id_status", "handovers", ["rep_id", "status"])
    op.create_index("ix_handovers_company_domain", "handovers", ["company_domain"])
    op.create_table(
        "dispositions",
        sa.Column("id", _serial(), autoincrement=True, nullable=False),
        sa.Column("lead_id", ID, nullable=False),
        sa.Column("handover_id", _serial(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", _at(), nullable=False),
        sa.Column("breakdown", _json(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["handover_id"], ["handovers.id"], name="fk_dispositions_handover_id_handovers"
        ),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name="fk_dispositions_lead_id_leads"),
        sa.PrimaryKeyConstraint("id", name="pk_dispositions"),
    )
    op.create_index("ix_dispositions_lead_id_at", "dispositions", ["lead_id", "at"])
    op.create_index("ix_dispositions_handover_id", "dispositions", ["handover_id"])


def downgrade() -> None:
    op.drop_table("dispositions")
    op.drop_table("handovers")
