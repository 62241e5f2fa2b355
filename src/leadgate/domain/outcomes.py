"""Outcomes: what sales (or the books) later said about a lead, good or bad.

An outcome comes from a disposition on a handover (won, lost, rejected, ...), from an
imported file (lead id or email, outcome, date, reason) or from a column of a source
file (X Education's ``Converted``). Learning and backtests only ever look at what was
known about the lead *before* the outcome: ``Outcome.at`` bounds the features.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

GOOD_TEXT = frozenset({"1", "true", "yes", "y", "won", "good", "converted", "opportunity"})
BAD_TEXT = frozenset({"0", "false", "no", "n", "lost", "bad", "not converted", "rejected"})

# Dispositions (domain.lifecycle outcomes) that say something about lead quality.
GOOD_DISPOSITIONS = frozenset({"accepted", "opportunity", "won"})
BAD_DISPOSITIONS = frozenset({"rejected", "lost"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """One lead's outcome. ``at`` is when it became known (None: unknown)."""

    lead_id: str
    good: bool
    at: datetime | None = None
    reason: str | None = None
    source: str = "file"  # "disposition", "import", "file"


def parse_good(value: object, where: str = "outcome") -> bool:
    """good/bad, won/lost, yes/no, 1/0, true/false (any case) -> bool; else ValueError."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if value in (0, 1):
            return bool(value)
        raise ValueError(f"{where}: outcome {value!r} is not 0 or 1")
    text = str(value).strip().lower()
    if text in GOOD_TEXT:
        return True
    if text in BAD_TEXT:
        return False
    raise ValueError(
        f"{where}: outcome {value!r} is not one of good/bad, won/lost, yes/no, 1/0, true/false"
    )


def from_disposition(outcome: str) -> bool | None:
    """What a disposition says about the lead: True good, False bad, None not yet known."""
    if outcome in GOOD_DISPOSITIONS:
        return True
    if outcome in BAD_DISPOSITIONS:
        return False
    return None
