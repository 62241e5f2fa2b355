"""Properties of the reference evaluator that must hold for any events."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import T0, at, ev, model, points, rules, score
from leadgate.domain.events import Event
from leadgate.domain.model import Cap, EventRule, GapRule, ScoringModel
from leadgate.domain.model_file import load_model
from leadgate.domain.scoring import EPOCH, Breakdown
from leadgate.domain.yamldoc import SpecError

settings.register_profile("domain", max_examples=60, deadline=None)
settings.load_profile("domain")

RULES = """\
- {id: pricing, event: page_viewed, where: {path: {glob: '/pricing*'}}, points: 10,
   cap: {total: 25}}
- id: services
  event: page_viewed
  where: {path: {glob: '/services/*'}}
  points: 3
  cap: {total: 12, period: 1d, period_max: 5}
  group: content
- {id: guides, event: asset_downloaded, once_per: asset, points: 8, cap: {total: 20},
   group: content}
- {id: repeat, event: page_viewed, count_at_least: 3, within: 2d, points: 10}
- id: opens
  kind: ratio
  numerator: {event: email_opened, distinct: campaign}
  denominator: {event: email_delivered, distinct: campaign}
  at_least: 0.5
  min_denominator: 2
  points: 8
- {id: back, kind: return_after_gap, event: page_viewed, gap: 3d, points: 5, cap: {total: 12}}
- {id: quote, event: quote_requested, points: 20, decay: {half_life: 3d}}
"""
WINDOWED_AND_NEGATIVE = """\
- {id: recent-pages, event: page_viewed, window: 7d, points: 2, cap: {total: 7}}
- {id: recent-repeat, event: page_viewed, count_at_least: 2, window: 5d, points: 4}
- {id: recent-back, kind: return_after_gap, event: page_viewed, gap: 2d, window: 6d, points: 3}
- {id: unsubscribed, event: email_unsubscribed, points: -15, cap: {total: 15}, decay: none}
- {id: bounced, event: email_bounced, points: -5}
"""
HEAD = """\
groups: [content]
intent_actions:
  - event: quote_requested
fit:
  - {id: senior, field: title, matches: '(?i)director', points: 10, group: content}
  - {id: free-mail, field: email_domain, in_list: free_email_providers, points: -10}
"""

FULL = rules(RULES + WINDOWED_AND_NEGATIVE, decay="{half_life: 10d}", head=HEAD)
POSITIVE_NO_WINDOWS = rules(RULES, decay="{half_life: 10d}", head=HEAD.split("  - {id: free")[0])
NO_DECAY = rules(RULES + WINDOWED_AND_NEGATIVE, head=HEAD)
MODELS = st.sampled_from([FULL, NO_DECAY])

HORIZON = timedelta(days=20)
campaigns = st.sampled_from(["c1", "c2", "c3", "c4"])
kinds = st.one_of(
    st.tuples(
        st.just("page_viewed"),
        st.fixed_dictionaries(
            {"path": st.sampled_from(["/pricing", "/pricing/team", "/services/a", "/", "/about"])}
        ),
    ),
    st.tuples(
        st.just("asset_downloaded"),
        st.one_of(st.just({}), st.fixed_dictionaries({"asset": st.sampled_from(["g1", "g2"])})),
    ),
    st.tuples(st.just("email_delivered"), st.fixed_dictionaries({"campaign": campaigns})),
    st.tuples(st.just("email_opened"), st.fixed_dictionaries({"campaign": campaigns})),
    st.tuples(
        st.sampled_from(["email_unsubscribed", "email_bounced", "quote_requested"]), st.just({})
    ),
)
# Whole hours make exact boundaries (gaps, windows, spans, UTC midnight) common.
offsets = st.integers(0, int(HORIZON.total_seconds() // 3600)).map(lambda h: timedelta(hours=h))
specs = st.lists(st.tuples(kinds, offsets), max_size=20)
attributes = st.fixed_dictionaries(
    {},
    optional={
        "title": st.sampled_from(["Director", "Intern"]),
        "email": st.sampled_from(["a@gmail.com", "a@acme.example"]),
    },
)


def build(spec: list[tuple[tuple[str, dict[str, Any]], timedelta]]) -> list[Event]:
    return [
        Event(f"e{i}", "lead-1", kind, T0 + offset, props)
        for i, ((kind, props), offset) in enumerate(spec)
    ]


def evaluate_at(m: ScoringModel, events: list[Event], as_of: datetime, attrs: Any) -> Breakdown:
    return score(m, events, as_of, **attrs)


AS_OF = T0 + HORIZON


@given(MODELS, specs, attributes, st.randoms(use_true_random=False), st.data())
def test_order_and_repeated_ids_do_not_matter(
    m: ScoringModel, spec: Any, attrs: Any, rnd: Any, data: st.DataObject
) -> None:
    events = build(spec)
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    shuffled = events + repeats
    rnd.shuffle(shuffled)
    assert evaluate_at(m, shuffled, AS_OF, attrs) == evaluate_at(m, events, AS_OF, attrs)


@given(MODELS, specs, st.data())
def test_conflicting_copies_of_an_id_resolve_the_same_in_any_order(
    m: ScoringModel, spec: Any, data: st.DataObject
) -> None:
    events = build(spec)
    if not events:
        return
    copies = data.draw(st.lists(st.tuples(st.sampled_from(events), kinds, offsets), max_size=5))
    conflicting = [
        Event(e.id, e.lead_id, kind, T0 + offset, props) for e, (kind, props), offset in copies
    ]
    every = events + conflicting
    reordered = data.draw(st.permutations(every))
    assert evaluate_at(m, reordered, AS_OF, {}) == evaluate_at(m, every, AS_OF, {})


@given(MODELS, specs, attributes)
def test_rule_points_add_up(m: ScoringModel, spec: Any, attrs: Any) -> None:
    b = evaluate_at(m, build(spec), AS_OF, attrs)
    fit = [r.points for r in b.rules if r.kind == "fit"]
    engagement = [r.points for r in b.rules if r.kind != "fit"]
    assert b.total == b.fit + b.engagement
    assert math.isclose(sum(fit) + sum(engagement), b.total, abs_tol=1e-9)
    assert math.isclose(b.fit, sum(fit), abs_tol=1e-9)
    assert math.isclose(b.engagement, sum(engagement), abs_tol=1e-9)
    assert (b.groups["fit"], b.groups["engagement"]) == (b.fit, b.engagement)
    content = sum(r.points for r in b.rules if r.group == "content")
    assert math.isclose(b.groups["content"], content, abs_tol=1e-9)
    for r in b.rules:
        if r.kind != "fit":
            assert math.isclose(r.points, sum(a.points for a in r.awards), abs_tol=1e-9)


@given(MODELS, specs, offsets)
def test_decay_never_grows_points(m: ScoringModel, spec: Any, later: timedelta) -> None:
    b = evaluate_at(m, build(spec), AS_OF + later, {})
    for r in b.rules:
        for award in r.awards:
            assert abs(award.points) <= abs(award.raw)
            assert award.points * award.raw >= 0
            assert award.at <= b.as_of


@given(MODELS, specs)
def test_caps_are_never_exceeded(m: ScoringModel, spec: Any) -> None:
    b = evaluate_at(m, build(spec), AS_OF, {})
    for rule in m.rules:
        cap: Cap | None = getattr(rule, "cap", None)
        if not isinstance(rule, EventRule | GapRule) or cap is None:
            continue
        awards = next(r.awards for r in b.rules if r.rule_id == rule.id)
        if cap.total is not None:
            assert sum(abs(a.raw) for a in awards) <= cap.total + 1e-9
        if cap.period is not None and cap.period_max is not None:
            per_period: dict[int, float] = defaultdict(float)
            for a in awards:
                per_period[(a.at - EPOCH) // cap.period] += abs(a.raw)
            assert all(v <= cap.period_max + 1e-9 for v in per_period.values())


@given(specs, st.integers(0, 24 * 200))
def test_positive_model_without_windows_never_gains_with_time(spec: Any, hours: int) -> None:
    events = build(spec)
    now = evaluate_at(POSITIVE_NO_WINDOWS, events, AS_OF, {})
    later = evaluate_at(POSITIVE_NO_WINDOWS, events, AS_OF + timedelta(hours=hours), {})
    assert later.engagement <= now.engagement + 1e-9
    for before, after in zip(now.rules, later.rules, strict=True):
        assert after.points <= before.points + 1e-9


def test_windows_with_caps_can_raise_a_score_as_old_events_leave() -> None:
    # Why the property above excludes windows: the cap frees up when the oldest event leaves.
    m = rules(
        "- {id: r, event: page_viewed, window: 7d, points: 10, cap: {total: 10}}",
        decay="{half_life: 10d}",
    )
    events = [ev("page_viewed", at(days=0)), ev("page_viewed", at(days=5))]
    day6, day8 = score(m, events, at(days=6)), score(m, events, at(days=8))
    assert points(day6, "r") < points(day8, "r")
    assert points(day8, "r") == 10 * 0.5 ** (3 / 10)


@given(MODELS, specs, specs, st.integers(0, int(HORIZON.total_seconds() // 3600)))
def test_events_after_as_of_change_nothing(
    m: ScoringModel, spec: Any, extra: Any, cut_hours: int
) -> None:
    as_of = T0 + timedelta(hours=cut_hours)
    events = [e for e in build(spec) if e.timestamp <= as_of]
    future = [
        replace(e, id=f"f{i}", timestamp=as_of + timedelta(hours=1) + (e.timestamp - T0))
        for i, e in enumerate(build(extra))
    ]
    same_ids_later = [replace(e, timestamp=as_of + timedelta(seconds=1)) for e in events[:3]]
    expected = evaluate_at(m, events, as_of, {})
    assert evaluate_at(m, events + future + same_ids_later, as_of, {}) == expected


BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@given(MODELS, specs, st.sampled_from([BERLIN, NEW_YORK]))
def test_time_zone_of_the_timestamps_does_not_matter(
    m: ScoringModel, spec: Any, zone: ZoneInfo
) -> None:
    # The horizon spans the spring clock change in both zones (10 March and 31 March 2024).
    start = datetime(2024, 3, 8, tzinfo=UTC)
    events = [replace(e, timestamp=start + (e.timestamp - T0)) for e in build(spec)]
    zoned = [replace(e, timestamp=e.timestamp.astimezone(zone)) for e in events]
    as_of = start + HORIZON
    assert evaluate_at(m, zoned, as_of, {}) == evaluate_at(m, events, as_of, {})


# -- model files: junk in, a SpecError out ---------------------------------------------------

WORDS = [
    *("id", "event", "points", "where", "cap", "total", "period", "period_max", "kind"),
    *("window", "decay", "half_life", "count_at_least", "within", "gap", "once_per", "group"),
    *("numerator", "denominator", "distinct", "at_least", "field", "reason", "text_matches"),
    *("honeypot", "matches", "in", "glob", "gte", "in_list", "exists", "lists", "groups"),
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 50),
    st.sampled_from(["30d", "0d", "x", "page_viewed", "path", "campaign", "spam", "(", "ratio"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(WORDS), inner),
    max_leaves=4,
)
entries = st.lists(st.dictionaries(st.sampled_from(WORDS), values, max_size=5), max_size=2)
model_data = st.fixed_dictionaries(
    {"thresholds": st.just({"mql": 10, "sql": 20}) | values},
    optional={
        "rules": entries | values,
        "fit": entries,
        "disqualify": entries,
        "intent_actions": entries,
        "groups": values,
        "lists": values,
        "custom_events": values,
        "attributes": values,
        "decay": values,
        "intent_window": values,
    },
)


@settings(max_examples=40)
@given(model_data)
def test_any_model_file_loads_or_raises_spec_error(data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data)
    try:
        loaded = load_model(text, "fuzz.yaml")
    except SpecError as exc:
        assert exc.problems
        assert all(p.startswith("fuzz.yaml:") for p in exc.problems)
    else:
        assert isinstance(loaded, ScoringModel)


def test_property_models_load() -> None:
    assert [r.id for r in FULL.rules][-2:] == ["unsubscribed", "bounced"]
    assert len(POSITIVE_NO_WINDOWS.rules) == 7
    assert all(r.points > 0 and r.window is None for r in POSITIVE_NO_WINDOWS.rules)
    assert [f.id for f in POSITIVE_NO_WINDOWS.fit] == ["senior"]
    assert model("thresholds: {mql: 1, sql: 1}\n").rules == ()
