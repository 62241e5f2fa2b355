"""Lead attributes set by time: the newest value of each attribute wins, whatever
order the messages arrive in.

Each attribute carries the time its source said it (``times``: attribute ->
``stamp(instant)``). A value comes in with its message's time and replaces the
held one only if it is at least as new; a value held without a time (from a file
import) is replaced by any timed one. Merging two leads keeps, per attribute,
the newer of the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from leadgate.domain.events import to_utc

Traits = tuple[dict[str, Any], dict[str, str]]


def stamp(instant: datetime) -> str:
    """A fixed-width UTC text form, so stamps compare correctly as strings."""
    return to_utc(instant).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def apply_traits(
    attributes: Mapping[str, Any],
    times: Mapping[str, str],
    incoming: Mapping[str, Any],
    at: datetime,
) -> Traits:
    """``attributes`` and ``times`` after ``incoming`` (said at ``at``); None values are
    ignored (a source that does not know a value does not erase it)."""
    out, out_times = dict(attributes), dict(times)
    when = stamp(at)
    for key, value in incoming.items():
        if value is None:
            continue
        held = out_times.get(key)
        if key not in out or held is None or when >= held:
            out[key] = value
            out_times[key] = when
    return out, out_times


def combine(
    keep: Mapping[str, Any],
    keep_times: Mapping[str, str],
    other: Mapping[str, Any],
    other_times: Mapping[str, str],
) -> Traits:
    """Two leads' attributes as one: per attribute the newer value; on a tie, or when
    neither has a time, ``keep``'s."""
    out, out_times = dict(keep), dict(keep_times)
    for key, value in other.items():
        theirs, ours = other_times.get(key), out_times.get(key)
        if key not in out or (theirs is not None and (ours is None or theirs > ours)):
            out[key] = value
            if theirs is not None:
                out_times[key] = theirs
    return out, out_times
