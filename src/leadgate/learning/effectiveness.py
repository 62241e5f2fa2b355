"""Rule effectiveness: does each rule pick out the leads that turn out good?

Pure: from labelled examples (``learning.dataset``) and the model that scored them.
For every rule and fit rule of the model:

- **fired**: the examples whose breakdown has the rule giving points (counted before
  decay, so a rule whose points have faded still fired); the others are "without".
- **share good** with and without the rule, each with a 95% Wilson score interval.
- **lift**: share with / share without, with a 95% interval on the log of the ratio
  (Katz: ``se = sqrt(1/a - 1/n1 + 1/c - 1/n2)``, ``a`` and ``c`` the good leads of
  the ``n1`` with and ``n2`` without). When a cell of the two-by-two table is 0 (no
  good or no bad lead on a side), 0.5 is added to each of the four cells for the
  interval. No lift when no lead without the rule was good.
- **evidence**: the log odds ratio of good with vs. without (0.5 added to each cell),
  shrunk toward 0 by ``PRIOR_VAR / (PRIOR_VAR + its variance)``: the posterior mean
  under a normal prior of variance ``PRIOR_VAR``. A rule seen on few leads, or on
  nearly all of them, moves little; one that fired for fewer than ``min_leads``
  examples, or missed fewer than that, has no evidence at all (one lead on a side
  says nothing about the rule).
- **suggested points**: the evidence on the model's own scale. A rule's *weight* is
  what a lead it fired for gets from it, on average (a fit rule's points; for an
  event rule the points before decay, after caps). ``scale`` makes the suggested
  weights as large in total as the current ones: ``sum |weight| / sum |evidence|``
  over the rules with evidence. The suggested weight is ``scale * evidence``; the
  suggestion for the rule's ``points`` setting is ``points * suggested / weight``,
  rounded to a whole number.
- **disagreement**: ``|suggested weight - weight|`` in points. The report lists the
  rules that disagree most with the evidence first; rules without evidence come
  last.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from leadgate.domain.model import (
    CountRule,
    EventRule,
    FitRule,
    GapRule,
    RatioRule,
    Rule,
    ScoringModel,
)
from leadgate.domain.scoring import RuleResult
from leadgate.learning.dataset import Example

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
PRIOR_VAR = 1.0  # prior variance of a rule's log odds ratio (sd 1: odds x2.7 is a big rule)
MIN_LEADS = 5  # fewest examples with, and without, a rule for any evidence about it

Interval = tuple[float, float]


def wilson(good: int, total: int, z: float = Z95) -> Interval | None:
    """The Wilson score interval of the share ``good / total``; None when ``total`` is 0."""
    if total == 0:
        return None
    p, z2 = good / total, z * z
    denominator = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def lift_interval(a: int, n1: int, c: int, n2: int, z: float = Z95) -> Interval | None:
    """95% interval of (a/n1) / (c/n2) from the log of the ratio (Katz); 0.5 is added to
    each cell when one is 0. None when either group is empty."""
    if n1 == 0 or n2 == 0:
        return None
    x1, m1, x2, m2 = float(a), float(n1), float(c), float(n2)
    if 0 in (a, n1 - a, c, n2 - c):
        x1, m1, x2, m2 = x1 + 0.5, m1 + 1, x2 + 0.5, m2 + 1
    log_ratio = math.log((x1 / m1) / (x2 / m2))
    se = math.sqrt(1 / x1 - 1 / m1 + 1 / x2 - 1 / m2)
    return (math.exp(log_ratio - z * se), math.exp(log_ratio + z * se))


def shrunk_log_odds_ratio(a: int, n1: int, c: int, n2: int) -> float:
    """The log odds ratio of good with (a of n1) vs. without (c of n2), 0.5 added to each
    cell, times ``PRIOR_VAR / (PRIOR_VAR + variance)``."""
    cells = (a + 0.5, n1 - a + 0.5, c + 0.5, n2 - c + 0.5)
    log_or = math.log(cells[0] * cells[3] / (cells[1] * cells[2]))
    variance = sum(1 / x for x in cells)
    return log_or * PRIOR_VAR / (PRIOR_VAR + variance)


@dataclass(frozen=True, slots=True)
class RuleEffect:
    rule_id: str
    kind: str  # event, count, ratio, return_after_gap, fit
    label: str
    points: float  # the model's setting
    n_with: int  # examples it fired for
    good_with: int
    n_without: int
    good_without: int
    share_with: float | None
    share_with_ci: Interval | None
    share_without: float | None
    share_without_ci: Interval | None
    lift: float | None
    lift_ci: Interval | None
    evidence: float | None  # shrunk log odds ratio; None without both groups
    weight: float | None  # mean points (before decay) a lead it fired for gets
    suggested_weight: float | None
    suggested_points: int | None  # for the rule's ``points`` setting
    disagreement: float | None


@dataclass(frozen=True, slots=True)
class RuleReport:
    examples: int
    good: int
    scale: float | None  # points per unit of (shrunk) log odds ratio
    rules: tuple[RuleEffect, ...]  # the most disagreeing first

    @property
    def share_good(self) -> float | None:
        return self.good / self.examples if self.examples else None


def given(result: RuleResult) -> float:
    """The points a rule gave before decay (a fit rule's points do not decay)."""
    return result.points if result.kind == "fit" else result.raw


@dataclass
class _Tally:
    n_with: int = 0
    good_with: int = 0
    points_with: float = 0.0


def rule_report(
    examples: Sequence[Example], model: ScoringModel, min_leads: int = MIN_LEADS
) -> RuleReport:
    """How well each of the model's rules and fit rules agrees with the outcomes."""
    min_leads = max(1, min_leads)
    rules = [*model.rules, *model.fit]
    tallies = {rule.id: _Tally() for rule in rules}
    for ex in examples:
        for result in ex.breakdown.rules:
            tally = tallies.get(result.rule_id)
            points = given(result)
            if tally is None or (points == 0 and result.points == 0):
                continue
            tally.n_with += 1
            tally.good_with += ex.good
            tally.points_with += points
    n, good = len(examples), sum(ex.good for ex in examples)
    partial = [_effect(rule, tallies[rule.id], n, good, min_leads) for rule in rules]
    scale = _scale(partial)
    effects = [_suggest(e, scale) for e in partial]
    effects.sort(key=_order)
    return RuleReport(n, good, scale, tuple(effects))


def _kind(rule: Rule | FitRule) -> str:
    """The rule's kind as a breakdown names it."""
    kinds: dict[type, str] = {
        EventRule: "event",
        CountRule: "count",
        RatioRule: "ratio",
        GapRule: "return_after_gap",
        FitRule: "fit",
    }
    return kinds[type(rule)]


def _effect(rule: Rule | FitRule, tally: _Tally, n: int, good: int, min_leads: int) -> RuleEffect:
    a, n1 = tally.good_with, tally.n_with
    c, n2 = good - a, n - n1
    share_with = a / n1 if n1 else None
    share_without = c / n2 if n2 else None
    lift = share_with / share_without if share_with is not None and share_without else None
    enough = n1 >= min_leads and n2 >= min_leads
    evidence = shrunk_log_odds_ratio(a, n1, c, n2) if enough else None
    return RuleEffect(
        rule_id=rule.id,
        kind=_kind(rule),
        label=rule.label,
        points=rule.points,
        n_with=n1,
        good_with=a,
        n_without=n2,
        good_without=c,
        share_with=share_with,
        share_with_ci=wilson(a, n1),
        share_without=share_without,
        share_without_ci=wilson(c, n2),
        lift=lift,
        lift_ci=lift_interval(a, n1, c, n2),
        evidence=evidence,
        weight=tally.points_with / n1 if n1 else None,
        suggested_weight=None,
        suggested_points=None,
        disagreement=None,
    )


def _scale(effects: Iterable[RuleEffect]) -> float | None:
    """Points per unit of evidence: the suggested weights as large in total as the current."""
    pairs = [(e.weight, e.evidence) for e in effects if e.evidence is not None and e.weight]
    evidence = sum(abs(x) for _, x in pairs)
    if not pairs or evidence == 0:
        return None
    return sum(abs(w) for w, _ in pairs if w is not None) / evidence


def _suggest(effect: RuleEffect, scale: float | None) -> RuleEffect:
    if scale is None or effect.evidence is None or not effect.weight:
        return effect
    suggested = scale * effect.evidence
    points = round(effect.points * suggested / effect.weight)
    return replace(
        effect,
        suggested_weight=suggested,
        suggested_points=points,
        disagreement=abs(suggested - effect.weight),
    )


def _order(effect: RuleEffect) -> tuple[int, float, int, str]:
    if effect.disagreement is None:
        return (1, 0.0, -effect.n_with, effect.rule_id)
    return (0, -effect.disagreement, -effect.n_with, effect.rule_id)


def _number(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _pair(value: Interval | None) -> list[float] | None:
    return None if value is None else [round(value[0], 6), round(value[1], 6)]


def report_document(report: RuleReport) -> dict[str, Any]:
    """The report as JSON-ready data (what ``--json`` prints and the API returns)."""
    return {
        "examples": report.examples,
        "good": report.good,
        "share_good": _number(report.share_good),
        "scale": _number(report.scale),
        "rules": [
            {
                "rule_id": e.rule_id,
                "kind": e.kind,
                "label": e.label,
                "points": e.points,
                "fired": e.n_with,
                "good_with": e.good_with,
                "not_fired": e.n_without,
                "good_without": e.good_without,
                "share_with": _number(e.share_with),
                "share_with_ci": _pair(e.share_with_ci),
                "share_without": _number(e.share_without),
                "share_without_ci": _pair(e.share_without_ci),
                "lift": _number(e.lift),
                "lift_ci": _pair(e.lift_ci),
                "evidence": _number(e.evidence),
                "weight": _number(e.weight),
                "suggested_weight": _number(e.suggested_weight),
                "suggested_points": e.suggested_points,
                "disagreement": _number(e.disagreement),
            }
            for e in report.rules
        ],
    }
