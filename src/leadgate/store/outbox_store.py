"""The outbox and webhook subscriptions, on one connection (the caller owns the transaction).

Writers call ``enqueue`` inside the transaction of the change they report, so the
notification exists exactly when the change does. Workers (notify/worker.py) take
rows in three short steps, never holding a transaction while they talk to the
network:

1. ``claim`` in its own transaction: the due rows, locked with ``FOR UPDATE SKIP
   LOCKED`` on PostgreSQL (so two workers never take the same row), or under
   SQLite's one writer (the engine begins every transaction ``IMMEDIATE``); each
   gets ``claimed_by`` and a lease, and its attempt is counted. The lease end is
   also written to ``next_attempt_at``, so a row whose worker died is simply due
   again when the lease runs out.
2. deliver, outside any transaction;
3. ``record`` the outcomes in one more transaction.

The idempotency key of a row never changes, so every repeat carries the same key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, RowMapping, and_, bindparam, delete, func, select, true, update

from leadgate.store import tables as t
from leadgate.store.repository import insert_ignore

Channel = Literal["webhook", "email", "chat"]
Status = Literal["pending", "delivered", "dead"]
CHANNELS: tuple[Channel, ...] = ("webhook", "email", "chat")
STATUSES: tuple[Status, ...] = ("pending", "delivered", "dead")


@dataclass(frozen=True, slots=True)
class Subscription:
    """Someone who wants lifecycle events POSTed to ``url``, signed with ``secret``."""

    id: int
    url: str
    secret: str = field(repr=False)
    events: tuple[str, ...]
    active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A notification to write to the outbox."""

    channel: Channel
    target: str  # a URL (webhook, chat) or an email address
    event: str
    payload: dict[str, Any]
    idempotency_key: str
    subscription_id: int | None = None  # webhooks: whose secret signs it
    lead_id: str | None = None  # whom it is about: erased with the lead


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One row of the outbox, as stored."""

    id: int
    channel: Channel
    target: str
    subscription_id: int | None
    event: str
    payload: dict[str, Any]
    idempotency_key: str
    status: Status
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    claimed_by: str | None
    claimed_until: datetime | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message taken by a worker, with the secret that signs it (webhooks whose
    subscription is still active; None otherwise)."""

    message: OutboxMessage
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one claimed message: delivered, to be tried again at
    ``next_attempt_at``, or dead (no more tries)."""

    id: int
    status: Status
    error: str | None = None
    next_attempt_at: datetime | None = None


def _message(row: RowMapping) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        channel=row["channel"],
        target=row["target"],
        subscription_id=row["subscription_id"],
        event=row["event"],
        payload=dict(row["payload"]),
        idempotency_key=row["idempotency_key"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        claimed_by=row["claimed_by"],
        claimed_until=row["claimed_until"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
    )


def _subscription(row: RowMapping) -> Subscription:
    return Subscription(
        id=row["id"],
        url=row["url"],
        secret=row["secret"],
        events=tuple(row["events"]),
        active=bool(row["active"]),
        created_at=row["created_at"],
    )


class OutboxStore:
    """Reads and writes of the outbox and the subscriptions, on ``conn``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # Subscriptions

    def add_subscription(
        self, url: str, secret: str, events: Sequence[str], at: datetime
    ) -> Subscription:
        row = (
            self.conn.execute(
                t.webhook_subscriptions.insert()
                .values(url=url, secret=secret, events=list(events), active=True, created_at=at)
                .returning(*t.webhook_subscriptions.c)
            )
            .mappings()
            .one()
        )
        return _subscription(row)

    def subscriptions(self, include_removed: bool = False) -> list[Subscription]:
        """Subscriptions by id; removed ones only when asked."""
        c = t.webhook_subscriptions.c
        query = select(t.webhook_subscriptions).order_by(c.id)
        if not include_removed:
            query = query.where(c.active == true())
        return [_subscription(r) for r in self.conn.execute(query).mappings()]

    def subscriptions_for(self, event: str) -> list[Subscription]:
        """Active subscriptions that want ``event`` (filtered here: JSON list
        containment is spelt differently on each database, and there are few)."""
        return [s for s in self.subscriptions() if event in s.events]

    def remove_subscription(self, subscription_id: int) -> bool:
        """Mark a subscription removed (True if it was active). The row stays, so the
        outbox rows that name it keep their meaning; its pending messages die when
        a worker reaches them."""
        c = t.webhook_subscriptions.c
        result = self.conn.execute(
            update(t.webhook_subscriptions)
            .where(and_(c.id == subscription_id, c.active == true()))
            .values(active=False)
        )
        return result.rowcount > 0

    # Writing

    def enqueue(self, messages: Iterable[NewMessage], at: datetime) -> int:
        """Write messages, due at ``at``; one whose idempotency key is already in the
        outbox is skipped (a repeated transaction does not notify twice). Returns
        how many were written."""
        written = 0
        for m in messages:
            values = {
                "channel": m.channel,
                "target": m.target,
                "subscription_id": m.subscription_id,
                "lead_id": m.lead_id,
                "event": m.event,
                "payload": m.payload,
                "idempotency_key": m.idempotency_key,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": at,
                "created_at": at,
            }
            stmt = insert_ignore(self.conn, t.outbox, ["idempotency_key"]).values(values)
            # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT.
            written += self.conn.execute(stmt.returning(t.outbox.c.id)).first() is not None
        return written

    # Claiming and recording (workers)

    def claim(
        self, worker_id: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[Claimed]:
        """Take up to ``limit`` due messages (oldest first) for ``worker_id`` until
        ``lease_until``, counting one attempt each. Commit right after: the rows
        stay locked on PostgreSQL until then."""
        c = t.outbox.c
        query = (
            select(t.outbox)
            .where(and_(c.status == "pending", c.next_attempt_at <= now))
            .order_by(c.id)
            .limit(limit)
        )
        if self.conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(self.conn.execute(query).mappings())
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        self.conn.execute(
            update(t.outbox)
            .where(c.id.in_(ids))
            .values(
                claimed_by=worker_id,
                claimed_until=lease_until,
                next_attempt_at=lease_until,
                attempts=c.attempts + 1,
            )
        )
        secrets = self._secrets({r["subscription_id"] for r in rows} - {None})
        claimed = []
        for r in rows:
            message = replace(
                _message(r),
                claimed_by=worker_id,
                claimed_until=lease_until,
                next_attempt_at=lease_until,
                attempts=r["attempts"] + 1,
            )
            secret = (
                None if message.subscription_id is None else secrets.get(message.subscription_id)
            )
            claimed.append(Claimed(message, secret))
        return claimed

    def _secrets(self, subscription_ids: set[int]) -> dict[int, str]:
        if not subscription_ids:
            return {}
        c = t.webhook_subscriptions.c
        rows = self.conn.execute(
            select(c.id, c.secret).where(and_(c.id.in_(subscription_ids), c.active == true()))
        )
        return {row.id: row.secret for row in rows}

    def record(self, outcomes: Sequence[Outcome], worker_id: str, at: datetime) -> int:
        """Store what became of claimed messages; returns how many rows changed.

        A delivery is recorded whoever holds the row now (it did arrive). A failure
        is recorded only while ``worker_id`` still holds the row: if its lease ran
        out, another worker has taken it, and that worker's outcome counts."""
        c = t.outbox.c
        delivered = [{"b_id": o.id} for o in outcomes if o.status == "delivered"]
        failed = [
            {
                "b_id": o.id,
                "b_status": o.status,
                "b_error": o.error,
                "b_next": o.next_attempt_at or at,
            }
            for o in outcomes
            if o.status != "delivered"
        ]
        changed = 0
        if delivered:
            changed += self.conn.execute(
                update(t.outbox)
                .where(and_(c.id == bindparam("b_id"), c.status == "pending"))
                .values(status="delivered", delivered_at=at, claimed_until=None, last_error=None),
                delivered,
            ).rowcount
        if failed:
            changed += self.conn.execute(
                update(t.outbox)
                .where(
                    and_(
                        c.id == bindparam("b_id"),
                        c.status == "pending",
                        c.claimed_by == worker_id,
                    )
                )
                .values(
                    status=bindparam("b_status"),
                    last_error=bindparam("b_error"),
                    next_attempt_at=bindparam("b_next"),
                    claimed_until=None,
                ),
                failed,
            ).rowcount
        return changed

    # Reading and re-driving (operators)

    def message(self, message_id: int) -> OutboxMessage | None:
        row = (
            self.conn.execute(select(t.outbox).where(t.outbox.c.id == message_id))
            .mappings()
            .one_or_none()
        )
        return None if row is None else _message(row)

    def messages(
        self, status: Status | None = None, limit: int = 100, after_id: int = 0
    ) -> list[OutboxMessage]:
        """Messages by id, optionally of one status, one page at a time."""
        c = t.outbox.c
        query = select(t.outbox).where(c.id > after_id).order_by(c.id).limit(limit)
        if status is not None:
            query = query.where(c.status == status)
        return [_message(r) for r in self.conn.execute(query).mappings()]

    def counts(self) -> dict[str, int]:
        """Messages per status (every status present, zero when none)."""
        c = t.outbox.c
        rows = self.conn.execute(select(c.status, func.count()).group_by(c.status))
        found = {status: int(n) for status, n in rows}
        return {status: found.get(status, 0) for status in STATUSES}

    def redrive(self, ids: Sequence[int] | None, now: datetime) -> int:
        """Put dead messages back to pending, due now, with a fresh count of attempts
        and the same idempotency key: the given ids, or every dead one when None.
        Returns how many were dead and are pending again."""
        c = t.outbox.c
        where = c.status == "dead"
        if ids is not None:
            if not ids:
                return 0
            where = and_(where, c.id.in_(list(ids)))
        result = self.conn.execute(
            update(t.outbox)
            .where(where)
            .values(
                status="pending",
                attempts=0,
                next_attempt_at=now,
                claimed_by=None,
                claimed_until=None,
            )
        )
        return result.rowcount

    def purge_delivered(self, before: datetime) -> int:
        """Delete messages delivered before ``before``; pending and dead ones stay.
        Their idempotency keys name one-off happenings (a handover, a stage change at
        a time), so a purged key is never published again."""
        c = t.outbox.c
        result = self.conn.execute(
            delete(t.outbox).where(and_(c.status == "delivered", c.delivered_at < before))
        )
        return result.rowcount
