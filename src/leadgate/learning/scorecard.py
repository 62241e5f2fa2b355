"""A learned points model: regularised logistic regression turned into a scorecard.

1. ``fit_regression``: logistic regression (L2 by default, or L1), its strength chosen by
   stratified cross-validation (log loss) on the training examples only.
2. ``scorecard_points``: each coefficient times ``POINTS_TO_DOUBLE / ln 2``, so that
   ``POINTS_TO_DOUBLE`` (20) points double the odds of a good outcome; the intercept is
   left to the calibration, so a score stays a sum of rule points.
3. ``draft_document``: the base model file with those points, rounded to integers (a
   rule's points and caps are scaled together), the learned fit rules added.
4. ``calibrate``: Platt scaling on the draft's integer score (score -> probability).
5. ``choose_thresholds``: the SQL threshold for a stated ``Target``; the MQL threshold
   where the precision of leads scoring at least it reaches half-way from the base rate
   to the precision at the SQL threshold, never below ``floor`` (0 when the base model's
   thresholds are not negative: a lead whose evidence adds up to less than nothing is
   not marketing-qualified).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from leadgate.domain.events import KNOWN_ATTRIBUTES
from leadgate.domain.model import Calibration, ScoringModel
from leadgate.learning.features import Feature

POINTS_TO_DOUBLE = 20.0
STRENGTHS = tuple(float(c) for c in np.logspace(-2, 1, 7))  # C = 1 / regularisation
MIN_HANDOVERS = 20  # a precision target is read on at least this many training handovers


@dataclass(frozen=True)
class Regression:
    weights: np.ndarray
    intercept: float
    strength: float  # the chosen C
    penalty: str
    cv_log_loss: float

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = x @ self.weights + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=float)


def _model(c: float, penalty: str) -> LogisticRegression:
    # liblinear: fast on a few thousand leads and a hundred features, L1 and L2 alike.
    # It penalises the intercept too; a large intercept scaling makes that negligible.
    return LogisticRegression(
        C=c,
        l1_ratio=1.0 if penalty == "l1" else 0.0,
        solver="liblinear",
        intercept_scaling=100.0,
        max_iter=1000,
        random_state=0,  # liblinear shuffles; fixed, a run is reproducible
    )


def fit_regression(
    x: np.ndarray,
    y: np.ndarray,
    *,
    penalty: str = "l2",
    seed: int = 0,
    folds: int = 5,
    strengths: Sequence[float] = STRENGTHS,
) -> Regression:
    """Cross-validate the strength on (x, y), then refit on all of it.

    With one strength or ``folds`` < 2 there is nothing to choose: it is fitted as is.
    """
    if penalty not in ("l1", "l2"):
        raise ValueError(f"penalty must be l1 or l2, got {penalty!r}")
    if len(set(y.tolist())) < 2:
        raise ValueError("the training outcomes are all good or all bad: nothing to learn")
    best = (math.nan, strengths[0])
    folds = min(folds, int(min(y.sum(), len(y) - y.sum())))
    splits = (
        [] if folds < 2 else StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y)
    )
    splits = list(splits)
    for c in strengths if splits and len(strengths) > 1 else ():
        losses = []
        for train, test in splits:
            fitted = _model(c, penalty).fit(x[train], y[train])
            losses.append(log_loss(y[test], fitted.predict_proba(x[test])[:, 1], labels=[0, 1]))
        loss = float(np.mean(losses))
        if not loss >= best[0]:  # the first, or a lower loss
            best = (loss, c)
    final = _model(best[1], penalty).fit(x, y)
    return Regression(
        np.asarray(final.coef_[0], dtype=float),
        float(final.intercept_[0]),
        best[1],
        penalty,
        best[0],
    )


def scorecard_points(
    weights: np.ndarray, points_to_double: float = POINTS_TO_DOUBLE
) -> list[float]:
    """Coefficients (log odds) as points on the scorecard scale (unrounded)."""
    return [float(w) * points_to_double / math.log(2) for w in weights]


def calibrate(
    scores: np.ndarray, good: np.ndarray, points_to_double: float, note: str
) -> Calibration:
    """Platt scaling: a one-feature logistic regression of the outcome on the score."""
    fitted = LogisticRegression(C=1e6, l1_ratio=0.0, max_iter=1000).fit(scores.reshape(-1, 1), good)
    slope = float(fitted.coef_[0][0])
    if slope <= 0:  # the score does not separate: fall back to the scale it was built on
        slope = math.log(2) / points_to_double
    return Calibration(
        round(slope, 6), round(float(fitted.intercept_[0]), 4), "platt", points_to_double, note
    )


# -- targets and thresholds ---------------------------------------------------


@dataclass(frozen=True)
class Target:
    """``precision:P`` (lowest SQL threshold with precision >= P) or ``top:N`` a week."""

    kind: str
    value: float

    @staticmethod
    def parse(text: str) -> Target:
        kind, _, raw = text.partition(":")
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if kind == "precision" and 0 < value <= 1:
            return Target(kind, value)
        if kind == "top" and value > 0:
            return Target(kind, value)
        raise ValueError(f"target must be precision:P (0 < P <= 1) or top:N (N > 0), got {text!r}")

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}"


@dataclass(frozen=True)
class ThresholdChoice:
    mql: float
    sql: float
    sql_precision: float | None  # on the training data
    sql_handovers: int
    note: str
    mql_below_floor: float | None = None  # the MQL threshold before it rose to the floor


def _precision(selected: np.ndarray, good: np.ndarray) -> float | None:
    n = int(selected.sum())
    return float(good[selected].mean()) if n else None


def choose_thresholds(
    scores: np.ndarray,
    good: np.ndarray,
    eligible: np.ndarray,
    qualified: np.ndarray,
    target: Target,
    weeks: float | None = None,
    scale_up: float = 1.0,
    floor: float | None = None,
) -> ThresholdChoice:
    """Thresholds on training scores.

    ``eligible``: leads that would be SQL at a high enough score (an intent action in the
    window, not disqualified); ``qualified``: not disqualified (MQL needs no intent).
    ``top:N`` needs ``weeks``, the span of the training history; ``scale_up`` turns
    training counts into counts for all leads (1 / the training share). ``floor``: the
    lowest MQL threshold allowed (the SQL threshold rises with it).
    """
    scarce = not eligible.any()
    if scarce:  # no intent action anywhere: the SQL threshold is read on scores alone
        eligible = qualified
    candidates = sorted({float(s) for s in scores[eligible]})
    if not candidates:
        raise ValueError("every training lead is disqualified: no threshold to choose")
    sql: float | None = None
    if target.kind == "precision":
        for t in candidates:
            chosen = eligible & (scores >= t)
            p = _precision(chosen, good)
            if int(chosen.sum()) >= MIN_HANDOVERS and p is not None and p >= target.value:
                sql = t
                break
        note = f"lowest SQL threshold with precision >= {target.value:.0%} on the training leads"
        if sql is None:  # not reachable: the most precise threshold with enough handovers
            best = max(
                candidates,
                key=lambda t: (
                    (_precision(eligible & (scores >= t), good) or 0.0)
                    if int((eligible & (scores >= t)).sum()) >= MIN_HANDOVERS
                    else -1.0
                ),
            )
            sql = best
            note = f"precision {target.value:.0%} is not reached; the most precise threshold"
    else:
        if not weeks or weeks < 1:
            raise ValueError("top:N needs dated events spanning at least a week")
        for t in candidates:
            per_week = int((eligible & (scores >= t)).sum()) * scale_up / weeks
            if per_week <= target.value:
                sql = t
                break
        sql = candidates[-1] if sql is None else sql
        note = f"lowest SQL threshold with at most {target.value:g} handovers a week"
    sql_precision = _precision(eligible & (scores >= sql), good)
    base_rate = float(good[qualified].mean()) if qualified.any() else float(good.mean())
    goal = base_rate + ((sql_precision or base_rate) - base_rate) / 2
    mql = sql
    for t in sorted({float(s) for s in scores[qualified]}):
        p = _precision(qualified & (scores >= t), good)
        if p is not None and p >= goal:
            mql = t
            break
    below = None
    if floor is not None and mql < floor:
        below, mql = mql, floor
    if mql > sql:  # an SQL is at least an MQL: the SQL threshold rises to the MQL one
        sql = mql
        note += ", raised to the MQL threshold"
    if scarce:
        note += " (no training lead has an intent action: read on scores alone)"
    handed = eligible & (scores >= sql)
    return ThresholdChoice(mql, sql, _precision(handed, good), int(handed.sum()), note, below)


# -- the draft model file --------------------------------------------------------------


def _integer(x: float) -> int:
    """Round half away from zero (Python's round() rounds half to even)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def _rule_item(item: dict[str, Any], feature: Feature, points: float) -> None:
    """Scale a rule's points and caps so that firing fully gives ``points``."""
    old = float(item["points"])
    k = points / feature.scale
    per_award = _integer(old * k)
    if _integer(points) == 0:
        item["points"] = 0
        item.pop("cap", None)
        return
    if per_award == 0:
        per_award = 1 if old * k > 0 else -1
    item["points"] = per_award
    cap = item.get("cap")
    if isinstance(cap, dict):
        if "total" in cap:
            cap["total"] = max(_integer(abs(float(cap["total"]) * k)), abs(per_award))
        if "period_max" in cap:
            cap["period_max"] = max(_integer(abs(float(cap["period_max"]) * k)), abs(per_award))


def draft_document(
    base: Mapping[str, Any],
    model: ScoringModel,
    features: Sequence[Feature],
    points: Sequence[float],
    name: str,
    min_points: int = 1,
) -> dict[str, Any]:
    """The base model file (as parsed YAML) with learned points and fit rules.

    A learned rule (a fit rule from attributes, a count past a cap) is written only when
    its points are at least ``min_points`` either way; the base model's rules are kept.

    Rule kinds, conditions, intent actions and disqualifiers are kept; a candidate
    feature whose points round to 0 is left out; thresholds are set later.
    """
    doc = copy.deepcopy(dict(base))
    doc["name"] = name
    by_id = dict(zip((f.id for f in features), zip(features, points, strict=True), strict=True))
    for item in doc.get("rules") or []:
        if item.get("id") in by_id:
            feature, p = by_id[item["id"]]
            _rule_item(item, feature, p)
    items = {item.get("id"): item for item in doc.get("rules") or []}
    for f, p in zip(features, points, strict=True):  # count rules past a base rule's cap
        if f.kind == "more" and abs(_integer(p)) >= max(min_points, 1):
            base_item = items[f.parts[0]]
            more: dict[str, Any] = {"id": f.id, "label": f.label, "event": base_item["event"]}
            more.update(
                {k: base_item[k] for k in ("where", "window", "decay", "group") if k in base_item}
            )
            more.update({"count_at_least": f.at_least, "points": _integer(p)})
            doc["rules"].append(more)
    for item in doc.get("fit") or []:
        if item.get("id") in by_id:
            item["points"] = _integer(by_id[item["id"]][1])
    chosen = [
        (f, _integer(p))
        for f, p in zip(features, points, strict=True)
        if f.kind == "candidate" and abs(_integer(p)) >= max(min_points, 1)
    ]
    chosen.sort(key=lambda fp: -abs(fp[1]))
    doc["fit"] = [*(doc.get("fit") or []), *({**f.spec(), "points": p} for f, p in chosen)]
    declared = list(doc.get("attributes") or [])
    for f, _ in chosen:
        for c in f.conditions:
            if c.field not in declared and c.field not in KNOWN_ATTRIBUTES:
                declared.append(c.field)
    if declared:
        doc["attributes"] = declared
    return doc


def set_thresholds(doc: dict[str, Any], choice: ThresholdChoice, calibration: Calibration) -> None:
    doc["thresholds"] = {"mql": _integer(choice.mql), "sql": _integer(choice.sql)}
    doc["calibration"] = {
        "method": calibration.method,
        "slope": calibration.slope,
        "intercept": calibration.intercept,
        "points_to_double_odds": calibration.points_to_double_odds,
        "fitted_on": calibration.fitted_on,
    }


ORDER = (
    "name", "version", "description", "thresholds", "handover", "intent_window", "decay",
    "calibration", "attributes", "custom_events", "lists", "groups", "intent_actions",
    "rules", "fit", "disqualify",
)  # fmt: skip


def draft_text(doc: Mapping[str, Any], header: Sequence[str]) -> str:
    """YAML text of a draft, with ``header`` lines as a comment on top."""
    ordered = {k: doc[k] for k in ORDER if k in doc}
    ordered.update({k: v for k, v in doc.items() if k not in ordered})
    body = yaml.dump(ordered, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return "".join(f"# {line}".rstrip() + "\n" for line in header) + body


def _simple(value: object) -> bool:
    if isinstance(value, list):
        return all(not isinstance(v, list | dict) for v in value)
    return not isinstance(value, dict)


class _Dumper(yaml.SafeDumper):
    """Block style, with short leaves inline: ``cap: {total: 20}``, ``in: [a, b]``; a
    list two rules share (a pair's part) is written out twice, not as an anchor."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=_simple(data))


def _dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    inline = "id" not in data and len(data) <= 3 and all(_simple(v) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=inline)


_Dumper.add_representer(list, _list)
_Dumper.add_representer(dict, _dict)
