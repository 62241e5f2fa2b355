"""Reads and writes for the use cases, on one connection inside one short transaction.

Use it as ``with engine.begin() as conn: Repository(conn).append_event(...)``;
the caller owns the transaction, so a state change and what it causes commit
together.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Insert,
    RowMapping,
    Table,
    and_,
    delete,
    false,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from leadgate.domain.events import Event, Lead
from leadgate.store import tables as t
from leadgate.store.records import (
    ApiKey,
    ApiKeyKind,
    IdentityConflict,
    LedgerEntry,
    ModelStatus,
    ModelVersion,
    StageChange,
)

API_KEY_PREFIX = "lg_"


def hash_api_key(key: str) -> str:
    """SHA-256 hex of a key. Keys are 256-bit random tokens, so a fast hash is enough."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _insert_ignore(
    conn: Connection, table: Table, values: Mapping[str, Any], key: Sequence[str]
) -> bool:
    """Insert a row unless one with the same ``key`` columns exists; True when inserted."""
    stmt: Insert
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(table).values(values).on_conflict_do_nothing(index_elements=key)
    elif conn.dialect.name == "sqlite":
        stmt = sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=key)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"unsupported database: {conn.dialect.name}")
    # RETURNING gives a row only when one was inserted (rowcount is not reliable here).
    returned = conn.execute(stmt.returning(table.c[key[0]])).first()
    return returned is not None


class Repository:
    """The store's operations on one connection (the caller commits)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # Leads and identities -------------------------------------------------

    def upsert_lead(
        self, lead: Lead, at: datetime, identities: Iterable[tuple[str, str]] = ()
    ) -> bool:
        """Create the lead or merge ``lead.attributes`` into its attributes (new values win),
        and attach ``identities`` (kind, value). True when the lead was created.

        Raises IdentityConflict when an identity belongs to another lead.
        """
        created = _insert_ignore(
            self.conn,
            t.leads,
            {
                "id": lead.id,
                "attributes": dict(lead.attributes),
                "created_at": at,
                "updated_at": at,
            },
            ["id"],
        )
        if not created and lead.attributes:
            current = self.conn.execute(
                select(t.leads.c.attributes).where(t.leads.c.id == lead.id).with_for_update()
            ).scalar_one()
            merged = {**cast(dict[str, Any], current), **lead.attributes}
            self.conn.execute(
                update(t.leads)
                .where(t.leads.c.id == lead.id)
                .values(attributes=merged, updated_at=at)
            )
        for kind, value in identities:
            self.add_identity(lead.id, kind, value, at)
        return created

    def add_identity(self, lead_id: str, kind: str, value: str, at: datetime) -> None:
        """Attach an identity to a lead; a no-op if it is already that lead's."""
        row = {"kind": kind, "value": value, "lead_id": lead_id, "created_at": at}
        if _insert_ignore(self.conn, t.identities, row, ["kind", "value"]):
            return
        owner = self.lead_for_identity(kind, value)
        if owner != lead_id:
            raise IdentityConflict(kind, value, str(owner), lead_id)

    def lead_for_identity(self, kind: str, value: str) -> str | None:
        return self.conn.execute(
            select(t.identities.c.lead_id).where(
                and_(t.identities.c.kind == kind, t.identities.c.value == value)
            )
        ).scalar_one_or_none()

    def identities_of(self, lead_id: str) -> list[tuple[str, str]]:
        rows = self.conn.execute(
            select(t.identities.c.kind, t.identities.c.value)
            .where(t.identities.c.lead_id == lead_id)
            .order_by(t.identities.c.kind, t.identities.c.value)
        )
        return [(r.kind, r.value) for r in rows]

    def merge_lead(self, source_id: str, target_id: str, at: datetime) -> None:
        """Fold lead ``source_id`` into ``target_id``: its identities, events, ledger and
        stage history move to the target, its attributes fill the target's gaps, and
        the source lead is deleted. The target keeps its id, stage and score."""
        source = self.get_lead(source_id)
        target = self.get_lead(target_id)
        if source is None or target is None or source_id == target_id:
            raise LookupError(f"cannot merge lead {source_id!r} into {target_id!r}")
        for table in (t.identities, t.events, t.score_ledger, t.stage_history):
            self.conn.execute(
                update(table).where(table.c.lead_id == source_id).values(lead_id=target_id)
            )
        self.conn.execute(
            update(t.leads)
            .where(t.leads.c.id == target_id)
            .values(attributes={**source.attributes, **target.attributes}, updated_at=at)
        )
        self.conn.execute(delete(t.leads).where(t.leads.c.id == source_id))

    def get_lead(self, lead_id: str) -> Lead | None:
        attributes = self.conn.execute(
            select(t.leads.c.attributes).where(t.leads.c.id == lead_id)
        ).scalar_one_or_none()
        return None if attributes is None else Lead(lead_id, dict(attributes))

    def lead_state(self, lead_id: str) -> tuple[str, float] | None:
        """The lead's current (stage, score), or None for an unknown lead."""
        row = self.conn.execute(
            select(t.leads.c.stage, t.leads.c.score).where(t.leads.c.id == lead_id)
        ).one_or_none()
        return None if row is None else (row.stage, row.score)

    def set_score(self, lead_id: str, score: float, at: datetime) -> None:
        self.conn.execute(
            update(t.leads).where(t.leads.c.id == lead_id).values(score=score, updated_at=at)
        )

    # Events ---------------------------------------------------------------

    def append_event(self, event: Event, received_at: datetime) -> bool:
        """Store an event unless its message id is already stored; True when it was new.

        The lead must exist. Events are never updated or deleted here.
        """
        return _insert_ignore(
            self.conn,
            t.events,
            {
                "message_id": event.id,
                "lead_id": event.lead_id,
                "type": event.type,
                "at": event.timestamp,
                "received_at": received_at,
                "properties": dict(event.properties),
            },
            ["message_id"],
        )

    def load_events(self, lead_id: str) -> list[Event]:
        """The lead's events in (timestamp, message id) order."""
        e = t.events.c
        rows = self.conn.execute(
            select(e.message_id, e.lead_id, e.type, e.at, e.properties)
            .where(e.lead_id == lead_id)
            .order_by(e.at, e.message_id)
        )
        return [Event(r.message_id, r.lead_id, r.type, r.at, dict(r.properties)) for r in rows]

    def count_events(self, lead_id: str | None = None) -> int:
        stmt = select(func.count()).select_from(t.events)
        if lead_id is not None:
            stmt = stmt.where(t.events.c.lead_id == lead_id)
        return self.conn.execute(stmt).scalar_one()

    # Score ledger and stage history ----------------------------------------

    def record_ledger(self, entries: Iterable[LedgerEntry]) -> None:
        rows = [
            {
                "lead_id": x.lead_id,
                "rule_id": x.rule_id,
                "event_id": x.event_id,
                "points": x.points,
                "model_version": x.model_version,
                "at": x.at,
            }
            for x in entries
        ]
        if rows:
            self.conn.execute(t.score_ledger.insert(), rows)

    def ledger(self, lead_id: str) -> list[LedgerEntry]:
        c = t.score_ledger.c
        rows = self.conn.execute(
            select(c.lead_id, c.rule_id, c.event_id, c.points, c.model_version, c.at)
            .where(c.lead_id == lead_id)
            .order_by(c.at, c.id)
        )
        return [
            LedgerEntry(r.lead_id, r.rule_id, r.event_id, r.points, r.model_version, r.at)
            for r in rows
        ]

    def record_stage_change(self, change: StageChange) -> None:
        """Append to the stage history and set the lead's current stage."""
        self.conn.execute(
            t.stage_history.insert().values(
                lead_id=change.lead_id,
                from_stage=change.from_stage,
                to_stage=change.to_stage,
                cause=change.cause,
                rule_ids=list(change.rule_ids),
                model_version=change.model_version,
                actor=change.actor,
                at=change.at,
            )
        )
        self.conn.execute(
            update(t.leads)
            .where(t.leads.c.id == change.lead_id)
            .values(stage=change.to_stage, updated_at=change.at)
        )

    def stage_history(self, lead_id: str) -> list[StageChange]:
        c = t.stage_history.c
        rows = self.conn.execute(
            select(t.stage_history).where(c.lead_id == lead_id).order_by(c.at, c.id)
        )
        return [
            StageChange(
                r.lead_id,
                r.from_stage,
                r.to_stage,
                r.cause,
                tuple(r.rule_ids),
                r.model_version,
                r.actor,
                r.at,
            )
            for r in rows
        ]

    # Model versions -------------------------------------------------------

    def save_model_draft(self, name: str, version: str, text: str, at: datetime) -> None:
        """Save a draft. A published version is never overwritten (IntegrityError)."""
        self.conn.execute(
            t.model_versions.insert().values(
                name=name, version=version, text=text, status="draft", created_at=at
            )
        )

    def publish_model(self, name: str, version: str, by: str, why: str, at: datetime) -> None:
        """Publish a saved draft; raises LookupError if there is no such draft."""
        c = t.model_versions.c
        result = self.conn.execute(
            update(t.model_versions)
            .where(and_(c.name == name, c.version == version, c.status == "draft"))
            .values(status="published", published_by=by, why=why, published_at=at)
        )
        if result.rowcount != 1:
            raise LookupError(f"no draft {name}@{version} to publish")

    def get_model_version(self, name: str, version: str) -> ModelVersion | None:
        c = t.model_versions.c
        row = (
            self.conn.execute(
                select(t.model_versions).where(and_(c.name == name, c.version == version))
            )
            .mappings()
            .one_or_none()
        )
        return None if row is None else _model_version(row)

    def latest_published(self, name: str) -> ModelVersion | None:
        """The most recently published version of the model ``name``."""
        c = t.model_versions.c
        row = (
            self.conn.execute(
                select(t.model_versions)
                .where(and_(c.name == name, c.status == "published"))
                .order_by(c.published_at.desc(), c.version.desc())
                .limit(1)
            )
            .mappings()
            .one_or_none()
        )
        return None if row is None else _model_version(row)

    # API keys -------------------------------------------------------------

    def create_api_key(self, kind: ApiKeyKind, at: datetime) -> tuple[ApiKey, str]:
        """A new key: its stored record and the key itself, which is shown once and not kept."""
        if kind not in ("write", "admin"):
            raise ValueError(f"API key kind must be write or admin, not {kind!r}")
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = self.conn.execute(
            t.api_keys.insert()
            .values(kind=kind, key_hash=hash_api_key(key), created_at=at)
            .returning(t.api_keys.c.id)
        ).scalar_one()
        return ApiKey(key_id, kind, at, revoked=False), key

    def verify_api_key(self, key: str) -> ApiKey | None:
        """The record of a valid, unrevoked key, or None."""
        c = t.api_keys.c
        row = self.conn.execute(
            select(c.id, c.kind, c.created_at, c.revoked).where(
                and_(c.key_hash == hash_api_key(key), c.revoked == false())
            )
        ).one_or_none()
        return None if row is None else ApiKey(row.id, row.kind, row.created_at, row.revoked)

    def revoke_api_key(self, key_id: int, at: datetime) -> bool:
        """Revoke a key; True if it was active."""
        c = t.api_keys.c
        result = self.conn.execute(
            update(t.api_keys)
            .where(and_(c.id == key_id, c.revoked == false()))
            .values(revoked=True, revoked_at=at)
        )
        return result.rowcount == 1


def _model_version(row: RowMapping) -> ModelVersion:
    status: ModelStatus = row["status"]
    return ModelVersion(
        name=row["name"],
        version=row["version"],
        text=row["text"],
        status=status,
        created_at=row["created_at"],
        published_by=row["published_by"],
        why=row["why"],
        published_at=row["published_at"],
    )
