"""The tables, as SQLAlchemy Core metadata. Alembic migrations must match them.

Every table that belongs to a lead carries ``lead_id`` and is indexed by it
first, so it could be distributed by lead id later (docs/decisions/0002-storage.md).
Timestamps are UTC instants: ``timestamptz`` on PostgreSQL, naive UTC text on
SQLite (which sorts correctly); both are read back as aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

from leadgate.domain.events import to_utc

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID_LENGTH = 200  # lead ids, message ids, rule ids: source ids can be long


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as a UTC instant and always read back in UTC.

    Naive values are taken to be UTC (as everywhere in leadgate).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = to_utc(value)
        # SQLite has no zone type: store naive UTC, which sorts as text.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else to_utc(value)


def _json() -> TypeEngine[Any]:
    return JSON().with_variant(JSONB(), "postgresql")


def _serial() -> TypeEngine[int]:
    # INTEGER PRIMARY KEY is SQLite's rowid (fast appends); BIGINT elsewhere.
    return BigInteger().with_variant(Integer(), "sqlite")


leads = Table(
    "leads",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("attributes", _json(), nullable=False),
    # attribute -> when its source said it (fixed-width UTC text; domain/traits.py)
    Column("attribute_times", _json(), nullable=False, server_default=text("'{}'")),
    Column("stage", String(32), nullable=False, server_default="new"),
    Column("score", Float, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "stage", "score"),
)

identities = Table(
    "identities",
    metadata,
    Column("kind", String(32), primary_key=True),  # email, anonymous_id, user_id, ...
    Column("value", String(320), primary_key=True),
    Column("lead_id", String(ID_LENGTH), ForeignKey("leads.id"), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("seq", _serial(), primary_key=True, autoincrement=True),  # arrival order
    Column("message_id", String(ID_LENGTH), nullable=False),
    Column("lead_id", String(ID_LENGTH), ForeignKey("leads.id"), nullable=False),
    Column("type", String(100), nullable=False),
    Column("at", UtcDateTime, nullable=False),  # when it happened (the source's timestamp)
    Column("received_at", UtcDateTime, nullable=False),
    Column("properties", _json(), nullable=False),
    UniqueConstraint("message_id"),
    Index(None, "lead_id", "at"),
    Index(None, "at"),
)

score_ledger = Table(
    "score_ledger",
    metadata,
    Column("id", _serial(), primary_key=True, autoincrement=True),
    Column("lead_id", String(ID_LENGTH), ForeignKey("leads.id"), nullable=False),
    Column("rule_id", String(ID_LENGTH), nullable=False),
    Column("event_id", String(ID_LENGTH), nullable=True),  # message id; None for fit rules
    Column("points", Float, nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index(None, "lead_id", "at"),
)

stage_history = Table(
    "stage_history",
    metadata,
    Column("id", _serial(), primary_key=True, autoincrement=True),
    Column("lead_id", String(ID_LENGTH), ForeignKey("leads.id"), nullable=False),
    Column("from_stage", String(32), nullable=True),  # None when the lead is first staged
    Column("to_stage", String(32), nullable=False),
    Column("cause", Text, nullable=False),
    Column("rule_ids", _json(), nullable=False),
    Column("model_version", String(64), nullable=True),  # None for a person's override
    Column("actor", String(200), nullable=False),  # "model" or who overrode
    Column("at", UtcDateTime, nullable=False),
    Index(None, "lead_id", "at"),
)

handovers = Table(
    "handovers",
    metadata,
    Column("id", _serial(), primary_key=True, autoincrement=True),
    Column("lead_id", String(ID_LENGTH), ForeignKey("leads.id"), nullable=False),
    Column("cycle", Integer, nullable=False),  # 1, then 2 after a rejection, ...
    Column("stage", String(32), nullable=False),  # the model stage that started it
    Column("status", String(16), nullable=False),  # lifecycle.NEXT_OUTCOMES keys
    Column("rep_id", String(ID_LENGTH), nullable=True),  # None: waiting in a queue
    Column("team", String(200), nullable=True),
    Column("queue", String(200), nullable=True),
    Column("reason", Text, nullable=False),  # why this rep
    Column("company_domain", String(320), nullable=True),  # for account ownership
    Column("breakdown", _json(), nullable=False),  # the score when handed over
    Column("model_version", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("assigned_at", UtcDateTime, nullable=True),
    Column("remind_at", UtcDateTime, nullable=True),  # a reminder to the rep
    Column("due_at", UtcDateTime, nullable=True),  # first contact, in working time
    Column("contacted_at", UtcDateTime, nullable=True),
    Column("reminded_at", UtcDateTime, nullable=True),
    Column("escalated_at", UtcDateTime, nullable=True),
    Column("closed_at", UtcDateTime, nullable=True),
    UniqueConstraint("lead_id", "cycle"),  # exactly once per qualification cycle
    Index(None, "status", "due_at"),
    Index(None, "rep_id", "status"),
    Index(None, "company_domain"),
)

dispositions = Table(
    "dispositions",
    metadata,
    Column("id", _serial(), primary_key=True, autoincrement=True),
    Column("lead_id", String(ID_LENGTH), ForeignKey("leads.id"), nullable=False),
    Column("handover_id", _serial(), ForeignKey("handovers.id"), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("reason", String(32), nullable=True),
    Column("note", Text, nullable=True),
    Column("actor", String(200), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    # what was known when the lead was handed over, for learning (never after)
    Column("breakdown", _json(), nullable=False),
    Column("model_version", String(64), nullable=False),
    Index(None, "lead_id", "at"),
    Index(None, "handover_id"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("text", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("published_by", String(200), nullable=True),
    Column("why", Text, nullable=True),
    Column("published_at", UtcDateTime, nullable=True),
    CheckConstraint("status IN ('draft', 'published')", name="status"),
)

# The sales team file, as loaded: the newest row is the active team (services/team.py).
team_configs = Table(
    "team_configs",
    metadata,
    Column("id", _serial(), primary_key=True, autoincrement=True),
    Column("text", Text, nullable=False),  # the YAML (or JSON) exactly as given
    Column("loaded_at", UtcDateTime, nullable=False),
    Column("loaded_by", String(200), nullable=False),
)

# Day-to-day changes to a rep made through the API (away, capacity), kept apart
# from the file so that loading a new team file does not bring an away rep back.
# None in a column: the team file's value holds.
rep_overrides = Table(
    "rep_overrides",
    metadata,
    Column("rep_id", String(ID_LENGTH), primary_key=True),
    Column("available", Boolean, nullable=True),
    Column("capacity", Integer, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("updated_by", String(200), nullable=False),
    CheckConstraint("capacity IS NULL OR capacity >= 1", name="capacity"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", _serial(), primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False),  # sha256 hex of the key
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked", Boolean, nullable=False, server_default=false()),
    Column("revoked_at", UtcDateTime, nullable=True),
    UniqueConstraint("key_hash"),
    CheckConstraint("kind IN ('write', 'admin')", name="kind"),
)

# Erasures keep no personal data: no lead id, no email, only counts and the
# SHA-256 of each erased event's message id, so that a client's retry of an
# erased message can be recognised and not stored again.
erasures = Table(
    "erasures",
    metadata,
    Column("id", String(32), primary_key=True),  # random, given to whoever asked
    Column("at", UtcDateTime, nullable=False),
    Column("counts", _json(), nullable=False),  # rows deleted per table
)

erased_messages = Table(
    "erased_messages",
    metadata,
    Column("message_sha256", String(64), primary_key=True),  # hex of the message id's hash
    Column("erasure_id", String(32), ForeignKey("erasures.id"), nullable=False, index=True),
)

# Outbound webhook subscriptions: who wants which lifecycle events (services/outbox.py).
# Removing one marks it inactive, so the outbox rows that name it stay explainable.
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", _serial(), primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("secret", String(200), nullable=False),  # signs each delivery (HMAC-SHA256)
    Column("events", _json(), nullable=False),  # list of event names
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("created_at", UtcDateTime, nullable=False),
)

# Side effects written in the same transaction as the change they report, then
# delivered by a worker (notify/worker.py). A worker claims a row by setting
# claimed_by and a lease (claimed_until, and next_attempt_at to the same time):
# when the worker dies, the row is due again once the lease ends. The
# idempotency key never changes, so a repeat carries the same key.
outbox = Table(
    "outbox",
    metadata,
    Column("id", _serial(), primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("target", Text, nullable=False),  # a URL (webhook, chat) or an email address
    Column(
        "subscription_id",
        _serial(),
        ForeignKey("webhook_subscriptions.id"),
        nullable=True,  # webhooks only: whose secret signs it
    ),
    Column("event", String(100), nullable=False),
    # whom it is about (no foreign key: it outlives nothing, erasure deletes it)
    Column("lead_id", String(ID_LENGTH), nullable=True, index=True),
    Column("payload", _json(), nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("claimed_by", String(200), nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=True),
    UniqueConstraint("idempotency_key"),
    Index(None, "status", "next_attempt_at"),
    CheckConstraint("channel IN ('webhook', 'email', 'chat')", name="channel"),
    CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
)

# Outcomes known from outside the handover flow: imported files and the API
# (services/outcomes.py). Dispositions stay in their own table. ``at`` is when the
# outcome became known; learning only uses what was known strictly before it. One
# row per lead, source and date: a re-import adds nothing, a correction replaces it.
# No foreign key to
# ``leads`` (as ``outbox``): the lead_id column is enough for export and erasure.
outcomes = Table(
    "outcomes",
    metadata,
    Column("id", _serial(), primary_key=True, autoincrement=True),
    Column("lead_id", String(ID_LENGTH), nullable=False),
    Column("good", Boolean, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("reason", Text, nullable=True),
    Column("source", String(16), nullable=False),
    Column("note", Text, nullable=True),
    Column("actor", String(200), nullable=False),
    Column("imported_at", UtcDateTime, nullable=False),
    UniqueConstraint("lead_id", "source", "at"),
    CheckConstraint("source IN ('import', 'api')", name="source"),
)

# Every publish and rollback of a scoring model (services/models.py), in order. The
# live model is found by replaying them: a publish puts its version on top, a
# rollback takes the top one off and the one below it is live again.
model_publications = Table(
    "model_publications",
    metadata,
    Column("id", _serial(), primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("why", Text, nullable=False),
    Column("handover", String(16), nullable=True),
    Column("at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"]),
    CheckConstraint("action IN ('publish', 'rollback')", name="action"),
)
