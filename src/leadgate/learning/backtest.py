"""Backtest: replay history under a model and measure what its handovers would have been.

A lead is handed over at the first moment its stage, decided after each of its events
at that event's time, reaches the model's handover stage (``model.handover``). Every
event time of a lead is a *checkpoint*: the lead is scored on the events up to it, as
of it. ``reference_checkpoints`` does that with the reference evaluator, one prefix at a
time (the definition; slow); ``learning.replay.fast_checkpoints`` does it in DuckDB for
every lead at once and gives the same checkpoints (a test compares them).

A checkpoint is kept when the lead is not disqualified at it and, for a model that
hands over at SQL, has an intent action within the intent window: only those can hand
the lead over at some threshold. The handover at a threshold is then the first kept
checkpoint whose total reaches it, which gives the threshold sweep without rescoring.

Metrics (``measure``), with outcomes as ``domain.outcomes.Outcome``:

- handovers per week: handovers over the weeks from the first to the last event;
- precision: the share of handovers whose lead turned out good, handed over no later
  than the outcome's date (a handover after a lead converted did not help);
- recall: the share of good leads handed over (no later than the outcome's date);
- median days from the first event to the handover, and from the intent action (the
  earliest within the intent window before the handover) to the handover;
- good leads still nurturing when they converted: a dated good outcome with no
  handover at or before it.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from leadgate.domain.events import Event, Lead
from leadgate.domain.model import ScoringModel
from leadgate.domain.outcomes import Outcome
from leadgate.domain.scoring import evaluate, prepare_events

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAR = datetime(9999, 1, 1, tzinfo=UTC)
DAY_US = 86_400_000_000
WEEK_US = 7 * DAY_US
SWEEP_STEPS = 25


def to_us(at: datetime) -> int:
    """Microseconds since the epoch (UTC), exactly."""
    return (at - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


@dataclass
class Checkpoints:
    """Kept checkpoints of one model over one history, sorted by (lead, at).

    ``lead``: index into ``lead_ids``; ``at``: microseconds; ``total``: the score there;
    ``intent``: an intent action within the window there. ``intents``: per lead index,
    the sorted times of its intent actions; ``first_touch``: per lead index, the time of
    its first event (absent: no events).
    """

    model: ScoringModel
    lead_ids: list[str]
    lead: npt.NDArray[np.int64]
    at: npt.NDArray[np.int64]
    total: npt.NDArray[np.float64]
    intent: npt.NDArray[np.bool_]
    intents: dict[int, list[int]] = field(default_factory=dict)
    first_touch: dict[int, int] = field(default_factory=dict)
    span: tuple[int, int] | None = None  # first and last event time of the history

    def handovers(self, threshold: float | None = None) -> dict[int, int]:
        """Lead index -> time of its first handover, at the model's handover threshold or
        at ``threshold`` instead."""
        model = self.model
        t = model.thresholds
        if model.handover == "sql":
            level = t.sql if threshold is None else threshold
            mask = self.intent & (self.total >= level)
        else:
            level = t.mql if threshold is None else threshold
            mask = (self.total >= level) | (self.intent & (self.total >= t.sql))
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            return {}
        leads = self.lead[rows]
        first = rows[np.concatenate(([True], leads[1:] != leads[:-1]))]
        return dict(zip(self.lead[first].tolist(), self.at[first].tolist(), strict=True))


def _arrays(
    rows: Sequence[tuple[int, int, float, bool]],
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.bool_]
]:
    return (
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.float64),
        np.array([r[3] for r in rows], dtype=np.bool_),
    )


def is_intent(model: ScoringModel, event: Event) -> bool:
    return any(m.matches(event) for m in model.intent_actions)


def reference_checkpoints(
    model: ScoringModel,
    leads: Mapping[str, Lead],
    events: Mapping[str, Sequence[Event]],
) -> Checkpoints:
    """Every lead's kept checkpoints, each by the reference evaluator on its prefix."""
    lead_ids = sorted(set(leads) | set(events))
    rows: list[tuple[int, int, float, bool]] = []
    intents: dict[int, list[int]] = {}
    first_touch: dict[int, int] = {}
    lo: int | None = None
    hi: int | None = None
    for n, lead_id in enumerate(lead_ids):
        lead = leads.get(lead_id) or Lead(lead_id, {})
        history = prepare_events(events.get(lead_id, ()), FAR)
        if not history:
            continue
        times = sorted({to_us(e.timestamp) for e in history})
        first_touch[n] = times[0]
        lo = times[0] if lo is None else min(lo, times[0])
        hi = times[-1] if hi is None else max(hi, times[-1])
        own = sorted({to_us(e.timestamp) for e in history if is_intent(model, e)})
        if own:
            intents[n] = own
        for us in times:
            breakdown = evaluate(model, lead, history, from_us(us))
            if breakdown.disqualified is not None:
                continue
            intent = breakdown.intent is not None
            if model.handover == "sql" and not intent:
                continue
            rows.append((n, us, breakdown.total, intent))
    span = None if lo is None or hi is None else (lo, hi)
    return Checkpoints(model, lead_ids, *_arrays(rows), intents, first_touch, span)


@dataclass(frozen=True)
class Labels:
    """Outcomes by lead index: good or not, and when known (None: undated)."""

    good: dict[int, int | None]  # good leads -> outcome time
    bad: frozenset[int]
    unmatched: int  # outcomes of leads not in the history

    @staticmethod
    def of(lead_ids: Sequence[str], outcomes: Mapping[str, Outcome]) -> Labels:
        index = {lead_id: n for n, lead_id in enumerate(lead_ids)}
        good: dict[int, int | None] = {}
        bad: set[int] = set()
        unmatched = 0
        for lead_id, outcome in outcomes.items():
            n = index.get(lead_id)
            if n is None:
                unmatched += 1
            elif outcome.good:
                good[n] = None if outcome.at is None else to_us(outcome.at)
            else:
                bad.add(n)
        return Labels(good, frozenset(bad), unmatched)


def _on_time(handed: Mapping[int, int], labels: Labels) -> int:
    """Good leads handed over no later than their outcome."""
    return sum(
        1 for n, due in labels.good.items() if n in handed and (due is None or handed[n] <= due)
    )


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _weeks(span: tuple[int, int] | None) -> float:
    """Weeks of history (at least a day's worth); 0 when every event has one time
    (an export without timestamps): no rate per week then."""
    if span is None or span[1] == span[0]:
        return 0.0
    return max((span[1] - span[0]) / WEEK_US, 1 / 7)


def _median_days(values: list[int]) -> float | None:
    return None if not values else round(statistics.median(values) / DAY_US, 3)


def _intent_delay(cp: Checkpoints, n: int, at: int) -> int | None:
    """Time from the earliest intent action within the window before ``at`` to ``at``."""
    own = cp.intents.get(n)
    if not own:
        return None
    window = cp.model.intent_window // timedelta(microseconds=1)
    i = bisect.bisect_left(own, at - window)
    return at - own[i] if i < len(own) and own[i] <= at else None


def measure(cp: Checkpoints, labels: Labels) -> dict[str, Any]:
    """The metrics of one model over one history, at the model's own thresholds."""
    handed = cp.handovers()
    weeks = _weeks(cp.span)
    on_time = _on_time(handed, labels)
    dated = {n: due for n, due in labels.good.items() if due is not None}
    nurturing = sum(1 for n, due in dated.items() if not (n in handed and handed[n] <= due))
    after = sum(1 for n, due in dated.items() if n in handed and handed[n] > due)
    touch = [at - cp.first_touch[n] for n, at in handed.items() if n in cp.first_touch]
    delays = [d for n, at in handed.items() if (d := _intent_delay(cp, n, at)) is not None]
    weekly: dict[str, int] = {}
    if cp.span is not None:
        for at in handed.values():
            week = (at - cp.span[0]) // WEEK_US
            key = from_us(cp.span[0] + week * WEEK_US).date().isoformat()
            weekly[key] = weekly.get(key, 0) + 1
    t = cp.model.thresholds
    return {
        "model": f"{cp.model.name}@{cp.model.version}",
        "handover_stage": cp.model.handover,
        "threshold": t.sql if cp.model.handover == "sql" else t.mql,
        "leads": len(cp.lead_ids),
        "good_leads": len(labels.good),
        "bad_leads": len(labels.bad),
        "handovers": len(handed),
        "weeks": round(weeks, 3),
        "handovers_per_week": None if weeks == 0 else round(len(handed) / weeks, 3),
        "precision": _ratio(on_time, len(handed)),
        "recall": _ratio(on_time, len(labels.good)),
        "median_days_first_touch_to_handover": _median_days(touch),
        "median_days_intent_to_handover": _median_days(delays),
        "good_nurturing_at_conversion": nurturing,
        "good_handed_over_after_conversion": after,
        "weekly_handovers": dict(sorted(weekly.items())),
    }


def sweep_levels(*replays: Checkpoints, steps: int = SWEEP_STEPS) -> list[float]:
    """Thresholds from 0 to twice the highest handover threshold of ``replays``, in
    round steps (1, 2 or 5 times a power of ten), at most ``steps`` + 1 of them."""
    own = [
        cp.model.thresholds.sql if cp.model.handover == "sql" else cp.model.thresholds.mql
        for cp in replays
    ]
    top = max([2 * max(own, default=0.0), 1.0])
    step = next(
        s * 10.0**e for e in range(-3, 9) for s in (1, 2, 5) if top / (s * 10.0**e) <= steps
    )
    return [round(i * step, 6) for i in range(int(top // step) + 1)]


def sweep(cp: Checkpoints, labels: Labels, levels: Sequence[float]) -> list[dict[str, Any]]:
    """Precision and recall against the handover threshold (data for a chart)."""
    weeks = _weeks(cp.span)
    out = []
    for level in levels:
        handed = cp.handovers(level)
        on_time = _on_time(handed, labels)
        out.append(
            {
                "threshold": level,
                "handovers": len(handed),
                "handovers_per_week": None if weeks == 0 else round(len(handed) / weeks, 3),
                "precision": _ratio(on_time, len(handed)),
                "recall": _ratio(on_time, len(labels.good)),
            }
        )
    return out


def compare(
    current: Checkpoints, draft: Checkpoints, outcomes: Mapping[str, Outcome]
) -> dict[str, Any]:
    """Both models side by side: their metrics and sweeps, and the leads handed over by
    only one of them. Both must cover the same history."""
    if current.lead_ids != draft.lead_ids:
        raise ValueError("the two replays cover different leads")
    labels = Labels.of(current.lead_ids, outcomes)
    levels = sweep_levels(current, draft)
    a, b = current.handovers(), draft.handovers()
    return {
        "history": {
            "leads": len(current.lead_ids),
            "from": None if current.span is None else from_us(current.span[0]).isoformat(),
            "to": None if current.span is None else from_us(current.span[1]).isoformat(),
            "outcomes_unmatched": labels.unmatched,
        },
        "current": measure(current, labels) | {"sweep": sweep(current, labels, levels)},
        "draft": measure(draft, labels) | {"sweep": sweep(draft, labels, levels)},
        "changes": {
            "only_current": len(set(a) - set(b)),
            "only_draft": len(set(b) - set(a)),
            "earlier_with_draft": sum(1 for n in set(a) & set(b) if b[n] < a[n]),
            "later_with_draft": sum(1 for n in set(a) & set(b) if b[n] > a[n]),
        },
    }


def handover_times(cp: Checkpoints) -> dict[str, datetime]:
    """Lead id -> first handover time, at the model's thresholds."""
    return {cp.lead_ids[n]: from_us(at) for n, at in cp.handovers().items()}
