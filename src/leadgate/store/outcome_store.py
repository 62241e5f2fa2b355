"""Reads and writes of outcomes (imported or posted) and of the dispositions that say
something about a lead's quality, on the caller's connection.

One outcome per lead, source and time (``UNIQUE_KEY``): storing it again with another
outcome, reason or note replaces the stored one (``put``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from leadgate.domain.outcomes import BAD_DISPOSITIONS, GOOD_DISPOSITIONS
from leadgate.store import tables as t
from leadgate.store.repository import insert_ignore

OUTCOME_SOURCES = ("import", "api")
UNIQUE_KEY = ("lead_id", "source", "at")


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    id: int
    lead_id: str
    good: bool
    at: datetime
    reason: str | None
    source: str
    note: str | None
    actor: str
    imported_at: datetime

    def document(self) -> dict[str, Any]:
        """As JSON-ready data (the API's and ``outcomes list --json``'s items)."""
        return {
            "id": self.id,
            "lead_id": self.lead_id,
            "good": self.good,
            "at": self.at.isoformat(),
            "reason": self.reason,
            "source": self.source,
            "note": self.note,
            "actor": self.actor,
            "imported_at": self.imported_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class DecisiveDisposition:
    """A disposition that says good or bad, with the time its lead was handed over."""

    lead_id: str
    outcome: str
    reason: str | None
    at: datetime
    handed_over_at: datetime
    disposition_id: int


class OutcomeStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_many(self, rows: Sequence[Mapping[str, Any]]) -> list[bool]:
        """Insert outcomes (column -> value), skipping (not replacing) any whose lead,
        source and time are already stored; for each row, whether it went in. Imports
        use ``put``."""
        stmt = insert_ignore(self.conn, t.outcomes, UNIQUE_KEY).returning(t.outcomes.c.id)
        return [self.conn.execute(stmt.values(dict(row))).first() is not None for row in rows]

    def put(self, row: Mapping[str, Any]) -> str:
        """Store one outcome (column -> value): "imported" when its lead, source and time
        are new; "already" when they are stored with the same outcome, reason and note;
        "updated" when they are stored with another (the stored one is replaced, and
        takes this row's actor and import time)."""
        c = t.outcomes.c
        stmt = insert_ignore(self.conn, t.outcomes, UNIQUE_KEY).returning(c.id)
        if self.conn.execute(stmt.values(dict(row))).first() is not None:
            return "imported"
        same_key = (c.lead_id == row["lead_id"]) & (c.source == row["source"]) & (c.at == row["at"])
        held = self.conn.execute(select(c.id, c.good, c.reason, c.note).where(same_key)).one()
        if (held.good, held.reason, held.note) == (row["good"], row["reason"], row["note"]):
            return "already"
        changed = {k: row[k] for k in ("good", "reason", "note", "actor", "imported_at")}
        self.conn.execute(update(t.outcomes).where(c.id == held.id).values(changed))
        return "updated"

    def listing(
        self, lead_id: str | None = None, source: str | None = None, limit: int = 100
    ) -> list[StoredOutcome]:
        """Outcomes, the latest first."""
        c = t.outcomes.c
        stmt = select(t.outcomes)
        if lead_id is not None:
            stmt = stmt.where(c.lead_id == lead_id)
        if source is not None:
            stmt = stmt.where(c.source == source)
        rows = self.conn.execute(stmt.order_by(c.at.desc(), c.id.desc()).limit(limit))
        return [StoredOutcome(**r._mapping) for r in rows]

    def latest_per_lead(self) -> dict[str, StoredOutcome]:
        """Each lead's latest outcome (by time, then by id)."""
        c = t.outcomes.c
        latest: dict[str, StoredOutcome] = {}
        for r in self.conn.execute(select(t.outcomes).order_by(c.at, c.id)):
            latest[r.lead_id] = StoredOutcome(**r._mapping)
        return latest

    def latest_dispositions(self) -> dict[str, DecisiveDisposition]:
        """Each lead's latest disposition that says good or bad (won, lost, accepted, ...)."""
        d, h = t.dispositions.c, t.handovers.c
        decisive = sorted(GOOD_DISPOSITIONS | BAD_DISPOSITIONS)
        rows = self.conn.execute(
            select(d.id, d.lead_id, d.outcome, d.reason, d.at, h.created_at)
            .join(t.handovers, h.id == d.handover_id)
            .where(d.outcome.in_(decisive))
            .order_by(d.at, d.id)
        )
        return {
            r.lead_id: DecisiveDisposition(r.lead_id, r.outcome, r.reason, r.at, r.created_at, r.id)
            for r in rows
        }

    def emails(self, values: Iterable[str]) -> dict[str, str]:
        """Lead ids of the given (normalised) email addresses that belong to a lead."""
        wanted = sorted(set(values))
        ic = t.identities.c
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self.conn.execute(
                select(ic.value, ic.lead_id).where(ic.kind == "email", ic.value.in_(chunk))
            )
            found.update({r.value: r.lead_id for r in rows})
        return found

    def existing_leads(self, lead_ids: Iterable[str]) -> set[str]:
        wanted = sorted(set(lead_ids))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            found.update(
                self.conn.execute(select(t.leads.c.id).where(t.leads.c.id.in_(chunk))).scalars()
            )
        return found
