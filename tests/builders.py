"""Tiny builders for domain tests: events, models and scores in one line each."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from textwrap import dedent, indent
from typing import Any

from leadgate.domain.events import Event, Lead
from leadgate.domain.model import ScoringModel
from leadgate.domain.model_file import load_model
from leadgate.domain.scoring import Breakdown, RuleResult, evaluate

LEAD_ID = "lead-1"
T0 = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)  # a Monday, noon UTC
_ids = itertools.count(1)


def at(days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    """T0 plus an offset."""
    return T0 + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def ev(type_: str, when: datetime, /, *, eid: str | None = None, **props: Any) -> Event:
    """An event of the test lead; ids are unique unless given."""
    return Event(eid or f"e{next(_ids)}", LEAD_ID, type_, when, props)


def model(text: str, source: str = "model.yaml") -> ScoringModel:
    return load_model(dedent(text), source)


def rules(
    text: str, *, decay: str = "none", thresholds: str = "{mql: 40, sql: 40}", head: str = ""
) -> ScoringModel:
    """A model with the given ``rules:`` entries and no decay unless asked."""
    body = indent(dedent(text).strip("\n"), "  ")
    return model(f"thresholds: {thresholds}\ndecay: {decay}\n{dedent(head)}rules:\n{body}\n")


def score(
    scoring_model: ScoringModel,
    events: Iterable[Event] = (),
    as_of: datetime | None = None,
    **attributes: Any,
) -> Breakdown:
    return evaluate(scoring_model, Lead(LEAD_ID, attributes), list(events), as_of or at(days=1))


def result(breakdown: Breakdown, rule_id: str) -> RuleResult:
    return next(r for r in breakdown.rules if r.rule_id == rule_id)


def points(breakdown: Breakdown, rule_id: str) -> float:
    return result(breakdown, rule_id).points


def raw_awards(breakdown: Breakdown, rule_id: str) -> list[float]:
    return [a.raw for a in result(breakdown, rule_id).awards]


@cache
def default_model() -> ScoringModel:
    text = resources.files("leadgate").joinpath("models/default.yaml").read_text()
    return load_model(text, "default.yaml")
