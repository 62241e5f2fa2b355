"""Initial tables: leads, identities, events, score ledger, stage history,
model versions and API keys.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
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
        "leads",
        sa.Column("id", ID, nullable=False),
        sa.Column("attributes", _json(), nullable=False),
        sa.Column("stage", sa.String(32), server_default="new", nullable=False),
        sa.Column("score", sa.Float(), server_default="0", nullable=False),
        sa.Column("created_at", _at(), nullable=False),
        sa.Column("updated_at", _at(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_leads"),
    )
    op.create_index("ix_leads_stage_score", "leads", ["stage", "score"])

    op.create_table(
        "identities",
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("lead_id", ID, nullable=False),
        sa.Column("created_at", _at(), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name="fk_identities_lead_id_leads"),
        sa.PrimaryKeyConstraint("kind", "value", name="pk_identities"),
    )
    op.create_index("ix_identities_lead_id", "identities", ["lead_id"])

    op.create_table(
        "events",
        sa.Column("seq", _serial(), autoincrement=True, nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("lead_id", ID, nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("at", _at(), nullable=False),
        sa.Column("received_at", _at(), nullable=False),
        sa.Column("properties", _json(), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name="fk_events_lead_id_leads"),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("message_id", name="uq_events_message_id"),
    )
    op.create_index("ix_events_lead_id_at", "events", ["lead_id", "at"])
    op.create_index("ix_events_at", "events", ["at"])

    op.create_table(
        "score_ledger",
        sa.Column("id", _serial(), autoincrement=True, nullable=False),
        sa.Column("lead_id", ID, nullable=False),
        sa.Column("rule_id", ID, nullable=False),
        sa.Column("event_id", ID, nullable=True),
        sa.Column("points", sa.Float(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("at", _at(), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name="fk_score_ledger_lead_id_leads"),
        sa.PrimaryKeyConstraint("id", name="pk_score_ledger"),
    )
    op.create_index("ix_score_ledger_lead_id_at", "score_ledger", ["lead_id", "at"])

    op.create_table(
        "stage_history",
        sa.Column("id", _serial(), autoincrement=True, nullable=False),
        sa.Column("lead_id", ID, nullable=False),
        sa.Column("from_stage", sa.String(32), nullable=True),
        sa.Column("to_stage", sa.String(32), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("rule_ids", _json(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", _at(), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name="fk_stage_history_lead_id_leads"),
        sa.PrimaryKeyConstraint("id", name="pk_stage_history"),
    )
    op.create_index("ix_stage_history_lead_id_at", "stage_history", ["lead_id", "at"])

    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _at(), nullable=False),
        sa.Column("published_by", sa.String(200), nullable=True),
        sa.Column("why", sa.Text(), nullable=True),
        sa.Column("published_at", _at(), nullable=True),
        sa.CheckConstraint("status IN ('draft', 'published')", name="ck_model_versions_status"),
        sa.PrimaryKeyConstraint("name", "version", name="pk_model_versions"),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", _serial(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _at(), nullable=False),
        sa.Column("revoked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("revoked_at", _at(), nullable=True),
        sa.CheckConstraint("kind IN ('write', 'admin')", name="ck_api_keys_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("model_versions")
    op.drop_index("ix_stage_history_lead_id_at", table_name="stage_history")
    op.drop_table("stage_history")
    op.drop_index("ix_score_ledger_lead_id_at", table_name="score_ledger")
    op.drop_table("score_ledger")
    op.drop_index("ix_events_at", table_name="events")
    op.drop_index("ix_events_lead_id_at", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_identities_lead_id", table_name="identities")
    op.drop_table("identities")
    op.drop_index("ix_leads_stage_score", table_name="leads")
    op.drop_table("leads")
