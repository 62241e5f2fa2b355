"""A lead's life after the model: handover to sales, what sales says, and back.

    new -> nurturing -> mql -> sql -> handed_over -> accepted -> opportunity -> won | lost
                                          \\-> rejected -> nurturing (recycled; reason kept)
    any -> disqualified

The model decides up to ``sql`` (``services/ingest.py`` moves leads forward only);
the stages after it are set by the handover and by sales' dispositions. A
handover opens once per qualification cycle: when a lead first reaches the
model's handover stage (sql by default, mql if the model says so). A rejection
sends the lead back to nurturing and closes the cycle, so it can qualify again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from leadgate.domain.scoring import Breakdown
from leadgate.domain.stages import Decision

MODEL_STAGES = ("new", "nurturing", "mql", "sql")
SALES_STAGES = ("handed_over", "accepted", "opportunity", "won", "lost")
DISQUALIFIED = "disqualified"
STAGES = (*MODEL_STAGES, *SALES_STAGES, DISQUALIFIED)

HANDED_OVER = "handed_over"
OUTCOMES = ("contacted", "accepted", "rejected", "opportunity", "won", "lost")
REJECT_REASONS = (
    "not_a_fit",
    "not_ready",
    "no_budget",
    "spam",
    "competitor",
    "wrong_contact",
    "other",
)

# Handover status -> the outcomes sales may record next. ``open`` is assigned and
# waiting for first contact; rejected, won and lost close the handover.
NEXT_OUTCOMES: Mapping[str, tuple[str, ...]] = {
    "open": ("contacted", "accepted", "rejected"),
    "contacted": ("accepted", "rejected", "contacted"),
    "accepted": ("opportunity", "won", "lost", "rejected"),
    "opportunity": ("won", "lost"),
    "rejected": (),
    "won": (),
    "lost": (),
}
CLOSED = frozenset(s for s, nxt in NEXT_OUTCOMES.items() if not nxt)

# The lead's stage after an outcome; None: the stage does not change.
STAGE_AFTER: Mapping[str, str | None] = {
    "contacted": None,
    "accepted": "accepted",
    "rejected": "nurturing",
    "opportunity": "opportunity",
    "won": "won",
    "lost": "lost",
}

_RANK = {stage: rank for rank, stage in enumerate(MODEL_STAGES)}


def starts_handover(from_stage: str | None, to_stage: str, handover_stage: str) -> bool:
    """Whether a model stage change takes a lead to (or past) the handover stage."""
    target = _RANK[handover_stage]
    before = _RANK.get(from_stage or "new", 0)
    return to_stage in _RANK and _RANK[to_stage] >= target > before


def past(stage: str, handover_stage: str) -> bool:
    """Whether a model stage is at (or past) the handover stage (sales stages are not)."""
    return stage in _RANK and _RANK[stage] >= _RANK[handover_stage]


def check_outcome(status: str, outcome: str, reason: str | None) -> str | None:
    """Why ``outcome`` cannot be recorded on a handover in ``status``; None if it can."""
    if outcome not in OUTCOMES:
        return f"unknown outcome {outcome!r} (known: {', '.join(OUTCOMES)})"
    if outcome == "rejected":
        if reason is None:
            return f"a rejection needs a reason, one of: {', '.join(REJECT_REASONS)}"
        if reason not in REJECT_REASONS:
            return f"unknown reason {reason!r} (known: {', '.join(REJECT_REASONS)})"
    elif reason is not None:
        return f"a reason is for rejections only, not for {outcome} (use the note)"
    allowed = NEXT_OUTCOMES.get(status, ())
    if outcome not in allowed:
        if not allowed:
            return f"the handover is closed ({status})"
        return f"a handover that is {status} can be marked {', '.join(allowed)}, not {outcome}"
    return None


def after_recycle(
    decision: Decision, breakdown: Breakdown, mql_threshold: float, recycled_at: datetime | None
) -> Decision:
    """The model's decision for a lead that sales or a person sent back at
    ``recycled_at``: it qualifies again only on evidence newer than that. SQL needs an
    intent action after it (the quote that was rejected does not count twice), and
    MQL an event after it; otherwise the lead stays where it was put."""
    if recycled_at is None or decision.stage not in ("mql", "sql"):
        return decision
    intent = breakdown.intent
    if decision.stage == "sql" and intent is not None and intent.at > recycled_at:
        return decision
    last = breakdown.last_event_at
    if breakdown.total >= mql_threshold and last is not None and last > recycled_at:
        cause = (
            f"score {breakdown.total:.1f} >= MQL threshold {mql_threshold:g} with activity "
            f"since it was sent back on {recycled_at:%Y-%m-%d}"
        )
        if decision.stage == "sql":
            cause += "; no new intent action since then"
        return replace(decision, stage="mql", cause=cause, threshold=mql_threshold)
    return replace(
        decision,
        stage="nurturing",
        cause=f"sent back on {recycled_at:%Y-%m-%d}: no new activity since",
        threshold=None,
    )


def recycled(from_stage: str | None, to_stage: str) -> bool:
    """Whether a stage change sent a lead back (a rejection or a person's override)."""
    rank = {stage: i for i, stage in enumerate((*MODEL_STAGES, *SALES_STAGES))}
    return (
        from_stage in rank
        and to_stage in rank
        and rank[to_stage] < rank[from_stage or "new"]
        and to_stage in MODEL_STAGES
    )
