"""Use case: a worker's periodic work (``leadgate worker`` and ``leadgate serve``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from leadgate.domain.model import ScoringModel
from leadgate.services.handover import FollowUpReport, follow_up_pass
from leadgate.store import transact
from leadgate.store.outbox_store import OutboxStore

KEEP_DELIVERED = timedelta(days=30)  # delivered outbox messages are kept this long


def upkeep(
    engine: Engine,
    model: ScoringModel,
    now: datetime | None = None,
    keep_delivered: timedelta = KEEP_DELIVERED,
) -> tuple[FollowUpReport, int]:
    """Chase overdue handovers (a reminder, then an escalation), then delete outbox
    messages delivered more than ``keep_delivered`` ago; each in its own transaction.
    Returns the follow-up report and how many messages were deleted."""
    moment = now or datetime.now(UTC)
    report = follow_up_pass(engine, model, moment)
    purged = transact(
        engine, lambda conn: OutboxStore(conn).purge_delivered(moment - keep_delivered)
    )
    return report, purged
