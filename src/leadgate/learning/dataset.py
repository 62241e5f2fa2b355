"""Labelled history: each lead with an outcome, as it was known before that outcome.

``examples`` turns leads, their events and their outcomes into ``Example``s: the lead's
attributes, the events strictly before the outcome (all of them when the outcome has no
date) and the base model's breakdown as of that moment. Rule reports, learning and
backtests all start from here, so none of them can look past an outcome.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from leadgate.domain.events import Event, Lead
from leadgate.domain.model import ScoringModel
from leadgate.domain.outcomes import Outcome
from leadgate.domain.scoring import Breakdown, evaluate


@dataclass(frozen=True, slots=True)
class Example:
    lead: Lead
    events: tuple[Event, ...]  # known before the outcome, in time order
    as_of: datetime  # when the features are taken
    good: bool
    breakdown: Breakdown  # the base model's, as of ``as_of``


def decision_time(outcome: Outcome, end: datetime) -> datetime:
    """When to take a lead's features: its outcome's date, or ``end`` if later or unknown."""
    return outcome.at if outcome.at is not None and outcome.at < end else end


def example(
    model: ScoringModel, lead: Lead, events: Sequence[Event], outcome: Outcome, end: datetime
) -> Example:
    as_of = decision_time(outcome, end)
    # An outcome dated by ``end``: only what came strictly before it; else all up to ``end``.
    strict = outcome.at is not None and outcome.at <= end
    kept = (e for e in events if e.timestamp < as_of or (not strict and e.timestamp == as_of))
    before = tuple(sorted(kept, key=lambda e: (e.timestamp, e.id)))
    return Example(lead, before, as_of, outcome.good, evaluate(model, lead, before, as_of))


def examples(
    model: ScoringModel,
    leads: Mapping[str, Lead],
    events: Mapping[str, Sequence[Event]],
    outcomes: Mapping[str, Outcome],
    end: datetime,
    unlisted_bad: bool = False,
) -> Iterator[Example]:
    """One example per lead with an outcome (sorted by lead id).

    ``unlisted_bad``: leads without an outcome count as bad (a closed-deals file
    lists only the wins); otherwise they are left out.
    """
    ids = set(outcomes) | (set(leads) | set(events) if unlisted_bad else set())
    for lead_id in sorted(ids):
        outcome = outcomes.get(lead_id) or Outcome(lead_id, False, None, None, "unlisted")
        lead = leads.get(lead_id) or Lead(lead_id, {})
        yield example(model, lead, events.get(lead_id, ()), outcome, end)
