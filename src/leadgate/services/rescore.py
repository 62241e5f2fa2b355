"""Use case: decide every stored lead again, after a model change or as time passes.

Scores decay with time, so a stored score is "as of its last evaluation".
``rescore`` re-evaluates every lead as of one moment through the same path as
live ingest (``redecide_many``), a chunk of leads per transaction: scores and
ledgers are brought up to date, and a lead moves to a further stage if the
(new) model says so; it never moves back. ``leadgate rescore`` runs it once;
``leadgate serve`` runs it periodically so listed scores show their decay.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import Connection, Engine

from leadgate.domain.model import ScoringModel
from leadgate.services.ingest import redecide_many
from leadgate.store import transact
from leadgate.store.records import StageChange
from leadgate.store.repository import Repository

CHUNK = 500


@dataclass
class RescoreSummary:
    leads: int = 0
    rescored: int = 0  # leads whose score changed
    moved: Counter[str] = field(default_factory=Counter)  # stage changes by new stage
    seconds: float = 0.0


def rescore(
    engine: Engine,
    model: ScoringModel,
    at: datetime | None = None,
    chunk: int = CHUNK,
    on_progress: Callable[[RescoreSummary], None] | None = None,
    handover_policy: str = "all",
) -> RescoreSummary:
    """Re-evaluate every lead as of ``at`` (default now) under ``model``. Leads that
    reach the handover stage are handed over as ``handover_policy`` says (after a
    publish, ``services.models`` passes the publisher's choice)."""
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    moment = at or datetime.now(UTC)
    summary = RescoreSummary()
    started = time.perf_counter()
    after = ""
    while ids := _page(engine, after, chunk):
        rescored, changes = transact(
            engine, partial(_rescore_chunk, model, ids, moment, handover_policy)
        )
        summary.rescored += rescored
        summary.leads += len(ids)
        summary.moved.update(c.to_stage for c in changes)
        after = ids[-1]
        if on_progress is not None:
            on_progress(summary)
    summary.seconds = time.perf_counter() - started
    return summary


def _page(engine: Engine, after: str, limit: int) -> list[str]:
    with engine.connect() as conn:
        return Repository(conn).lead_ids_after(after, limit)


def _rescore_chunk(
    model: ScoringModel, ids: list[str], at: datetime, policy: str, conn: Connection
) -> tuple[int, list[StageChange]]:
    """Decide ``ids`` again; how many scores changed, and the stage changes."""
    repo = Repository(conn)
    changes: list[StageChange] = []
    before = repo.scores_of(ids)
    outcomes = redecide_many(repo, model, ids, at, changes, policy)
    changed = sum(1 for i, o in outcomes.items() if abs(o.score - before.get(i, 0.0)) > 1e-9)
    return changed, changes
