"""The reference evaluator: what a score is.

``evaluate(model, lead, events, as_of)`` is pure and deterministic. Events
after ``as_of`` are ignored; the rest are put in (timestamp, id) order first,
so the result does not depend on the order they arrive in. A repeated event id
counts once. Points are awarded in time order (caps take the earliest events),
then engagement points decay by the age of the event that earned them:
``points * 0.5 ** (age / half_life)``. Fit points do not decay.

Any faster path must give the same numbers (tests compare them).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from leadgate.domain.conditions import format_duration
from leadgate.domain.events import Event, Lead, derived_attributes, lookup, to_utc
from leadgate.domain.model import (
    TEXT_PROPERTIES,
    Cap,
    CountRule,
    Disqualifier,
    EventRule,
    FitRule,
    GapRule,
    Match,
    RatioRule,
    Rule,
    ScoringModel,
    written_fields,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Award:
    """Points one event earned for one rule: raw (after caps) and after decay."""

    event_id: str
    at: datetime
    raw: float
    points: float


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule_id: str
    kind: str  # event, count, ratio, return_after_gap, fit
    label: str
    group: str | None
    points: float
    awards: tuple[Award, ...] = ()
    matched: int = 0  # events that matched (within the window)
    capped: bool = False
    note: str = ""

    @property
    def raw(self) -> float:
        return sum(a.raw for a in self.awards)


@dataclass(frozen=True, slots=True)
class Disqualification:
    rule_id: str
    reason: str
    label: str
    event_id: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class IntentHit:
    event_id: str
    event_type: str
    at: datetime


@dataclass(frozen=True)
class Breakdown:
    lead_id: str
    as_of: datetime
    model_name: str
    model_version: str
    fit: float
    engagement: float
    groups: Mapping[str, float]
    rules: tuple[RuleResult, ...]
    disqualified: Disqualification | None
    intent: IntentHit | None
    events_seen: int
    last_event_at: datetime | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.fit + self.engagement


def decay_factor(age: timedelta, half_life: timedelta | None) -> float:
    if half_life is None:
        return 1.0
    return math.pow(0.5, age.total_seconds() / half_life.total_seconds())


def prepare_events(events: Iterable[Event], as_of: datetime) -> list[Event]:
    """Events up to ``as_of``, one per id, in (timestamp, id) order, with UTC timestamps."""
    chosen: dict[str, Event] = {}
    for event in events:
        if event.timestamp.tzinfo is not UTC:
            # Same-zone datetimes subtract as wall-clock times: move to UTC instants.
            event = replace(event, timestamp=to_utc(event.timestamp))
        if event.timestamp > as_of:
            continue
        held = chosen.get(event.id)
        if held is None or _tiebreak(event) < _tiebreak(held):
            chosen[event.id] = event
    return sorted(chosen.values(), key=Event.sort_key)


def _tiebreak(event: Event) -> tuple[datetime, str, str]:
    return (event.timestamp, event.type, repr(sorted(event.properties.items())))


def evaluate(
    model: ScoringModel, lead: Lead, events: Iterable[Event], as_of: datetime
) -> Breakdown:
    """Score one lead as of a moment. See the module docstring for the semantics."""
    as_of = to_utc(as_of)
    ordered = prepare_events(events, as_of)
    by_type: dict[str, list[Event]] = defaultdict(list)
    for event in ordered:
        by_type[event.type].append(event)
    attributes = derived_attributes(lead.attributes)

    results: list[RuleResult] = [_fit(rule, attributes) for rule in model.fit]
    results += [_rule(rule, by_type, as_of) for rule in model.rules]

    fit = sum(r.points for r in results if r.kind == "fit")
    engagement = sum(r.points for r in results if r.kind != "fit")
    groups: dict[str, float] = {"fit": fit, "engagement": engagement}
    for name in model.groups:
        groups[name] = sum(r.points for r in results if r.group == name)
    return Breakdown(
        lead_id=lead.id,
        as_of=as_of,
        model_name=model.name,
        model_version=model.version,
        fit=fit,
        engagement=engagement,
        groups=groups,
        rules=tuple(results),
        disqualified=_disqualify(model.disqualifiers, attributes, ordered),
        intent=_intent(model, ordered, as_of),
        events_seen=len(ordered),
        last_event_at=ordered[-1].timestamp if ordered else None,
        attributes=attributes,
    )


def _fit(rule: FitRule, attributes: Mapping[str, Any]) -> RuleResult:
    hit = all(c.holds(attributes) for c in rule.where)
    return RuleResult(
        rule.id, "fit", rule.label, rule.group, rule.points if hit else 0.0, matched=int(hit)
    )


def _matching(match: Match, by_type: Mapping[str, Sequence[Event]]) -> list[Event]:
    events = by_type.get(match.event, ())
    if not match.where or not events:
        return list(events)
    where = match.where
    if len(where) == 1:
        holds = where[0].holds
        return [e for e in events if holds(e.properties)]
    return [e for e in events if all(c.holds(e.properties) for c in where)]


def _in_window(events: list[Event], window: timedelta | None, as_of: datetime) -> list[Event]:
    if window is None:
        return events
    return [e for e in events if as_of - e.timestamp <= window]


def _rule(rule: Rule, by_type: Mapping[str, Sequence[Event]], as_of: datetime) -> RuleResult:
    if isinstance(rule, EventRule):
        return _event_rule(rule, by_type, as_of)
    if isinstance(rule, CountRule):
        return _count_rule(rule, by_type, as_of)
    if isinstance(rule, RatioRule):
        return _ratio_rule(rule, by_type, as_of)
    return _gap_rule(rule, by_type, as_of)


class _CapState:
    """Tracks how much of a cap is used; awards partial points when a cap is reached."""

    def __init__(self, cap: Cap | None) -> None:
        self.cap = cap
        self.used = 0.0
        self.period_used: dict[int, float] = defaultdict(float)
        self.capped = False
        self.total_reached = False
        self.period_reached = False

    def describe(self) -> str:
        """``capped at 20 in total``, ``capped at 4 per 1d``: the limits that were reached."""
        if not self.capped or self.cap is None:
            return ""
        parts = []
        if self.total_reached:
            parts.append(f"{self.cap.total:g} in total")
        if self.period_reached and self.cap.period is not None:
            parts.append(f"{self.cap.period_max:g} per {format_duration(self.cap.period)}")
        return "capped at " + " and ".join(parts)

    def take(self, points: float, at: datetime) -> float:
        if self.cap is None:
            return points
        size = abs(points)
        bucket = 0
        if self.cap.period is not None and self.cap.period_max is not None:
            bucket = int((at - EPOCH).total_seconds() // self.cap.period.total_seconds())
            room = max(0.0, self.cap.period_max - self.period_used[bucket])
            self.period_reached |= room < size
            size = min(size, room)
        if self.cap.total is not None:
            room = max(0.0, self.cap.total - self.used)
            self.total_reached |= room < size
            size = min(size, room)
        if size < abs(points):
            self.capped = True
        self.used += size
        self.period_used[bucket] += size
        return math.copysign(size, points)


def _award(event: Event, raw: float, as_of: datetime, half_life: timedelta | None) -> Award:
    return Award(
        event.id, event.timestamp, raw, raw * decay_factor(as_of - event.timestamp, half_life)
    )


def _finish(
    rule: Rule, kind: str, awards: list[Award], matched: int, capped: bool = False, note: str = ""
) -> RuleResult:
    return RuleResult(
        rule.id,
        kind,
        rule.label,
        rule.group,
        sum(a.points for a in awards),
        tuple(awards),
        matched,
        capped,
        note,
    )


def _event_rule(
    rule: EventRule, by_type: Mapping[str, Sequence[Event]], as_of: datetime
) -> RuleResult:
    events = _in_window(_matching(rule.match, by_type), rule.window, as_of)
    cap = _CapState(rule.cap)
    seen: set[str] = set()
    awards: list[Award] = []
    for event in events:
        if rule.once_per is not None:
            key = repr(lookup(event.properties, rule.once_per))
            if key in seen:
                continue
            seen.add(key)
        raw = cap.take(rule.points, event.timestamp)
        if raw != 0.0:
            awards.append(_award(event, raw, as_of, rule.half_life))
    plural = "" if len(seen) == 1 else "s"
    notes = [
        f"{len(seen)} distinct {rule.once_per}{plural}" if rule.once_per else "",
        cap.describe(),
    ]
    return _finish(rule, "event", awards, len(events), cap.capped, ", ".join(n for n in notes if n))


def _count_rule(
    rule: CountRule, by_type: Mapping[str, Sequence[Event]], as_of: datetime
) -> RuleResult:
    events = _in_window(_matching(rule.match, by_type), rule.window, as_of)
    n = rule.at_least
    for i in range(n - 1, len(events)):
        if rule.within is None or events[i].timestamp - events[i - n + 1].timestamp <= rule.within:
            award = _award(events[i], rule.points, as_of, rule.half_life)
            return _finish(rule, "count", [award], len(events), note=f"{n} within the span")
    return _finish(rule, "count", [], len(events))


def _ratio_rule(
    rule: RatioRule, by_type: Mapping[str, Sequence[Event]], as_of: datetime
) -> RuleResult:
    num_events = _in_window(_matching(rule.numerator.match, by_type), rule.window, as_of)
    den_events = _in_window(_matching(rule.denominator.match, by_type), rule.window, as_of)
    sent = {_key(e, rule.denominator.distinct) for e in den_events} - {None}
    opened: dict[str, Event] = {}
    for event in num_events:
        key = _key(event, rule.numerator.distinct)
        if key in sent and key is not None:
            opened[key] = event  # the latest one, events being in time order
    note = f"{len(opened)} of {len(sent)}"
    if len(sent) < rule.min_denominator or len(opened) / len(sent) < rule.at_least:
        return _finish(rule, "ratio", [], len(num_events), note=note)
    last = max(opened.values(), key=Event.sort_key)
    return _finish(
        rule,
        "ratio",
        [_award(last, rule.points, as_of, rule.half_life)],
        len(num_events),
        note=note,
    )


def _key(event: Event, prop: str) -> str | None:
    value = lookup(event.properties, prop)
    return None if value is None or value == "" else str(value)


def _gap_rule(rule: GapRule, by_type: Mapping[str, Sequence[Event]], as_of: datetime) -> RuleResult:
    events = _matching(rule.match, by_type)  # the gap looks back past the window
    cap = _CapState(rule.cap)
    awards: list[Award] = []
    returns = 0
    for previous, event in itertools.pairwise(events):
        if event.timestamp - previous.timestamp < rule.gap:
            continue
        if rule.window is not None and as_of - event.timestamp > rule.window:
            continue
        returns += 1
        raw = cap.take(rule.points, event.timestamp)
        if raw != 0.0:
            awards.append(_award(event, raw, as_of, rule.half_life))
    return _finish(rule, "return_after_gap", awards, returns, cap.capped, cap.describe())


def _texts(event: Event) -> list[str]:
    texts = [str(v) for k in TEXT_PROPERTIES if (v := event.properties.get(k))]
    fields = event.properties.get("fields")
    if isinstance(fields, Mapping):
        texts += written_fields(fields)
    return texts


def _disqualify(
    rules: Sequence[Disqualifier], attributes: Mapping[str, Any], events: Sequence[Event]
) -> Disqualification | None:
    for rule in rules:
        found = _disqualifier_hit(rule, attributes, events)
        if found is not None:
            return found
    return None


def _disqualifier_hit(
    rule: Disqualifier, attributes: Mapping[str, Any], events: Sequence[Event]
) -> Disqualification | None:
    if rule.where:
        if all(c.holds(attributes) for c in rule.where):
            shown = ", ".join(f"{c.field}={lookup(attributes, c.field)!r}" for c in rule.where)
            return Disqualification(rule.id, rule.reason, rule.label, detail=shown)
        return None
    for event in events:
        if rule.match is not None and rule.match.matches(event):
            return Disqualification(rule.id, rule.reason, rule.label, event.id, event.type)
        if rule.honeypot is not None and event.type == "form_submitted":
            value = lookup(event.properties, f"fields.{rule.honeypot}")
            if value is None:
                value = event.properties.get(rule.honeypot)
            if value not in (None, ""):
                return Disqualification(
                    rule.id,
                    rule.reason,
                    rule.label,
                    event.id,
                    f"honeypot field {rule.honeypot} filled",
                )
        if rule.text is not None and (not rule.text_events or event.type in rule.text_events):
            for text in _texts(event):
                if rule.text.test(text):
                    return Disqualification(
                        rule.id, rule.reason, rule.label, event.id, _quote(text)
                    )
    return None


def _quote(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return f'"{flat[:limit]}..."' if len(flat) > limit else f'"{flat}"'


def _intent(model: ScoringModel, events: Sequence[Event], as_of: datetime) -> IntentHit | None:
    for event in reversed(events):
        if as_of - event.timestamp > model.intent_window:
            return None
        if any(m.matches(event) for m in model.intent_actions):
            return IntentHit(event.id, event.type, event.timestamp)
    return None
