"""Reads and writes of handovers and dispositions, on the caller's connection."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from leadgate.domain.lifecycle import CLOSED
from leadgate.store import tables as t

ACTIVE = ("open", "contacted")  # what counts against a rep's capacity


@dataclass(frozen=True, slots=True)
class Handover:
    id: int
    lead_id: str
    cycle: int
    stage: str
    status: str
    rep_id: str | None
    team: str | None
    queue: str | None
    reason: str
    company_domain: str | None
    breakdown: Mapping[str, Any]
    model_version: str
    created_at: datetime
    assigned_at: datetime | None
    remind_at: datetime | None
    due_at: datetime | None
    contacted_at: datetime | None
    reminded_at: datetime | None
    escalated_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Disposition:
    id: int
    lead_id: str
    handover_id: int
    outcome: str
    reason: str | None
    note: str | None
    actor: str
    at: datetime
    breakdown: Mapping[str, Any]
    model_version: str


class HandoverStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def cycles(self, lead_id: str) -> int:
        """How many handovers the lead has had."""
        c = t.handovers.c
        stmt = select(func.count()).select_from(t.handovers).where(c.lead_id == lead_id)
        return int(self.conn.execute(stmt).scalar_one())

    def current(self, lead_id: str) -> Handover | None:
        """The lead's latest handover that is not closed."""
        c = t.handovers.c
        row = self.conn.execute(
            select(t.handovers)
            .where(and_(c.lead_id == lead_id, c.status.not_in(sorted(CLOSED))))
            .order_by(c.cycle.desc())
            .limit(1)
        ).one_or_none()
        return None if row is None else Handover(**row._mapping)

    def insert(self, **values: Any) -> int:
        return int(
            self.conn.execute(
                t.handovers.insert().values(**values).returning(t.handovers.c.id)
            ).scalar_one()
        )

    def get(self, handover_id: int) -> Handover | None:
        row = self.conn.execute(
            select(t.handovers).where(t.handovers.c.id == handover_id)
        ).one_or_none()
        return None if row is None else Handover(**row._mapping)

    def lock(self, handover_id: int) -> Handover | None:
        """The handover, its row locked until the transaction ends (PostgreSQL)."""
        row = self.conn.execute(
            select(t.handovers).where(t.handovers.c.id == handover_id).with_for_update()
        ).one_or_none()
        return None if row is None else Handover(**row._mapping)

    def update(self, handover_id: int, **values: Any) -> None:
        self.conn.execute(
            update(t.handovers).where(t.handovers.c.id == handover_id).values(**values)
        )

    def loads(self) -> dict[str, int]:
        """Active handovers per rep."""
        c = t.handovers.c
        rows = self.conn.execute(
            select(c.rep_id, func.count())
            .where(and_(c.status.in_(ACTIVE), c.rep_id.is_not(None)))
            .group_by(c.rep_id)
        )
        return {r[0]: int(r[1]) for r in rows}

    def last_assigned(self) -> dict[str, datetime]:
        c = t.handovers.c
        rows = self.conn.execute(
            select(c.rep_id, func.max(c.assigned_at))
            .where(c.rep_id.is_not(None))
            .group_by(c.rep_id)
        )
        return {r[0]: r[1] for r in rows if r[1] is not None}

    def account_owner(self, domain: str) -> str | None:
        """The rep of the latest handover of another lead at the same company that
        sales did not reject."""
        c = t.handovers.c
        return self.conn.execute(
            select(c.rep_id)
            .where(and_(c.company_domain == domain, c.rep_id.is_not(None), c.status != "rejected"))
            .order_by(c.created_at.desc(), c.id.desc())
            .limit(1)
        ).scalar_one_or_none()

    def assigned_since(self, since: datetime) -> dict[str, int]:
        """Leads given to each rep since ``since``, open or not (fair shares)."""
        c = t.handovers.c
        rows = self.conn.execute(
            select(c.rep_id, func.count())
            .where(and_(c.rep_id.is_not(None), c.assigned_at >= since))
            .group_by(c.rep_id)
        )
        return {r[0]: int(r[1]) for r in rows}

    def follow_up_due(self, now: datetime, limit: int = 500) -> list[Handover]:
        """Open handovers whose reminder is due and not sent, or whose first-contact
        deadline has passed since they were last escalated; oldest deadline first."""
        c = t.handovers.c
        reminder = and_(c.remind_at <= now, c.reminded_at.is_(None))
        missed = and_(c.due_at < now, or_(c.escalated_at.is_(None), c.escalated_at < c.due_at))
        rows = self.conn.execute(
            select(t.handovers)
            .where(and_(c.status == "open", or_(reminder, missed)))
            .order_by(c.due_at, c.id)
            .limit(limit)
        )
        return [Handover(**r._mapping) for r in rows]

    def listing(
        self,
        rep_id: str | None = None,
        statuses: Iterable[str] = (),
        overdue_at: datetime | None = None,
        limit: int = 100,
    ) -> list[Handover]:
        """Handovers, oldest first (the ones waiting longest on top)."""
        c = t.handovers.c
        stmt = select(t.handovers)
        if rep_id is not None:
            stmt = stmt.where(c.rep_id == rep_id)
        wanted = list(statuses)
        if wanted:
            stmt = stmt.where(c.status.in_(wanted))
        if overdue_at is not None:
            stmt = stmt.where(and_(c.status == "open", c.due_at < overdue_at))
        rows = self.conn.execute(stmt.order_by(c.created_at, c.id).limit(limit))
        return [Handover(**r._mapping) for r in rows]

    def add_disposition(self, **values: Any) -> int:
        return int(
            self.conn.execute(
                t.dispositions.insert().values(**values).returning(t.dispositions.c.id)
            ).scalar_one()
        )

    def dispositions(self, handover_id: int | None = None) -> list[Disposition]:
        c = t.dispositions.c
        stmt = select(t.dispositions)
        if handover_id is not None:
            stmt = stmt.where(c.handover_id == handover_id)
        rows = self.conn.execute(stmt.order_by(c.id))
        return [Disposition(**r._mapping) for r in rows]
