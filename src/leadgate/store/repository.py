"""Reads and writes for the use cases, on one connection inside one short transaction.

Use it as ``with engine.begin() as conn: Repository(conn).append_event(...)``;
the caller owns the transaction, so a state change and what it causes commit
together.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Insert,
    RowMapping,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from leadgate.domain.events import Event, Lead
from leadgate.domain.lifecycle import recycled
from leadgate.domain.traits import combine
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
_EPS = timedelta(microseconds=1)


def hash_api_key(key: str) -> str:
    """SHA-256 hex of a key. Keys are 256-bit random tokens, so a fast hash is enough."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def insert_ignore(conn: Connection, table: Table, key: Sequence[str]) -> Insert:
    """INSERT ... ON CONFLICT (key) DO NOTHING on either database; add ``.values`` for
    one row, or pass rows to ``execute`` for many. Add ``.returning(...)`` to learn
    which rows went in (rowcount is not reliable for it on psycopg)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=key)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=key)
    raise NotImplementedError(f"unsupported database: {conn.dialect.name}")  # pragma: no cover


def _insert_ignore(
    conn: Connection, table: Table, values: Mapping[str, Any], key: Sequence[str]
) -> bool:
    """Insert a row unless one with the same ``key`` columns exists; True when inserted."""
    stmt = insert_ignore(conn, table, key).values(values).returning(table.c[key[0]])
    return conn.execute(stmt).first() is not None


def _chunks(values: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """Slices small enough for an IN list on every database."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass(slots=True)
class LeadFacts:
    """A lead as identity resolution sees it. ``known``: it has a user id."""

    id: str
    attributes: dict[str, Any]
    attribute_times: dict[str, str]
    stage: str
    created_at: datetime
    known: bool = False


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
        """Fold lead ``source_id`` into ``target_id``: its identities, events, ledger,
        stage history, handovers (numbered after the target's cycles), dispositions,
        outcomes and outbox messages move to the target, per attribute the newer value is kept (the
        target's on a tie), and the source lead is deleted. The target keeps its id;
        its stage and score are the caller's to decide again."""
        facts = self.lead_facts([source_id, target_id])
        if source_id == target_id or len(facts) != 2:
            raise LookupError(f"cannot merge lead {source_id!r} into {target_id!r}")
        source, target = facts[source_id], facts[target_id]
        for table in (t.identities, t.events, t.score_ledger, t.stage_history):
            self.conn.execute(
                update(table).where(table.c.lead_id == source_id).values(lead_id=target_id)
            )
        # Rarer rows (a visitor seldom has any): one look, then only the moves needed.
        rare = (t.handovers, t.dispositions, t.outcomes, t.outbox)
        has = [exists().where(table.c.lead_id == source_id) for table in rare]
        held = union_all(*(select(literal(i)).where(e) for i, e in enumerate(has)))
        present = set(self.conn.execute(held).scalars())
        if 0 in present:  # the source's handovers follow the target's qualification cycles
            handed = t.handovers.c
            last_cycle = self.conn.execute(
                select(func.coalesce(func.max(handed.cycle), 0)).where(handed.lead_id == target_id)
            ).scalar_one()
            self.conn.execute(
                update(t.handovers)
                .where(handed.lead_id == source_id)
                .values(lead_id=target_id, cycle=handed.cycle + last_cycle)
            )
        for i, table in enumerate(rare):
            if i in present and table is not t.handovers:
                self.conn.execute(
                    update(table).where(table.c.lead_id == source_id).values(lead_id=target_id)
                )
        attributes, times = combine(
            target.attributes, target.attribute_times, source.attributes, source.attribute_times
        )
        self.set_attributes(target_id, attributes, times, at)
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

    # Set-based reads and writes for ingest ----------------------------------

    def owners(self, claims: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The lead owning each (kind, value) identity that has one."""
        by_kind: dict[str, set[str]] = {}
        for kind, value in claims:
            by_kind.setdefault(kind, set()).add(value)
        c = t.identities.c
        found: dict[tuple[str, str], str] = {}
        for kind, values in by_kind.items():
            for chunk in _chunks(sorted(values)):
                rows = self.conn.execute(
                    select(c.value, c.lead_id).where(and_(c.kind == kind, c.value.in_(chunk)))
                )
                found.update({(kind, r.value): r.lead_id for r in rows})
        return found

    def lead_facts(self, lead_ids: Iterable[str]) -> dict[str, LeadFacts]:
        """What identity resolution needs to know about each existing lead."""
        ids = sorted(set(lead_ids))
        facts: dict[str, LeadFacts] = {}
        lc, ic = t.leads.c, t.identities.c
        known: set[str] = set()
        for chunk in _chunks(ids):
            rows = self.conn.execute(
                select(lc.id, lc.attributes, lc.attribute_times, lc.stage, lc.created_at).where(
                    lc.id.in_(chunk)
                )
            )
            for r in rows:
                facts[r.id] = LeadFacts(
                    r.id, dict(r.attributes), dict(r.attribute_times or {}), r.stage, r.created_at
                )
            known.update(
                self.conn.execute(
                    select(ic.lead_id).where(and_(ic.lead_id.in_(chunk), ic.kind == "user_id"))
                ).scalars()
            )
        for lead_id in known & facts.keys():
            facts[lead_id].known = True
        return facts

    def create_leads(self, lead_ids: Iterable[str], at: datetime) -> None:
        """Create each lead that does not exist yet, with no attributes."""
        rows = [
            {"id": i, "attributes": {}, "attribute_times": {}, "created_at": at, "updated_at": at}
            for i in sorted(set(lead_ids))
        ]
        if rows:
            self.conn.execute(insert_ignore(self.conn, t.leads, ["id"]), rows)

    def add_identities(self, rows: Iterable[tuple[str, str, str]], at: datetime) -> None:
        """Attach (lead id, kind, value) identities; raises IdentityConflict when one
        already belongs to another lead (another transaction got there first)."""
        wanted = {(kind, value): lead for lead, kind, value in rows}
        if not wanted:
            return
        values = [
            {"kind": k, "value": v, "lead_id": lead, "created_at": at}
            for (k, v), lead in sorted(wanted.items())
        ]
        self.conn.execute(insert_ignore(self.conn, t.identities, ["kind", "value"]), values)
        for claim, owner in self.owners(wanted).items():
            if owner != wanted[claim]:
                raise IdentityConflict(claim[0], claim[1], owner, wanted[claim])

    def set_attributes(
        self, lead_id: str, attributes: Mapping[str, Any], times: Mapping[str, str], at: datetime
    ) -> None:
        """Replace a lead's attributes and the time each was last set at its source."""
        self.conn.execute(
            update(t.leads)
            .where(t.leads.c.id == lead_id)
            .values(attributes=dict(attributes), attribute_times=dict(times), updated_at=at)
        )

    def set_attributes_many(
        self, rows: Mapping[str, tuple[Mapping[str, Any], Mapping[str, str]]], at: datetime
    ) -> None:
        """``set_attributes`` for many leads in one statement: id -> (attributes, times)."""
        if not rows:
            return
        self.conn.execute(
            update(t.leads)
            .where(t.leads.c.id == bindparam("b_id"))
            .values(
                attributes=bindparam("b_attributes"),
                attribute_times=bindparam("b_times"),
                updated_at=at,
            ),
            [
                {"b_id": i, "b_attributes": dict(a), "b_times": dict(times)}
                for i, (a, times) in rows.items()
            ],
        )

    def append_events(self, events: Sequence[Event], received_at: datetime) -> set[str]:
        """Store the events whose message ids are not stored yet; their ids."""
        rows = [
            {
                "message_id": e.id,
                "lead_id": e.lead_id,
                "type": e.type,
                "at": e.timestamp,
                "received_at": received_at,
                "properties": dict(e.properties),
            }
            for e in events
        ]
        if not rows:
            return set()
        stmt = insert_ignore(self.conn, t.events, ["message_id"])
        returned = self.conn.execute(stmt.returning(t.events.c.message_id), rows)
        return set(returned.scalars())

    def last_stage_change_at(self, lead_ids: Sequence[str]) -> dict[str, datetime]:
        """When each lead's stage last changed (leads with no change are left out)."""
        c = t.stage_history.c
        out: dict[str, datetime] = {}
        for chunk in _chunks(sorted(set(lead_ids))):
            rows = self.conn.execute(
                select(c.lead_id, func.max(c.at)).where(c.lead_id.in_(chunk)).group_by(c.lead_id)
            )
            out.update({str(r[0]): r[1] for r in rows})
        return out

    def event_contents(self, message_ids: Iterable[str]) -> dict[str, tuple[str, datetime, Any]]:
        """(type, time, properties) of the stored events with these message ids."""
        c = t.events.c
        out: dict[str, tuple[str, datetime, Any]] = {}
        for chunk in _chunks(sorted(set(message_ids))):
            rows = self.conn.execute(
                select(c.message_id, c.type, c.at, c.properties).where(c.message_id.in_(chunk))
            )
            out.update({r.message_id: (r.type, r.at, r.properties) for r in rows})
        return out

    def lock_leads(self, lead_ids: Iterable[str]) -> None:
        """Lock the leads' rows until the transaction ends, in id order (no deadlock
        between two writers). SQLite's one writer needs no row locks."""
        if self.conn.dialect.name == "sqlite":
            return
        for chunk in _chunks(sorted(set(lead_ids))):
            self.conn.execute(
                select(t.leads.c.id)
                .where(t.leads.c.id.in_(chunk))
                .order_by(t.leads.c.id)
                .with_for_update()
            ).all()

    def load_lead_states(self, lead_ids: Iterable[str]) -> dict[str, tuple[Lead, str, float]]:
        """(lead, stage, score) of each existing lead."""
        lc = t.leads.c
        out: dict[str, tuple[Lead, str, float]] = {}
        for chunk in _chunks(sorted(set(lead_ids))):
            rows = self.conn.execute(
                select(lc.id, lc.attributes, lc.stage, lc.score).where(lc.id.in_(chunk))
            )
            for r in rows:
                out[r.id] = (Lead(r.id, dict(r.attributes)), r.stage, r.score)
        return out

    def load_events_of(self, lead_ids: Iterable[str]) -> dict[str, list[Event]]:
        """Each lead's events in (timestamp, message id) order."""
        e = t.events.c
        out: dict[str, list[Event]] = {}
        for chunk in _chunks(sorted(set(lead_ids))):
            rows = self.conn.execute(
                select(e.message_id, e.lead_id, e.type, e.at, e.properties)
                .where(e.lead_id.in_(chunk))
                .order_by(e.lead_id, e.at, e.message_id)
            )
            for r in rows:
                out.setdefault(r.lead_id, []).append(
                    Event(r.message_id, r.lead_id, r.type, r.at, dict(r.properties))
                )
        return out

    def ledger_sums(
        self, lead_ids: Iterable[str]
    ) -> dict[str, dict[tuple[str, str | None], float]]:
        """Each lead's held points per (rule id, event id), summed over its ledger."""
        c = t.score_ledger.c
        out: dict[str, dict[tuple[str, str | None], float]] = {}
        for chunk in _chunks(sorted(set(lead_ids))):
            rows = self.conn.execute(
                select(c.lead_id, c.rule_id, c.event_id, func.sum(c.points).label("points"))
                .where(c.lead_id.in_(chunk))
                .group_by(c.lead_id, c.rule_id, c.event_id)
            )
            for r in rows:
                out.setdefault(r.lead_id, {})[(r.rule_id, r.event_id)] = float(r.points)
        return out

    def lead_ids_after(self, after: str, limit: int) -> list[str]:
        """Up to ``limit`` lead ids greater than ``after``, in order (to page through all)."""
        c = t.leads.c
        stmt = select(c.id).where(c.id > after).order_by(c.id).limit(limit)
        return list(self.conn.execute(stmt).scalars())

    def scores_of(self, lead_ids: Iterable[str]) -> dict[str, float]:
        c = t.leads.c
        out: dict[str, float] = {}
        for chunk in _chunks(sorted(set(lead_ids))):
            out.update(
                (r.id, r.score)
                for r in self.conn.execute(select(c.id, c.score).where(c.id.in_(chunk)))
            )
        return out

    def recycled_at(self, lead_ids: Iterable[str]) -> dict[str, datetime]:
        """When each lead was last sent back by a person or by sales (a backward move)."""
        c = t.stage_history.c
        out: dict[str, datetime] = {}
        for chunk in _chunks(sorted(set(lead_ids))):
            rows = self.conn.execute(
                select(c.lead_id, c.from_stage, c.to_stage, c.at).where(
                    and_(c.lead_id.in_(chunk), c.actor.not_in(("model", "handover", "identity")))
                )
            )
            for r in rows:
                if recycled(r.from_stage, r.to_stage) and r.at > out.get(r.lead_id, r.at - _EPS):
                    out[r.lead_id] = r.at
        return out

    def set_scores(self, scores: Mapping[str, float], at: datetime) -> None:
        if not scores:
            return
        self.conn.execute(
            update(t.leads)
            .where(t.leads.c.id == bindparam("b_id"))
            .values(score=bindparam("b_score"), updated_at=at),
            [{"b_id": i, "b_score": s} for i, s in scores.items()],
        )

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
        self.record_stage_changes([change])

    def record_stage_changes(self, changes: Sequence[StageChange]) -> None:
        """Append the changes to the stage history and set each lead's current stage
        (the last change of a lead wins)."""
        if not changes:
            return
        self.conn.execute(
            t.stage_history.insert(),
            [
                {
                    "lead_id": c.lead_id,
                    "from_stage": c.from_stage,
                    "to_stage": c.to_stage,
                    "cause": c.cause,
                    "rule_ids": list(c.rule_ids),
                    "model_version": c.model_version,
                    "actor": c.actor,
                    "at": c.at,
                }
                for c in changes
            ],
        )
        current = {c.lead_id: c for c in changes}
        self.conn.execute(
            update(t.leads)
            .where(t.leads.c.id == bindparam("b_id"))
            .values(stage=bindparam("b_stage"), updated_at=bindparam("b_at")),
            [{"b_id": c.lead_id, "b_stage": c.to_stage, "b_at": c.at} for c in current.values()],
        )

    def stage_history(self, lead_id: str) -> list[StageChange]:
        c = t.stage_history.c
        rows = self.conn.execute(
            # id order is commit order: each change is written under the lead's lock
            select(t.stage_history).where(c.lead_id == lead_id).order_by(c.id)
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

    # Listing, overrides and privacy ---------------------------------------

    def list_leads(
        self,
        *,
        stages: Iterable[str] = (),
        min_score: float | None = None,
        email: str | None = None,
        text: str | None = None,
        after: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` leads in (score descending, id) order: those in ``stages`` (any
        stage when empty), scoring at least ``min_score``, owning the ``email`` identity
        (give it normalised), whose id or email contains ``text`` (any case), and coming
        after ``after``, the (score, id) of the previous page's last lead.

        Keyset paging, so a deep page costs what the first does and, while scores hold
        still, no lead is repeated or skipped. Each row: id, attributes, stage, score,
        created_at, updated_at.
        """
        lc, ic = t.leads.c, t.identities.c
        stmt = select(lc.id, lc.attributes, lc.stage, lc.score, lc.created_at, lc.updated_at)
        wanted = sorted(set(stages))
        if wanted:
            stmt = stmt.where(lc.stage.in_(wanted))
        if min_score is not None:
            stmt = stmt.where(lc.score >= min_score)
        if email is not None:
            owner = select(ic.lead_id).where(and_(ic.kind == "email", ic.value == email))
            stmt = stmt.where(lc.id.in_(owner))
        if text is not None:
            emails = select(ic.lead_id).where(
                and_(ic.kind == "email", ic.value.icontains(text, autoescape=True))
            )
            stmt = stmt.where(lc.id.icontains(text, autoescape=True) | lc.id.in_(emails))
        if after is not None:
            score, lead_id = after
            stmt = stmt.where((lc.score < score) | and_(lc.score == score, lc.id > lead_id))
        stmt = stmt.order_by(lc.score.desc(), lc.id).limit(limit)
        return [dict(row) for row in self.conn.execute(stmt).mappings()]

    @staticmethod
    def lead_owned_tables() -> list[tuple[Table, str]]:
        """Each table holding rows about one lead, with the column naming the lead,
        dependants first. Found from the metadata (a ``lead_id`` column or a foreign key
        to ``leads.id``), so a table added later is exported and erased without being
        listed here; ``leads`` itself is not included."""
        owned: list[tuple[Table, str]] = []
        for table in reversed(t.metadata.sorted_tables):
            if table is t.leads:
                continue
            for column in table.columns:
                refers = any(fk.column is t.leads.c.id for fk in column.foreign_keys)
                if column.name == "lead_id" or refers:
                    owned.append((table, column.name))
                    break
        return owned

    def lead_records(self, lead_id: str) -> dict[str, list[dict[str, Any]]] | None:
        """Every stored row about the lead by table name (``leads`` holds its own row),
        each table in primary key order; None for an unknown lead. A subject access
        export is built from this, so it cannot miss a table."""
        lead = (
            self.conn.execute(select(t.leads).where(t.leads.c.id == lead_id))
            .mappings()
            .one_or_none()
        )
        if lead is None:
            return None
        records = {"leads": [dict(lead)]}
        for table, column in sorted(self.lead_owned_tables(), key=lambda tc: tc[0].name):
            rows = self.conn.execute(
                select(table).where(table.c[column] == lead_id).order_by(*table.primary_key.columns)
            ).mappings()
            records[table.name] = [dict(row) for row in rows]
        return records

    def erase_lead(self, lead_id: str, at: datetime) -> tuple[str, dict[str, int]] | None:
        """Delete the lead and every row about it; keep an erasure record that holds no
        personal data: a random id, the time, the rows deleted per table and the SHA-256
        of each erased event's message id (see ``erased_message_ids``). Returns (erasure
        id, counts), or None for an unknown lead.

        On SQLite the deleted rows are overwritten with zeros (``secure_delete``) instead
        of lingering in free pages; ``truncate_wal`` then clears the log's copies.
        """
        lc = t.leads.c
        found = self.conn.execute(
            select(lc.id).where(lc.id == lead_id).with_for_update()
        ).one_or_none()
        if found is None:
            return None
        if self.conn.dialect.name == "sqlite":
            self.conn.exec_driver_sql("PRAGMA secure_delete = ON")
        message_ids = set(
            self.conn.execute(
                select(t.events.c.message_id).where(t.events.c.lead_id == lead_id)
            ).scalars()
        )
        counts: dict[str, int] = {}
        for table, column in self.lead_owned_tables():
            deleted = self.conn.execute(delete(table).where(table.c[column] == lead_id))
            counts[table.name] = deleted.rowcount
        counts["leads"] = self.conn.execute(delete(t.leads).where(lc.id == lead_id)).rowcount
        erasure_id = secrets.token_hex(16)
        self.conn.execute(t.erasures.insert().values(id=erasure_id, at=at, counts=counts))
        already = self.erased_message_ids(message_ids)  # only if stored again after all
        fresh = sorted(self._message_sha256(m) for m in message_ids - already)
        if fresh:
            self.conn.execute(
                t.erased_messages.insert(),
                [{"message_sha256": h, "erasure_id": erasure_id} for h in fresh],
            )
        return erasure_id, counts

    def erased_message_ids(self, ids: Iterable[str]) -> set[str]:
        """Those of ``ids`` whose events were erased with their lead. Ingest leaves them
        out, so a client's retry of an erased message does not bring its data back."""
        by_hash = {self._message_sha256(m): m for m in ids}
        hashes = sorted(by_hash)
        c = t.erased_messages.c
        found: set[str] = set()
        for start in range(0, len(hashes), 500):  # an IN list every database takes
            chunk = hashes[start : start + 500]
            found.update(
                self.conn.execute(
                    select(c.message_sha256).where(c.message_sha256.in_(chunk))
                ).scalars()
            )
        return {by_hash[h] for h in found}

    def get_erasure(self, erasure_id: str) -> tuple[datetime, dict[str, int], int] | None:
        """An erasure's time, rows deleted per table and number of erased message ids."""
        row = self.conn.execute(
            select(t.erasures.c.at, t.erasures.c.counts).where(t.erasures.c.id == erasure_id)
        ).one_or_none()
        if row is None:
            return None
        c = t.erased_messages.c
        messages = self.conn.execute(
            select(func.count()).select_from(t.erased_messages).where(c.erasure_id == erasure_id)
        ).scalar_one()
        return row.at, dict(row.counts), messages

    def truncate_wal(self) -> bool:
        """On SQLite, copy the write-ahead log into the database file and empty it, so the
        log keeps no copy of erased rows. True when the whole log was emptied; False when
        a reader still needed part of it, or on another database (nothing to do here).
        Needs a connection with no transaction open (the checkpoint cannot run in one)."""
        if self.conn.dialect.name != "sqlite":
            return False
        if self.conn.in_transaction():
            raise RuntimeError("truncate_wal needs a connection outside a transaction")
        raw = self.conn.connection.driver_connection
        assert raw is not None
        busy, _log, _done = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return bool(busy == 0)

    @staticmethod
    def _message_sha256(message_id: str) -> str:
        return hashlib.sha256(message_id.encode("utf-8")).hexdigest()


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
