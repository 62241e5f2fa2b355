"""The scoring model: rules, fit rules, intent actions, disqualifiers and thresholds.

Plain frozen data. ``leadgate.domain.model_file`` builds it from YAML and checks it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from leadgate.domain.conditions import Condition
from leadgate.domain.events import Event

DISQUALIFY_REASONS = ("spam", "competitor", "job_seeker", "low_value", "do_not_contact")
STAGES = ("new", "nurturing", "mql", "sql", "disqualified")


@dataclass(frozen=True, slots=True)
class Match:
    """An event type and property conditions, all of which must hold."""

    event: str
    where: tuple[Condition, ...] = ()

    def matches(self, event: Event) -> bool:
        return event.type == self.event and all(c.holds(event.properties) for c in self.where)

    def describe(self) -> str:
        if not self.where:
            return self.event
        return f"{self.event} where " + " and ".join(c.describe() for c in self.where)


@dataclass(frozen=True, slots=True)
class Cap:
    """Most points a rule may give in total, and in each period (UTC, aligned to the epoch)."""

    total: float | None = None
    period: timedelta | None = None
    period_max: float | None = None


@dataclass(frozen=True, slots=True)
class RuleBase:
    id: str
    points: float
    label: str
    line: int
    group: str | None  # a named score group (product line), besides engagement
    window: timedelta | None  # only events at most this old count
    half_life: timedelta | None  # engagement decay; None means no decay


@dataclass(frozen=True, slots=True)
class EventRule(RuleBase):
    """Points for each matching event, once per object if asked, within caps."""

    match: Match
    once_per: str | None = None
    cap: Cap | None = None


@dataclass(frozen=True, slots=True)
class CountRule(RuleBase):
    """Points once, when at least ``at_least`` matching events fall within ``within``."""

    match: Match
    at_least: int
    within: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Distinct:
    match: Match
    distinct: str  # the property whose distinct values are counted, e.g. campaign


@dataclass(frozen=True, slots=True)
class RatioRule(RuleBase):
    """Points while distinct numerator values / distinct denominator values >= ``at_least``.

    Only numerator values also present in the denominator count (an open of an
    email that was never delivered is not evidence).
    """

    numerator: Distinct
    denominator: Distinct
    at_least: float
    min_denominator: int


@dataclass(frozen=True, slots=True)
class GapRule(RuleBase):
    """Points for each matching event that comes at least ``gap`` after the previous one."""

    match: Match
    gap: timedelta
    cap: Cap | None = None


Rule = EventRule | CountRule | RatioRule | GapRule


@dataclass(frozen=True, slots=True)
class FitRule:
    """Points for who the lead is: conditions on attributes, all of which must hold."""

    id: str
    points: float
    label: str
    line: int
    where: tuple[Condition, ...]
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Disqualifier:
    """A reason to keep a lead away from sales.

    Exactly one of: attribute conditions (``where``), an event match, a text
    pattern over message-like event properties, or a honeypot form field.
    """

    id: str
    reason: str
    label: str
    line: int
    where: tuple[Condition, ...] = ()
    match: Match | None = None
    text: Condition | None = None  # a `matches` condition on the text
    text_events: tuple[str, ...] = ()  # event types whose text is read; empty = all
    honeypot: str | None = None


@dataclass(frozen=True, slots=True)
class Thresholds:
    mql: float
    sql: float


# Properties read as free text by text disqualifiers. Not "subject": the
# subject of an email event is ours (a reply's is "Re: " plus ours).
TEXT_PROPERTIES = ("message", "body", "comment", "question")
# Form fields that say who the lead is, not what they wrote: text disqualifiers skip
# them (an address like crypto.fan@... is not spam). Compared in lower case.
CONTACT_FIELDS = frozenset(
    {
        "email", "e-mail", "email_address", "name", "full_name", "first_name", "last_name",
        "firstname", "lastname", "phone", "phone_number", "mobile", "company", "company_name",
        "website", "website_url", "url", "page_url", "country", "city", "title", "job_title",
    }
)  # fmt: skip


def written_fields(fields: Mapping[str, Any]) -> list[str]:
    """The texts of a form's fields the lead wrote themselves (not contact fields)."""
    return [
        v
        for k, v in fields.items()
        if isinstance(v, str) and v and str(k).lower() not in CONTACT_FIELDS
    ]


# Events whose text the lead wrote: read by text disqualifiers that name no events.
INBOUND_TEXT_EVENTS = ("form_submitted", "quote_requested", "message_received", "email_replied")


@dataclass(frozen=True, slots=True)
class Calibration:
    """Score -> probability of a good outcome: ``1 / (1 + exp(-(slope * score + intercept)))``.

    Fitted on the outcomes a model was learned from (Platt scaling on the total score).
    ``points_to_double_odds`` is the scorecard's scale, when it was built as one.
    """

    slope: float
    intercept: float
    method: str = "platt"
    points_to_double_odds: float | None = None
    fitted_on: str = ""

    def probability(self, score: float) -> float:
        z = self.slope * score + self.intercept
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)


@dataclass(frozen=True)
class ScoringModel:
    name: str
    version: str
    thresholds: Thresholds
    intent_window: timedelta
    intent_actions: tuple[Match, ...]
    rules: tuple[Rule, ...]
    fit: tuple[FitRule, ...]
    disqualifiers: tuple[Disqualifier, ...]
    handover: str = "sql"
    half_life: timedelta | None = None
    groups: tuple[str, ...] = ()
    source: str = "<memory>"
    description: str = ""
    lists: Mapping[str, frozenset[str]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    calibration: Calibration | None = None

    def rule(self, rule_id: str) -> Rule | FitRule:
        for rule in (*self.rules, *self.fit):
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)
