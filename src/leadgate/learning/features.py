"""Features of a lead as of its decision time, each one a rule a model file can hold.

Three kinds, all read from an ``Example`` (so none can look past the outcome):

- ``rule``: one per engagement rule of the base model that gives points: how strongly it
  fired, as its points over its ``scale`` (the cap total, else the points of one award):
  0 when it did not fire, 1 at the cap, less when decayed. The evaluator's result is
  linear in a rule's points and caps, so a weight ``w`` on the feature is the same rule
  with its points and caps multiplied by ``w / scale``.
- ``fit``: one per fit rule of the base model: 1 when it holds, else 0.
- ``candidate``: a fit rule proposed from the lead's attributes: ``field == value`` for
  values with enough support, ``field exists`` when missing answers are common, and a
  few ``field >= x`` steps for numbers.

Personal data: names, email addresses, phone numbers and street addresses say who a
lead is, not how likely they are to buy; they are never features (``personal`` says
which), even when named in ``attributes``. Cities, countries and post codes may be.

Leakage guard: attributes known only after the outcome (the mapping's ``post_outcome``
columns, the outcome column, and any the user lists) are never used. Asking for one by
name raises ``LeakageError`` naming it.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from leadgate.domain.conditions import Condition, as_number, build_condition
from leadgate.domain.model import CountRule, EventRule, FitRule, ScoringModel
from leadgate.domain.scoring import evaluate
from leadgate.learning.dataset import Example

QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
MIN_SUPPORT = 30  # leads on each side of a candidate feature (with it and without it)


class LeakageError(ValueError):
    """Attributes known only after the outcome were asked for as features."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        listed = ", ".join(repr(n) for n in names)
        super().__init__(
            f"refused: {listed} {'is' if len(names) == 1 else 'are'} known only after the "
            "outcome (post_outcome in the mapping, the outcome itself, or excluded); "
            "learning from them would teach the model the answer"
        )


def normalise(name: str) -> str:
    """``Lead Quality``, ``lead_quality`` and ``lead-quality`` are the same name."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


@dataclass(frozen=True, slots=True)
class Feature:
    id: str  # the rule id in the draft model
    label: str
    kind: str  # "rule", "fit" or "candidate"
    scale: float = 1.0  # rule: base points at which the feature is 1
    conditions: tuple[Condition, ...] = ()  # fit and candidate: the attribute tests
    parts: tuple[str, ...] = ()  # a pair: the ids of the two features that must both hold
    at_least: int = 0  # "more": the base rule (``parts[0]``) matched this many times

    def spec(self) -> dict[str, Any]:
        """A candidate as a fit rule of the model file (points are added later)."""
        head: dict[str, Any] = {"id": self.id, "label": self.label}
        if len(self.conditions) == 1:
            c = self.conditions[0]
            return {**head, "field": c.field, c.op: c.value}
        return {**head, "where": {c.field: {c.op: c.value} for c in self.conditions}}


@dataclass(frozen=True)
class FeatureSet:
    features: tuple[Feature, ...]
    skipped: Mapping[str, str] = field(default_factory=dict)  # attribute -> why not used
    refused: tuple[str, ...] = ()  # post-outcome attributes present in the data, never read
    probe: ScoringModel | None = None  # the count rules of the "more" features, 1 point each

    @property
    def attributes(self) -> list[str]:
        """Attributes the candidate features read (to declare in the model file)."""
        seen = {c.field for f in self.features if f.kind == "candidate" for c in f.conditions}
        return sorted(seen)


# Attributes that identify or contact a person: never features (compared normalised,
# after a leading contact_, lead_, person_ or customer_).
PERSONAL: dict[str, frozenset[str]] = {
    "a personal name": frozenset(
        {
            "name", "full_name", "fullname", "first_name", "firstname", "fname", "given_name",
            "last_name", "lastname", "lname", "surname", "family_name", "middle_name",
            "display_name", "nickname",
        }
    ),
    "an email address": frozenset(
        {"email", "e_mail", "email_address", "work_email", "personal_email"}
    ),
    "a phone number": frozenset(
        {
            "phone", "phone_number", "phone_no", "telephone", "tel", "mobile", "mobile_phone",
            "mobile_number", "cell_phone", "home_phone", "work_phone", "fax",
            "whatsapp",
        }
    ),
    "a street address": frozenset(
        {
            "street", "street_address", "address", "address_line", "address_line_1",
            "address_line_2", "address_line1", "address_line2", "address1", "address2",
            "home_address", "postal_address", "mailing_address", "house_number",
        }
    ),
}  # fmt: skip
_PREFIXES = ("contact_", "lead_", "person_", "customer_")


def personal(name: str) -> str | None:
    """What kind of personal data an attribute holds (by its name), or None."""
    key = normalise(name)
    for prefix in _PREFIXES:
        if key.startswith(prefix) and key != prefix.rstrip("_"):
            key = key.removeprefix(prefix)
            break
    return next((why for why, names in PERSONAL.items() if key in names), None)


def check_leakage(requested: Iterable[str], post_outcome: Iterable[str]) -> None:
    """Raise LeakageError naming every requested attribute that is post-outcome."""
    banned = {normalise(n) for n in post_outcome}
    leaky = [name for name in requested if normalise(name) in banned]
    if leaky:
        raise LeakageError(leaky)


def rule_scale(model: ScoringModel, rule_id: str) -> float:
    """The signed points at which a rule's feature is 1: its cap total, else its points."""
    rule = model.rule(rule_id)
    cap = getattr(rule, "cap", None)
    size = cap.total if cap is not None and cap.total is not None else abs(rule.points)
    return size if rule.points > 0 else -size


def build_features(
    model: ScoringModel,
    examples: Sequence[Example],
    *,
    post_outcome: Iterable[str] = (),
    attributes: Sequence[str] | None = None,
    min_support: int = MIN_SUPPORT,
) -> FeatureSet:
    """Rule, fit and candidate features from (training) examples.

    ``attributes``: the attributes to propose fit rules from (default: every attribute
    the leads carry, except identifiers, personal data and post-outcome ones). Naming a
    post-outcome attribute raises LeakageError; personal data is skipped, named or not.
    """
    post = list(post_outcome)
    if attributes is not None:
        check_leakage(attributes, post)
    banned = {normalise(n) for n in post}
    features: list[Feature] = []
    for rule in model.rules:
        if rule.points != 0:
            features.append(Feature(rule.id, rule.label, "rule", rule_scale(model, rule.id)))
    more = _more_than_cap(model)
    features += [Feature(f.id, f.label, "fit", 1.0, f.where) for f in model.fit]
    present: Counter[str] = Counter()
    for ex in examples:
        present.update(k for k, v in ex.breakdown.attributes.items() if v is not None)
    names = list(attributes) if attributes is not None else sorted(present)
    refused = tuple(n for n in names if normalise(n) in banned)
    skipped: dict[str, str] = {}
    taken = {f.id for f in features} | {d.id for d in model.disqualifiers}
    taken |= {f.id for f, _ in more}
    existing = {_key(f) for f in model.fit if len(f.where) == 1}
    for name in names:
        if normalise(name) in banned:
            continue
        if kind := personal(name):
            skipped[name] = kind
            continue
        values = [ex.breakdown.attributes.get(name) for ex in examples]
        proposed, why = _candidates(name, values, model, min_support)
        if why:
            skipped[name] = why
        for feature in proposed:
            if _cond_key(feature.conditions[0]) in existing:
                continue
            feature_id = _unique(feature.id, taken)
            taken.add(feature_id)
            features.append(replace(feature, id=feature_id))
    probe = replace(model, rules=tuple(r for _, r in more), fit=(), disqualifiers=())
    features += [f for f, _ in more]
    return FeatureSet(tuple(features), skipped, refused, probe if more else None)


def _more_than_cap(model: ScoringModel) -> list[tuple[Feature, CountRule]]:
    """For each capped event rule: "matched k times" for the two counts past its cap.

    A capped rule stops counting at its cap; these count rules (same event and
    conditions, window and decay) say whether more of it still means more.
    """
    out: list[tuple[Feature, CountRule]] = []
    taken = {r.id for r in (*model.rules, *model.fit, *model.disqualifiers)}
    for rule in model.rules:
        if not isinstance(rule, EventRule) or rule.cap is None or rule.cap.total is None:
            continue
        if rule.points == 0 or rule.once_per is not None:
            continue
        full = math.ceil(rule.cap.total / abs(rule.points) - 1e-9)
        for k in (full + 1, full + 3):
            rid = _unique(f"{rule.id}-{k}-plus", taken)
            taken.add(rid)
            label = f"{rule.label}: {k}+ times"
            count = CountRule(
                rid, 1.0, label, rule.line, None, rule.window, rule.half_life, rule.match, k
            )
            out.append((Feature(rid, label, "more", 1.0, (), (rule.id,), k), count))
    return out


def _key(rule: FitRule) -> tuple[str, str, str]:
    return _cond_key(rule.where[0])


def _cond_key(c: Condition) -> tuple[str, str, str]:
    return (c.field, c.op, repr(c.value))


def _unique(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _slug(value: object) -> str:
    return re.sub(r"[^0-9a-z]+", "-", str(value).lower()).strip("-")[:40] or "value"


def _candidates(
    name: str, values: list[Any], model: ScoringModel, min_support: int
) -> tuple[list[Feature], str]:
    """Proposed features for one attribute, or none and why."""
    if "." in name:
        return [], "its name has a dot (read as a nested field)"
    known = [v for v in values if v is not None and v != ""]
    n = len(values)
    if len(known) < min_support:
        return [], f"fewer than {min_support} leads have it"
    if any(isinstance(v, list | dict) for v in known):
        return [], "not a single value"
    distinct = len({repr(v) for v in known})
    if distinct >= 0.9 * len(known) and len(known) >= 50:
        return [], "an identifier (nearly every lead has its own value)"
    slug = _slug(name)
    out: list[Feature] = []
    missing = n - len(known)
    if min(missing, len(known)) >= min_support:
        out.append(_feature(f"{slug}-given", f"{name} given", name, "exists", True, model))
    numbers = [as_number(v) for v in known]
    numeric = all(x is not None for x in numbers) and not any(isinstance(v, bool) for v in known)
    if numeric and distinct > 2:
        array = np.array([x for x in numbers if x is not None], dtype=float)
        for limit in sorted({_round(float(np.quantile(array, q))) for q in QUANTILES}):
            if limit <= array.min():  # holds for every lead that has a value: "given"
                continue
            support = int((array >= limit).sum())
            if min_support <= support <= n - min_support:
                label = f"{name} at least {limit:g}"
                out.append(
                    _feature(f"{slug}-{_slug(f'{limit:g}')}-plus", label, name, "gte", limit, model)
                )
        return out, "" if out else "no step has enough leads on both sides"
    counts = Counter(known if all(isinstance(v, bool) for v in known) else map(str, known))
    for value, count in counts.most_common():
        if count < min_support:
            break
        if count > n - min_support or (isinstance(value, bool) and not value):
            continue
        label = f"{name} is {value}"
        out.append(_feature(f"{slug}-{_slug(value)}", label, name, "equals", value, model))
    return out, "" if out else f"no value has {min_support}+ leads with and without it"


def _feature(fid: str, label: str, name: str, op: str, value: Any, model: ScoringModel) -> Feature:
    return Feature(fid, label, "candidate", 1.0, (build_condition(name, op, value, model.lists),))


def _round(x: float) -> float:
    """A readable step: integers stay integers, others keep 3 significant digits."""
    if x == int(x):
        return float(int(x))
    return float(f"{x:.3g}")


def pairs(
    features: Sequence[Feature],
    x: np.ndarray,
    weights: np.ndarray,
    top: int = 25,
    min_support: int = MIN_SUPPORT,
) -> list[Feature]:
    """Both-hold features for pairs of the ``top`` attribute features by weight.

    Only pairs on different attributes, each with ``min_support`` leads on both sides
    and different from either part alone; each is a fit rule with a two-field ``where``.
    """
    single = [
        j
        for j, f in enumerate(features)
        if f.kind in ("fit", "candidate") and not f.parts and f.conditions
    ]
    ranked = sorted(single, key=lambda j: -abs(float(weights[j])))[:top]
    taken = {f.id for f in features}
    out: list[Feature] = []
    for a, b in itertools.combinations(sorted(ranked), 2):
        fa, fb = features[a], features[b]
        fields_a, fields_b = {c.field for c in fa.conditions}, {c.field for c in fb.conditions}
        if fields_a & fields_b or len(fa.conditions) + len(fb.conditions) != 2:
            continue
        both = x[:, a] * x[:, b]
        support = int(both.sum())
        if not min_support <= support <= len(x) - min_support:
            continue
        if (both == x[:, a]).all() or (both == x[:, b]).all():
            continue
        pair_id = _unique(f"{fa.id}-and-{fb.id}", taken)
        taken.add(pair_id)
        label = f"{fa.label} and {fb.label}"
        conditions = (*fa.conditions, *fb.conditions)
        out.append(Feature(pair_id, label, "candidate", 1.0, conditions, (fa.id, fb.id)))
    return out


def feature_matrix(
    features: Sequence[Feature], examples: Sequence[Example], probe: ScoringModel | None = None
) -> np.ndarray:
    """One row per example, one column per feature (see the module docstring)."""
    x = np.zeros((len(examples), len(features)), dtype=float)
    column = {f.id: j for j, f in enumerate(features)}
    results = [{r.rule_id: r for r in ex.breakdown.rules} for ex in examples]
    if probe is not None:
        for ex, found in zip(examples, results, strict=True):
            found.update(
                (r.rule_id, r) for r in evaluate(probe, ex.lead, ex.events, ex.as_of).rules
            )
    attributes = [ex.breakdown.attributes for ex in examples]
    for j, f in enumerate(features):
        if f.kind == "candidate" and f.parts:
            continue
        if f.kind in ("rule", "more"):
            x[:, j] = [r[f.id].points / f.scale for r in results]
        elif f.kind == "fit":
            x[:, j] = [float(r[f.id].matched) for r in results]
        else:
            x[:, j] = _holds(f.conditions, attributes)
    for j, f in enumerate(features):  # a pair holds when both of its parts do
        if f.kind == "candidate" and f.parts:
            x[:, j] = x[:, column[f.parts[0]]] * x[:, column[f.parts[1]]]
    return x


def _holds(conditions: tuple[Condition, ...], rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """Whether all conditions hold for each row; one test per distinct value of a field."""
    if len(conditions) != 1 or "." in conditions[0].field:
        return [float(all(c.holds(row) for c in conditions)) for row in rows]
    c = conditions[0]
    seen: dict[tuple[type, Any], float] = {}
    out: list[float] = []
    for row in rows:
        value = row.get(c.field)
        key = (type(value), value if isinstance(value, str | int | float | bool) else id(value))
        hit = seen.get(key)
        if hit is None:
            hit = seen[key] = float(c.holds(row))
        out.append(hit)
    return out


def with_pairs(x: np.ndarray, features: Sequence[Feature], extra: Sequence[Feature]) -> np.ndarray:
    """``x`` (for ``features``) with the columns of the pair features ``extra`` added."""
    column = {f.id: j for j, f in enumerate(features)}
    added = [x[:, column[f.parts[0]]] * x[:, column[f.parts[1]]] for f in extra]
    return np.column_stack([x, *added]) if added else x
