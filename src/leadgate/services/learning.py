"""Use case: learn a points model from known outcomes and measure it on held-out leads.

``labelled_examples`` reads leads, events and outcomes (a column or a file) into
``Example``s; ``learn`` splits them (stratified, seeded), builds features on the training
part, fits the scorecard, writes the draft model file (text) and compares, on the
held-out part, the base model, the learned points model (its integer scores, scored by
the reference evaluator) and the unrounded logistic regression it came from.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from leadgate.domain.events import Lead
from leadgate.domain.model import Calibration, ScoringModel
from leadgate.domain.model_file import load_model
from leadgate.domain.outcomes import Outcome, parse_good
from leadgate.domain.scoring import evaluate
from leadgate.learning.dataset import Example, example
from leadgate.learning.evaluation import AtVolume, Metrics, at_volume, measure
from leadgate.learning.features import (
    Feature,
    FeatureSet,
    build_features,
    feature_matrix,
    pairs,
    with_pairs,
)
from leadgate.learning.scorecard import (
    POINTS_TO_DOUBLE,
    Regression,
    Target,
    ThresholdChoice,
    calibrate,
    choose_thresholds,
    draft_document,
    draft_text,
    fit_regression,
    scorecard_points,
    set_thresholds,
)
from leadgate.services.outcomes import file_outcomes
from leadgate.services.sources import Loaded, outcomes_in_history, shown


@dataclass(frozen=True)
class Labelled:
    examples: list[Example]
    post_outcome: tuple[str, ...]  # never features: the mapping's, the outcome column, --exclude
    outcome_from: str
    days_to_good: float | None = None  # median, first event to a dated good outcome
    unknown: tuple[str, ...] = ()  # outcomes naming a lead the leads and events do not hold


def unknown_note(unknown: Sequence[str]) -> str | None:
    """The warning for outcomes naming leads not in the history (left out), or None;
    worded as ``leadgate outcomes`` words it."""
    if not unknown:
        return None
    n = len(unknown)
    some = ", ".join(shown(u, 40) for u in sorted(unknown)[:3]) + (", ..." if n > 3 else "")
    names = "outcome names a lead" if n == 1 else "outcomes name leads"
    return f"{n:,} {names} not in the history ({some}); left out"


MIN_EACH = 10  # fewest good, and bad, outcomes to learn from (a few say nothing)


def outcomes_for(
    loaded: Loaded, outcome: str, post_outcome: Sequence[str]
) -> tuple[dict[str, Outcome], bool, tuple[str, ...], str]:
    """Outcomes from a file (if ``outcome`` is one) or from a column of the leads.

    Returns the outcomes, whether unlisted leads count as bad (a file without an outcome
    column, like a closed-deals file: listed = good; the same rule as ``rules report``),
    the post-outcome names and a description.
    """
    path = Path(outcome)
    if path.is_file():  # read as rules report and backtest read it
        read = file_outcomes(outcome, loaded, None, None)
        listed = read.unlisted_bad
        what = f"{path.name} ({'listed = good, unlisted = bad' if listed else 'its outcome'})"
        return read.outcomes, listed, tuple(post_outcome), what
    banned = (*post_outcome, outcome)
    if loaded.outcomes:  # the mapping's outcome column
        return (
            {k: Outcome(k, v) for k, v in loaded.outcomes.items()},
            False,
            banned,
            f"column {outcome}",
        )
    found: dict[str, Outcome] = {}
    for lead_id, lead in loaded.inputs.leads.items():
        value = lead.attributes.get(outcome)
        if value is not None and value != "":
            found[lead_id] = Outcome(lead_id, parse_good(value, f"lead {lead_id}"))
    if not found:
        raise ValueError(f"--outcome {outcome!r}: neither a file nor a column of the leads")
    return found, False, banned, f"column {outcome}"


def labelled_examples(
    model: ScoringModel,
    loaded: Loaded,
    outcome: str,
    post_outcome: Sequence[str] = (),
    decide_within: timedelta | None = None,
) -> Labelled:
    """One Example per lead with an outcome, as it was before the outcome.

    ``decide_within``: take each lead's features no later than this long after its first
    event (the decision time), even when the outcome came later.
    """
    listed, unlisted_bad, banned, what = outcomes_for(loaded, outcome, post_outcome)
    inputs = loaded.inputs
    # An outcome for a lead the files do not hold says nothing: left out, and counted.
    outcomes, unknown = outcomes_in_history(listed, inputs)
    end = inputs.latest or datetime.now(UTC)
    ids = set(outcomes) | (set(inputs.leads) | set(inputs.events) if unlisted_bad else set())
    out: list[Example] = []
    waits: list[float] = []
    for lead_id in sorted(ids):  # sorted: the split must not depend on set order
        known = outcomes.get(lead_id) or Outcome(lead_id, False, None, None, "unlisted")
        events = inputs.events.get(lead_id, [])
        lead_end = end
        if decide_within is not None and events:
            lead_end = min(end, min(e.timestamp for e in events) + decide_within)
        lead = inputs.leads.get(lead_id) or Lead(lead_id, {})
        out.append(example(model, lead, events, known, lead_end))
        if known.good and known.at is not None and events:
            first = min(e.timestamp for e in events)
            waits.append((known.at - first).total_seconds() / 86400)
    median = float(np.median(waits)) if waits else None
    return Labelled(out, tuple(banned), what, median, tuple(unknown))


@dataclass(frozen=True)
class Settings:
    target: Target = field(default_factory=lambda: Target("precision", 0.8))
    test_share: float = 0.3
    seed: int = 7
    penalty: str = "l2"
    attributes: Sequence[str] | None = None
    min_support: int = 30
    pairs: int = 25  # pairs of the strongest attribute features (0: none)
    min_points: int = 1  # learned rules with fewer points either way are left out
    points_to_double: float = POINTS_TO_DOUBLE


@dataclass(frozen=True)
class LearnResult:
    text: str  # the draft model file
    draft: ScoringModel
    train: int
    test: int
    train_good: int
    test_good: int
    features: FeatureSet
    regression: Regression
    choice: ThresholdChoice
    calibration: Calibration
    metrics: tuple[Metrics, ...]  # base model, learned points, logistic regression
    volume: AtVolume  # leads scoring at least the base SQL threshold (not disqualified)
    handovers: AtVolume  # the same, with an intent action: the SQL handovers
    rules_written: int
    warnings: tuple[str, ...] = ()  # e.g. the draft ranks worse than the base model


def _arrays(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    good = np.array([e.good for e in examples], dtype=bool)
    eligible = np.array(
        [e.breakdown.intent is not None and e.breakdown.disqualified is None for e in examples]
    )
    qualified = np.array([e.breakdown.disqualified is None for e in examples])
    return good, eligible, qualified


def draft_scores(
    draft: ScoringModel, examples: Sequence[Example], features: Sequence[Feature], x: np.ndarray
) -> np.ndarray:
    """The draft's total scores: the reference evaluator's engagement (rules only) plus the
    fit points read off the feature columns (every fit rule of a draft is a feature).
    Tests check these against ``evaluate`` with the whole draft."""
    column = {f.id: j for j, f in enumerate(features)}
    fit_points = np.zeros(len(features))
    for rule in draft.fit:
        fit_points[column[rule.id]] = rule.points
    rules_only = replace(draft, fit=())
    engagement = [evaluate(rules_only, e.lead, e.events, e.as_of).total for e in examples]
    return np.asarray(engagement) + x @ fit_points


def _weeks(examples: Sequence[Example]) -> float | None:
    first = [e.events[0].timestamp for e in examples if e.events]
    if not first:
        return None
    span = max(e.as_of for e in examples) - min(first)
    return span.total_seconds() / (7 * 86400)


def _platt(scores: np.ndarray, good: np.ndarray) -> LogisticRegression:
    return LogisticRegression(C=1e6, l1_ratio=0.0, max_iter=1000).fit(scores.reshape(-1, 1), good)


def learn(
    model: ScoringModel,
    base_text: str,
    examples: Sequence[Example],
    settings: Settings,
    post_outcome: Sequence[str] = (),
    name: str | None = None,
) -> LearnResult:
    """Learn a draft from ``examples`` (see the module docstring)."""
    good_all = np.array([e.good for e in examples], dtype=bool)
    good, bad = int(good_all.sum()), int((~good_all).sum())
    if min(good, bad) < MIN_EACH:
        raise ValueError(
            f"{len(examples)} leads with outcomes, {good} good: "
            f"need at least {MIN_EACH} good and {MIN_EACH} bad outcomes to learn from"
        )
    index = np.arange(len(examples))
    train_i, test_i = train_test_split(
        index, test_size=settings.test_share, stratify=good_all, random_state=settings.seed
    )
    train = [examples[i] for i in sorted(train_i)]
    test = [examples[i] for i in sorted(test_i)]
    feature_set = build_features(
        model,
        train,
        post_outcome=post_outcome,
        attributes=settings.attributes,
        min_support=settings.min_support,
    )
    y_train, eligible_tr, qualified_tr = _arrays(train)
    y_test, eligible_te, qualified_te = _arrays(test)
    x_train = feature_matrix(feature_set.features, train, feature_set.probe)
    if settings.pairs > 0:  # rank attribute features by a first fit, then add their pairs
        first = fit_regression(x_train, y_train.astype(int), strengths=(1.0,), folds=0)
        extra = pairs(
            feature_set.features, x_train, first.weights, settings.pairs, settings.min_support
        )
        x_train = with_pairs(x_train, feature_set.features, extra)
        feature_set = replace(feature_set, features=(*feature_set.features, *extra))
    features = feature_set.features
    x_test = feature_matrix(features, test, feature_set.probe)
    # A feature (nearly) the same for every training lead says nothing: its points go to 0.
    varied = x_train.std(axis=0) > 0.01
    fitted = fit_regression(
        x_train[:, varied], y_train.astype(int), penalty=settings.penalty, seed=settings.seed
    )
    weights = np.zeros(len(features))
    weights[varied] = fitted.weights
    regression = replace(fitted, weights=weights)
    points = scorecard_points(regression.weights, settings.points_to_double)
    base_doc = yaml.safe_load(base_text)
    draft_name = name or f"{model.name}-learned"
    doc = draft_document(base_doc, model, features, points, draft_name, settings.min_points)
    doc["version"] = "draft"
    provisional = load_model(draft_text(doc, ()), "<draft>")
    train_scores = draft_scores(provisional, train, features, x_train)
    calibration = calibrate(
        train_scores, y_train.astype(int), settings.points_to_double, f"{len(train)} leads"
    )
    scale_up = len(examples) / len(train)
    choice = choose_thresholds(
        train_scores,
        y_train,
        eligible_tr,
        qualified_tr,
        settings.target,
        _weeks(train) if settings.target.kind == "top" else None,
        scale_up,
        floor=mql_floor(model),
    )
    set_thresholds(doc, choice, calibration)
    # Each draft its own version: a digest of what it says (model draft refuses a
    # version saved before with another text).
    digest = hashlib.sha256(draft_text(doc, ()).encode()).hexdigest()[:10]
    doc["version"] = f"draft-{digest}"
    text = draft_text(doc, _header(model, settings, choice, len(train)))
    draft = load_model(text, "<draft>")
    test_scores = draft_scores(draft, test, features, x_test)

    base_train = np.array([e.breakdown.total for e in train])
    base_test = np.array([e.breakdown.total for e in test])
    base_p = _platt(base_train, y_train).predict_proba(base_test.reshape(-1, 1))[:, 1]
    lr_train = regression.probabilities(x_train)
    lr_test = regression.probabilities(x_test)
    lr_choice = choose_thresholds(
        lr_train,
        y_train,
        eligible_tr,
        qualified_tr,
        settings.target,
        _weeks(train) if settings.target.kind == "top" else None,
        scale_up,
    )
    metrics = (
        measure(
            "base",
            base_test,
            base_p,
            y_test,
            eligible_te,
            qualified_te,
            model.thresholds.mql,
            model.thresholds.sql,
        ),
        measure(
            "learned",
            test_scores,
            np.array([calibration.probability(s) for s in test_scores]),
            y_test,
            eligible_te,
            qualified_te,
            draft.thresholds.mql,
            draft.thresholds.sql,
        ),
        measure(
            "logistic",
            lr_test,
            lr_test,
            y_test,
            eligible_te,
            qualified_te,
            lr_choice.mql,
            lr_choice.sql,
        ),
    )
    volume = at_volume(base_test, model.thresholds.sql, test_scores, y_test, qualified_te)
    handovers = at_volume(base_test, model.thresholds.sql, test_scores, y_test, eligible_te)
    written = sum(1 for r in draft.fit if r.id not in {f.id for f in model.fit})
    warnings: list[str] = []
    base_auc, learned_auc = metrics[0].auc, metrics[1].auc
    if learned_auc < base_auc:  # False when either is NaN
        warnings.append(
            f"the draft ranks the held-out leads worse than the base model (AUC "
            f"{learned_auc:.3f} against {base_auc:.3f}): do not publish it as is; keep the "
            "base model, or try other attributes, more outcomes or --pairs 0"
        )
    return LearnResult(
        text,
        draft,
        len(train),
        len(test),
        int(y_train.sum()),
        int(y_test.sum()),
        feature_set,
        regression,
        choice,
        calibration,
        metrics,
        volume,
        handovers,
        written,
        tuple(warnings),
    )


def mql_floor(model: ScoringModel) -> float | None:
    """The lowest MQL threshold a draft may get: 0 when the base model's thresholds are not
    negative (a lead whose evidence adds up to less than nothing is not an MQL)."""
    return 0.0 if min(model.thresholds.mql, model.thresholds.sql) >= 0 else None


def _header(model: ScoringModel, settings: Settings, choice: ThresholdChoice, n: int) -> list[str]:
    scale = settings.points_to_double
    penalty = settings.penalty.upper()
    return [
        f"Learned from {n:,} leads with known outcomes, starting from "
        f"{model.name}@{model.version}.",
        f"A scorecard: {scale:g} points double the odds of a good outcome (each rule's points",
        f"are its logistic regression coefficient x {scale:g} / ln 2, rounded; {penalty}",
        "regularisation chosen by cross-validation). Rules keep their kinds and conditions;",
        "fit rules after the base model's are learned from the leads' attributes.",
        f"SQL threshold: {choice.note} (target {settings.target}).",
        "MQL threshold: the lowest score whose leads' precision reaches half-way from the",
        "base rate to the precision at the SQL threshold"
        + (", never below 0." if mql_floor(model) is not None else "."),
        "calibration: probability of a good outcome = 1 / (1 + exp(-(slope * score + intercept))).",
        "A draft: backtest it before publishing.",
    ]


def fmt(value: float | None, percent: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1%}" if percent else f"{value:.3f}"
