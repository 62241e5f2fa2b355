"""The reference evaluator: every rule kind at its boundaries, decay, fit, groups, time zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from builders import at, default_model, ev, points, raw_awards, result, rules, score
from leadgate.domain.events import Event, Lead, parse_timestamp
from leadgate.domain.scoring import evaluate, prepare_events

BERLIN = ZoneInfo("Europe/Berlin")
SIGNAL_HEAD = "custom_events: [signal]\n"


# -- conditions, as written in a model file ------------------------------------------------


@pytest.mark.parametrize(
    ("where", "props", "expected"),
    [
        ("{form: contact}", {"form": "contact"}, 5),
        ("{form: contact}", {"form": "contact-sales"}, 0),
        ("{budget: {equals: 5000}}", {"budget": "5000"}, 5),
        ("{budget: {equals: 5000}}", {"budget": 5000.0}, 5),
        ("{budget: {equals: '5000'}}", {"budget": 5000}, 5),
        ("{budget: 5000}", {"budget": "5,000"}, 0),
        ("{urgent: true}", {"urgent": "yes"}, 5),
        ("{urgent: true}", {"urgent": "no"}, 0),
        ("{urgent: {equals: false}}", {"urgent": False}, 5),
        ("{form: {not_equals: newsletter}}", {"form": "contact"}, 5),
        ("{form: {not_equals: newsletter}}", {"form": "newsletter"}, 0),
        ("{form: {in: [contact, quote]}}", {"form": "quote"}, 5),
        ("{form: [contact, quote]}", {"form": "careers"}, 0),
        ("{form: {not_in: [newsletter]}}", {"form": "quote"}, 5),
        ("{form: {not_in: [newsletter]}}", {}, 0),
        ("{path: {glob: '/pricing*'}}", {"path": "/pricing/teams"}, 5),
        ("{path: {glob: ['/careers*', '/jobs*']}}", {"path": "/jobs/1"}, 5),
        ("{path: {glob: ['/careers*', '/jobs*']}}", {"path": "/blog/jobs"}, 0),
        ("{message: {matches: '(?i)\\bprice'}}", {"message": "Price, please"}, 5),
        ("{message: {matches: '(?i)\\bprice'}}", {"message": "Surprice"}, 0),
        ("{message: {contains: ASAP}}", {"message": "need it asap"}, 5),
        ("{budget: {gt: 1000}}", {"budget": "1000.5"}, 5),
        ("{budget: {gt: 1000}}", {"budget": "lots"}, 0),
        ("{budget: {gte: 1000, lt: 5000}}", {"budget": 1000}, 5),
        ("{budget: {gte: 1000, lt: 5000}}", {"budget": 5000}, 0),
        ("{budget: {lte: 1000}}", {"budget": " 999 "}, 5),
        ("{budget: {exists: true}}", {"budget": ""}, 0),
        ("{budget: {exists: false}}", {}, 5),
        ("{domain: {in_list: free_email_providers}}", {"domain": "GMX.de"}, 5),
        ("{domain: {not_in_list: free_email_providers}}", {"domain": "acme.example"}, 5),
        ("{domain: {not_in_list: free_email_providers}}", {"domain": "gmail.com"}, 0),
        ("{fields.company: {exists: true}}", {"fields": {"company": "Acme"}}, 5),
    ],
)
def test_event_rule_conditions(where: str, props: dict[str, Any], expected: float) -> None:
    m = rules(f"- {{id: r, event: signal, where: {where}, points: 5}}", head=SIGNAL_HEAD)
    assert points(score(m, [ev("signal", at(), **props)]), "r") == expected


def test_rule_matches_only_its_event_type() -> None:
    m = rules("- {id: r, event: page_viewed, points: 5}")
    b = score(m, [ev("asset_downloaded", at()), ev("page_viewed", at(hours=1))])
    assert points(b, "r") == 5
    assert result(b, "r").matched == 1


def test_negative_points_and_negative_totals() -> None:
    m = rules(
        """
        - {id: unsubscribed, event: email_unsubscribed, points: -20}
        - {id: page, event: page_viewed, points: 3}
        """,
        head="fit:\n  - {id: free-mail, field: email_domain, in_list: free_email_providers, "
        "points: -10}\n",
    )
    b = score(m, [ev("email_unsubscribed", at()), ev("page_viewed", at())], email="a@gmail.com")
    assert points(b, "unsubscribed") == -20
    assert (b.fit, b.engagement, b.total) == (-10, -17, -27)


# -- windows ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "counted"),
    [
        pytest.param(at(days=0), True, id="exactly-window-old"),
        pytest.param(at(days=0, seconds=-1), False, id="a-second-older"),
        pytest.param(at(days=6, hours=23), True, id="recent"),
        pytest.param(at(days=7), True, id="at-as-of"),
        pytest.param(at(days=7, seconds=1), False, id="after-as-of"),
    ],
)
def test_window_edges(when: datetime, counted: bool) -> None:
    m = rules("- {id: recent, event: page_viewed, window: 7d, points: 5}")
    b = score(m, [ev("page_viewed", when)], as_of=at(days=7))
    assert points(b, "recent") == (5 if counted else 0)


# -- caps ---------------------------------------------------------------------------------


def test_total_cap_reached_midway_gives_partial_points() -> None:
    m = rules("- {id: guides, event: asset_downloaded, points: 8, cap: {total: 20}}")
    b = score(m, [ev("asset_downloaded", at(hours=h)) for h in range(4)])
    assert raw_awards(b, "guides") == [8, 8, 4]
    r = result(b, "guides")
    assert (r.points, r.matched, r.capped) == (20, 4, True)
    assert r.note == "capped at 20 in total"


def test_cap_keeps_the_earliest_events() -> None:
    m = rules("- {id: r, event: page_viewed, points: 10, cap: {total: 10}}")
    first, second = ev("page_viewed", at(hours=1)), ev("page_viewed", at(hours=2))
    b = score(m, [second, first])
    assert [a.event_id for a in result(b, "r").awards] == [first.id]


def test_negative_points_are_capped_by_magnitude() -> None:
    m = rules("- {id: bounced, event: email_bounced, points: -10, cap: {total: 15}}")
    b = score(m, [ev("email_bounced", at(hours=h)) for h in range(3)])
    assert raw_awards(b, "bounced") == [-10, -5]
    assert points(b, "bounced") == -15


def test_period_cap_reached_mid_day_resets_next_utc_day() -> None:
    m = rules("- {id: s, event: page_viewed, points: 4, cap: {period: 1d, period_max: 10}}")
    day = datetime(2024, 3, 4, tzinfo=UTC)
    times = [day + timedelta(hours=h) for h in (1, 5, 9, 23.99)] + [
        day + timedelta(days=1),
        day + timedelta(days=1, hours=3),
    ]
    b = score(m, [ev("page_viewed", t) for t in times], as_of=day + timedelta(days=2))
    assert raw_awards(b, "s") == [4, 4, 2, 4, 4]  # the fourth event of the first day gives 0
    assert (result(b, "s").matched, result(b, "s").note) == (6, "capped at 10 per 1d")


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        pytest.param("2024-03-04T01:00:00Z", "2024-03-04T23:00:00Z", [4], id="same-utc-day"),
        pytest.param("2024-03-04T23:00:00Z", "2024-03-05T01:00:00Z", [4, 4], id="across-midnight"),
        pytest.param(
            "2024-03-04T10:00:00Z", "2024-03-05T00:30:00+01:00", [4], id="local-next-day-same-utc"
        ),
        pytest.param("2024-03-04T23:59:59Z", "2024-03-05T00:00:00Z", [4, 4], id="one-second-apart"),
    ],
)
def test_period_buckets_align_to_utc_midnight(first: str, second: str, expected: list[int]) -> None:
    m = rules("- {id: s, event: page_viewed, points: 4, cap: {period: 1d, period_max: 4}}")
    events = [ev("page_viewed", parse_timestamp(first)), ev("page_viewed", parse_timestamp(second))]
    b = score(m, events, as_of=at(days=3))
    assert raw_awards(b, "s") == expected


def test_total_and_period_caps_together_name_only_the_limit_reached() -> None:
    m = rules(
        "- {id: s, event: page_viewed, points: 2, cap: {total: 10, period: 1d, period_max: 4}}"
    )
    one_day = score(m, [ev("page_viewed", at(hours=h)) for h in range(3)])
    assert raw_awards(one_day, "s") == [2, 2]
    assert result(one_day, "s").note == "capped at 4 per 1d"
    two_each_day = [ev("page_viewed", at(days=d, hours=h)) for d in range(3) for h in (0, 1)]
    spread = score(m, two_each_day, as_of=at(days=3))
    assert raw_awards(spread, "s") == [2, 2, 2, 2, 2]
    assert result(spread, "s").note == "capped at 10 in total"


# -- once per object ------------------------------------------------------------------------


def test_once_per_counts_each_object_once() -> None:
    m = rules("- {id: guides, event: asset_downloaded, once_per: asset, points: 8}")
    events = [ev("asset_downloaded", at(hours=h), asset=a) for h, a in enumerate("aaba")]
    r = result(score(m, events), "guides")
    assert (r.points, r.matched, r.note) == (16, 4, "2 distinct assets")


def test_once_per_treats_a_missing_property_as_one_object() -> None:
    m = rules("- {id: guides, event: asset_downloaded, once_per: asset, points: 8}")
    events = [
        ev("asset_downloaded", at(hours=1)),
        ev("asset_downloaded", at(hours=2)),
        ev("asset_downloaded", at(hours=3), asset="pricing-guide"),
    ]
    assert raw_awards(score(m, events), "guides") == [8, 8]


def test_once_per_with_cap() -> None:
    m = rules("- {id: g, event: asset_downloaded, once_per: asset, points: 8, cap: {total: 20}}")
    events = [ev("asset_downloaded", at(hours=h), asset=a) for h, a in enumerate("abacd")]
    r = result(score(m, events), "g")
    assert [a.raw for a in r.awards] == [8, 8, 4]
    assert r.note == "4 distinct assets, capped at 20 in total"


# -- count rules ----------------------------------------------------------------------------

COUNT = "- {id: repeat, event: page_viewed, count_at_least: 3, within: 14d, points: 10}"


@pytest.mark.parametrize(
    ("days", "expected", "awarded_day"),
    [
        pytest.param([0, 1], 0, None, id="n-minus-one"),
        pytest.param([0, 1, 2], 10, 2, id="n-events"),
        pytest.param([0, 1, 2, 3, 4, 5], 10, 2, id="more-than-n-once"),
        pytest.param([0, 7, 14], 10, 14, id="exactly-within"),
        pytest.param([0, 7, 14 + 1 / 86400], 0, None, id="a-second-over-within"),
        pytest.param([0, 10, 20, 21], 10, 21, id="sliding-span"),
    ],
)
def test_count_rule(days: list[float], expected: float, awarded_day: float | None) -> None:
    b = score(rules(COUNT), [ev("page_viewed", at(days=d)) for d in days], as_of=at(days=30))
    r = result(b, "repeat")
    assert r.points == expected
    assert [a.at for a in r.awards] == ([] if awarded_day is None else [at(days=awarded_day)])


def test_count_rule_decays_from_the_nth_event() -> None:
    m = rules(COUNT, decay="{half_life: 10d}")
    b = score(m, [ev("page_viewed", at(days=d)) for d in (0, 1, 2)], as_of=at(days=12))
    assert points(b, "repeat") == pytest.approx(5.0)


def test_count_rule_counts_only_events_in_its_window() -> None:
    m = rules("- {id: c, event: page_viewed, count_at_least: 2, window: 7d, points: 10}")
    events = [ev("page_viewed", at(days=0)), ev("page_viewed", at(days=5))]
    assert points(score(m, events, as_of=at(days=7)), "c") == 10
    assert points(score(m, events, as_of=at(days=7, seconds=1)), "c") == 0


# -- ratio rules ----------------------------------------------------------------------------

RATIO = """
- id: opens
  kind: ratio
  numerator: {event: email_opened, distinct: campaign}
  denominator: {event: email_delivered, distinct: campaign}
  at_least: 0.5
  min_denominator: 3
  points: 8
"""


def emails(delivered: str, opened: str) -> list[Event]:
    """One delivery per letter of ``delivered``, one open per letter of ``opened``."""
    out = [ev("email_delivered", at(hours=i), campaign=c) for i, c in enumerate(delivered)]
    return out + [ev("email_opened", at(hours=10 + i), campaign=c) for i, c in enumerate(opened)]


@pytest.mark.parametrize(
    ("delivered", "opened", "expected", "note"),
    [
        pytest.param("ab", "ab", 0, "2 of 2", id="too-few-sends-even-at-100"),
        pytest.param("abcd", "ab", 8, "2 of 4", id="exactly-at-least"),
        pytest.param("abcde", "ab", 0, "2 of 5", id="just-below"),
        pytest.param("abcd", "aaaa", 0, "1 of 4", id="distinct-opens"),
        pytest.param("abcd", "axyz", 0, "1 of 4", id="opens-never-delivered-ignored"),
        pytest.param("aabbcc", "bc", 8, "2 of 3", id="distinct-deliveries"),
        pytest.param("", "abc", 0, "0 of 0", id="nothing-delivered"),
    ],
)
def test_ratio_rule(delivered: str, opened: str, expected: float, note: str) -> None:
    r = result(score(rules(RATIO), emails(delivered, opened)), "opens")
    assert (r.points, r.note) == (expected, note)


def test_ratio_rule_awards_at_the_latest_counted_open() -> None:
    m = rules(RATIO, decay="{half_life: 1d}")
    events = [*emails("abc", "ab"), ev("email_opened", at(days=1), campaign="zz")]
    r = result(score(m, events, as_of=at(days=1, hours=11)), "opens")
    assert [a.at for a in r.awards] == [at(hours=11)]
    assert r.points == pytest.approx(4.0)


def test_ratio_ignores_events_without_the_distinct_property() -> None:
    events = [*emails("abc", "ab"), ev("email_delivered", at(hours=5))]
    assert result(score(rules(RATIO), events), "opens").note == "2 of 3"


# -- return after a gap ---------------------------------------------------------------------

GAP = "- {id: back, kind: return_after_gap, event: page_viewed, gap: 3d, points: 5}"


@pytest.mark.parametrize(
    ("visits", "returns"),
    [
        pytest.param([0], 0, id="first-visit-never"),
        pytest.param([0, 3], 1, id="exactly-gap"),
        pytest.param([0, 3 - 1 / 86400], 0, id="a-second-short"),
        pytest.param([0, 1, 4], 1, id="gap-from-the-previous-visit"),
        pytest.param([0, 1, 3.5], 0, id="short-gaps-do-not-add-up"),
        pytest.param([0, 3, 6, 6.5, 10], 3, id="several-returns"),
    ],
)
def test_return_after_gap(visits: list[float], returns: int) -> None:
    b = score(rules(GAP), [ev("page_viewed", at(days=d)) for d in visits], as_of=at(days=20))
    r = result(b, "back")
    assert (r.points, r.matched) == (5 * returns, returns)


@pytest.mark.parametrize(
    ("visits", "expected"),
    [
        pytest.param([0, 10], 5, id="previous-visit-outside-window-starts-the-gap"),
        pytest.param([0, 4], 0, id="return-itself-outside-window"),
    ],
)
def test_return_after_gap_window(visits: list[float], expected: float) -> None:
    m = rules(
        "- {id: back, kind: return_after_gap, event: page_viewed, gap: 3d, window: 7d, points: 5}"
    )
    b = score(m, [ev("page_viewed", at(days=d)) for d in visits], as_of=at(days=12))
    assert points(b, "back") == expected


def test_return_after_gap_with_cap() -> None:
    m = rules(
        "- {id: back, kind: return_after_gap, event: page_viewed, gap: 3d, points: 5, "
        "cap: {total: 12}}"
    )
    b = score(m, [ev("page_viewed", at(days=d)) for d in (0, 3, 6, 9, 12)], as_of=at(days=20))
    r = result(b, "back")
    assert [a.raw for a in r.awards] == [5, 5, 2]
    assert (r.matched, r.note) == (4, "capped at 12 in total")


# -- decay ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_days", "expected"),
    [(0, 8.0), (10, 4.0), (20, 2.0), (5, 8 * 0.5**0.5), (30, 1.0)],
)
def test_decay_halves_every_half_life(age_days: float, expected: float) -> None:
    m = rules("- {id: r, event: page_viewed, points: 8}", decay="{half_life: 10d}")
    b = score(m, [ev("page_viewed", at())], as_of=at(days=age_days))
    (award,) = result(b, "r").awards
    assert award.raw == 8
    assert award.points == expected


@pytest.mark.parametrize(
    ("rule_decay", "expected"),
    [
        pytest.param("", 4.0, id="model-half-life"),
        pytest.param(", decay: {half_life: 5d}", 2.0, id="rule-override"),
        pytest.param(", decay: none", 8.0, id="decay-none"),
    ],
)
def test_rule_level_decay(rule_decay: str, expected: float) -> None:
    m = rules(f"- {{id: r, event: page_viewed, points: 8{rule_decay}}}", decay="{half_life: 10d}")
    b = score(m, [ev("page_viewed", at())], as_of=at(days=10))
    assert points(b, "r") == pytest.approx(expected)


def test_negative_points_decay_towards_zero() -> None:
    m = rules("- {id: u, event: email_unsubscribed, points: -20}", decay="{half_life: 10d}")
    b = score(m, [ev("email_unsubscribed", at())], as_of=at(days=10))
    assert points(b, "u") == pytest.approx(-10.0)


def test_fit_points_do_not_decay() -> None:
    m = rules(
        "- {id: r, event: page_viewed, points: 8}",
        decay="{half_life: 10d}",
        head="fit:\n  - {id: senior, field: title, matches: '(?i)director', points: 10}\n",
    )
    b = score(m, [ev("page_viewed", at())], as_of=at(days=100), title="Director")
    assert b.fit == 10
    assert b.engagement == pytest.approx(8 * 0.5**10)


# -- fit ------------------------------------------------------------------------------------

FIT = """\
fit:
  - {id: senior, field: title, matches: '(?i)\\b(director|head|founder)\\b', points: 10}
  - {id: size, field: company_size, gte: 10, lte: 500, points: 10}
  - {id: free-mail, field: email_domain, in_list: free_email_providers, points: -10}
  - id: dach-lead
    where:
      title: {exists: true}
      country: {in: [DE, AT, CH]}
    points: 5
"""


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"title": "Head of Marketing"}, {"senior": 10, "dach-lead": 0}),
        ({"title": "Marketing Intern"}, {"senior": 0}),
        ({"title": "Headhunter"}, {"senior": 0}),
        ({"company_size": "250"}, {"size": 10}),
        ({"company_size": 10}, {"size": 10}),
        ({"company_size": "5000"}, {"size": 0}),
        ({"company_size": "n/a"}, {"size": 0}),
        ({"email": "jo@Gmail.com"}, {"free-mail": -10}),
        ({"email": "jo@acme.example"}, {"free-mail": 0}),
        ({"email": "jo@gmail.com", "email_domain": "acme.example"}, {"free-mail": 0}),
        ({"email": "not-an-email"}, {"free-mail": 0}),
        ({"title": "CTO", "country": "DE"}, {"dach-lead": 5}),
        ({"title": "CTO", "country": "FR"}, {"dach-lead": 0}),
        ({"country": "DE"}, {"dach-lead": 0}),
    ],
)
def test_fit_rules(attributes: dict[str, Any], expected: dict[str, float]) -> None:
    m = rules("[]", head=FIT)
    b = score(m, **attributes)
    assert {rule: points(b, rule) for rule in expected} == expected
    assert b.fit == sum(points(b, r.id) for r in m.fit)


def test_email_domain_is_derived_from_email() -> None:
    b = score(rules("[]", head=FIT), email="Jo.Doe@Sub.Example.COM")
    assert b.attributes["email_domain"] == "sub.example.com"


# -- groups ---------------------------------------------------------------------------------


def test_named_groups_sum_their_rules_besides_fit_and_engagement() -> None:
    m = rules(
        """
        - {id: shop, event: page_viewed, where: {path: {glob: '/shop*'}}, points: 4, group: shop}
        - {id: seo, event: page_viewed, where: {path: {glob: '/seo*'}}, points: 3, group: seo}
        - {id: any-page, event: page_viewed, points: 1}
        """,
        head="groups: [shop, seo]\n"
        "fit:\n  - {id: retail, field: industry, equals: retail, points: 6, group: shop}\n",
    )
    events = [ev("page_viewed", at(hours=1), path="/shop/cart"), ev("page_viewed", at(), path="/")]
    b = score(m, events, industry="retail")
    assert dict(b.groups) == {"fit": 6, "engagement": 6, "shop": 10, "seo": 0}
    assert b.total == 12


# -- time: offsets and daylight saving ---------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "counted"),
    [
        ("2024-03-04T14:00:00+02:00", True),
        ("2024-03-04T12:00:00Z", True),
        ("2024-03-04T07:00:00-05:00", True),
        ("2024-03-04T13:59:59+02:00", False),
        ("2024-03-04T11:59:59Z", False),
    ],
)
def test_offsets_compare_as_utc_instants(stamp: str, counted: bool) -> None:
    m = rules("- {id: recent, event: page_viewed, window: 7d, points: 5}")
    as_of = parse_timestamp("2024-03-11T14:00:00+02:00")
    assert points(score(m, [ev("page_viewed", parse_timestamp(stamp))], as_of), "recent") == (
        5 if counted else 0
    )


def test_aware_datetimes_in_any_zone_are_the_same_instants() -> None:
    m = rules("- {id: recent, event: page_viewed, window: 7d, points: 5}")
    plus_two = timezone(timedelta(hours=2))
    event = ev("page_viewed", datetime(2024, 3, 4, 14, 0, tzinfo=plus_two))
    as_of = datetime(2024, 3, 11, 7, 0, tzinfo=timezone(timedelta(hours=-5)))
    b = score(m, [event], as_of)
    assert points(b, "recent") == 5
    assert b.as_of == datetime(2024, 3, 11, 12, 0, tzinfo=UTC)
    assert b.last_event_at == datetime(2024, 3, 4, 12, 0, tzinfo=UTC)
    assert str(b.last_event_at) == "2024-03-04 12:00:00+00:00"


def test_naive_timestamps_are_taken_as_utc() -> None:
    m = rules("- {id: recent, event: page_viewed, window: 7d, points: 5}")
    naive = ev("page_viewed", datetime(2024, 3, 4, 12, 0))
    b = score(m, [naive], as_of=at(days=7))
    assert (points(b, "recent"), b.last_event_at) == (5, at())


# Europe/Berlin leaves summer time on 2024-10-27: 03:00 CEST becomes 02:00 CET,
# so 02:30 happens twice, 00:30 UTC (fold=0) and 01:30 UTC (fold=1, after the change).
FIRST_0230 = datetime(2024, 10, 27, 2, 30, tzinfo=BERLIN)
SECOND_0230 = datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=BERLIN)


def test_dst_fall_back_local_times_are_distinct_instants() -> None:
    assert SECOND_0230.astimezone(UTC) == datetime(2024, 10, 27, 1, 30, tzinfo=UTC)
    m = rules("- {id: recent, event: page_viewed, window: 1d, points: 5}")
    as_of = datetime(2024, 10, 28, 1, 30, tzinfo=UTC)
    assert points(score(m, [ev("page_viewed", SECOND_0230)], as_of), "recent") == 5
    assert points(score(m, [ev("page_viewed", FIRST_0230)], as_of), "recent") == 0


def test_dst_fall_back_hour_counts_for_gaps_between_local_times() -> None:
    m = rules("- {id: back, kind: return_after_gap, event: page_viewed, gap: 1h, points: 5}")
    events = [ev("page_viewed", SECOND_0230), ev("page_viewed", FIRST_0230)]
    b = score(m, events, as_of=datetime(2024, 10, 28, tzinfo=UTC))
    r = result(b, "back")
    assert r.points == 5
    assert [a.at for a in r.awards] == [datetime(2024, 10, 27, 1, 30, tzinfo=UTC)]


def test_dst_spring_forward_measures_real_elapsed_time() -> None:
    # 2024-03-31: 02:00 CET jumps to 03:00 CEST; 01:30 and 03:30 local are one hour apart.
    before = datetime(2024, 3, 31, 1, 30, tzinfo=BERLIN)
    after = datetime(2024, 3, 31, 3, 30, tzinfo=BERLIN)
    m = rules(
        """
        - {id: back, kind: return_after_gap, event: page_viewed, gap: 2h, points: 5}
        - {id: burst, event: page_viewed, count_at_least: 2, within: 1h, points: 7}
        """
    )
    b = score(m, [ev("page_viewed", before), ev("page_viewed", after)], as_of=at(days=40))
    assert (points(b, "back"), points(b, "burst")) == (0, 7)


def test_dst_local_midnight_is_not_the_period_boundary() -> None:
    # 00:30 CEST on 27 October is 22:30 UTC on the 26th: the same UTC day as 10:00 UTC.
    m = rules("- {id: s, event: page_viewed, points: 4, cap: {period: 1d, period_max: 4}}")
    events = [
        ev("page_viewed", datetime(2024, 10, 26, 10, 0, tzinfo=UTC)),
        ev("page_viewed", datetime(2024, 10, 27, 0, 30, tzinfo=BERLIN)),
        ev("page_viewed", SECOND_0230),
    ]
    b = score(m, events, as_of=datetime(2024, 10, 28, tzinfo=UTC))
    assert raw_awards(b, "s") == [4, 4]
    assert [a.at.day for a in result(b, "s").awards] == [26, 27]


# -- events: order, duplicates, the future ---------------------------------------------------


def test_events_after_as_of_are_ignored() -> None:
    m = rules("- {id: r, event: page_viewed, points: 5}")
    b = score(m, [ev("page_viewed", at()), ev("page_viewed", at(days=2))], as_of=at(days=1))
    assert (points(b, "r"), b.events_seen, b.last_event_at) == (5, 1, at())


def test_a_repeated_event_id_counts_once() -> None:
    m = rules("- {id: r, event: page_viewed, points: 5}")
    one = ev("page_viewed", at(), eid="msg-1")
    b = score(m, [one, one, ev("page_viewed", at(), eid="msg-1")])
    assert (points(b, "r"), b.events_seen) == (5, 1)


def test_conflicting_copies_of_an_id_resolve_the_same_way_in_any_order() -> None:
    early = Event("msg-1", "lead-1", "page_viewed", at(hours=1), {"path": "/a"})
    late = Event("msg-1", "lead-1", "page_viewed", at(hours=2), {"path": "/b"})
    assert prepare_events([early, late], at(days=1)) == [early]
    assert prepare_events([late, early], at(days=1)) == [early]
    assert prepare_events([late, early], at(hours=1, minutes=30)) == [early]


def test_no_events_no_points() -> None:
    b = score(default_model())
    assert (b.total, b.events_seen, b.last_event_at, b.intent) == (0, 0, None, None)
    assert all(r.points == 0 for r in b.rules)


# -- intent -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "found"),
    [
        pytest.param(timedelta(days=30), True, id="exactly-window-old"),
        pytest.param(timedelta(days=30, seconds=1), False, id="a-second-older"),
        pytest.param(timedelta(0), True, id="now"),
    ],
)
def test_intent_window_edges(age: timedelta, found: bool) -> None:
    as_of = at(days=40)
    b = score(default_model(), [ev("quote_requested", as_of - age)], as_of)
    assert (b.intent is not None) is found


@pytest.mark.parametrize(
    ("event", "found"),
    [
        (("form_submitted", {"form": "contact-sales"}), True),
        (("form_submitted", {"form": "newsletter"}), False),
        (("form_submitted", {"form": "contact", "message": "What do you charge? Rates?"}), True),
        (("email_replied", {"body": "Sounds good. Can we talk on Tuesday?"}), True),
        (("email_replied", {"body": "Thanks, noted."}), False),
        (("message_received", {"body": "Are you available in June?"}), True),
        (("meeting_booked", {}), True),
        (("page_viewed", {"path": "/pricing"}), False),
    ],
)
def test_default_intent_actions(event: tuple[str, dict[str, Any]], found: bool) -> None:
    kind, props = event
    b = score(default_model(), [ev(kind, at(), **props)])
    assert (b.intent is not None) is found


def test_intent_is_the_latest_hand_raise() -> None:
    quote, call = ev("quote_requested", at()), ev("meeting_booked", at(hours=5))
    b = score(default_model(), [call, quote, ev("page_viewed", at(hours=6))])
    assert b.intent is not None
    assert (b.intent.event_id, b.intent.event_type, b.intent.at) == (
        call.id,
        "meeting_booked",
        at(hours=5),
    )


# -- disqualifiers ----------------------------------------------------------------------------

DQ_MODEL = """\
disqualify:
  - {id: honeypot, honeypot: website_url, reason: spam}
  - {id: competitor, field: email_domain, in: [rival.example], reason: competitor}
  - {id: spam-words, text_matches: '(?i)casino', reason: spam}
  - id: job-seeker
    text_matches: '(?i)\\bjobs?\\b'
    event: [form_submitted, Chat Message]
    reason: job_seeker
  - {id: marked-spam, event: email_marked_spam, reason: do_not_contact}
"""


def dq_model() -> Any:
    return rules("- {id: any, event: form_submitted, points: 5}", head=DQ_MODEL)


@pytest.mark.parametrize(
    ("attributes", "event", "rule_id", "reason", "detail"),
    [
        pytest.param(
            {"email": "spy@rival.example"},
            None,
            "competitor",
            "competitor",
            "email_domain='rival.example'",
            id="attribute",
        ),
        pytest.param(
            {},
            ("email_marked_spam", {}),
            "marked-spam",
            "do_not_contact",
            "email_marked_spam",
            id="event",
        ),
        pytest.param(
            {},
            ("quote_requested", {"message": "Best casino bonus"}),
            "spam-words",
            "spam",
            '"Best casino bonus"',
            id="text-any-event",
        ),
        pytest.param(
            {},
            ("form_submitted", {"fields": {"comment": "Any jobs open?"}}),
            "job-seeker",
            "job_seeker",
            '"Any jobs open?"',
            id="text-in-form-fields",
        ),
        pytest.param(
            {},
            ("message_received", {"body": "Got a job for me?"}),
            "job-seeker",
            "job_seeker",
            '"Got a job for me?"',
            id="text-filter-by-alias",
        ),
        pytest.param(
            {},
            ("form_submitted", {"fields": {"website_url": "http://spam.example"}}),
            "honeypot",
            "spam",
            "honeypot field website_url filled",
            id="honeypot-in-fields",
        ),
        pytest.param(
            {},
            ("form_submitted", {"website_url": "x"}),
            "honeypot",
            "spam",
            "honeypot field website_url filled",
            id="honeypot-top-level",
        ),
    ],
)
def test_each_disqualifier_kind(
    attributes: dict[str, Any],
    event: tuple[str, dict[str, Any]] | None,
    rule_id: str,
    reason: str,
    detail: str,
) -> None:
    events = [] if event is None else [ev(event[0], at(), eid="x1", **event[1])]
    b = score(dq_model(), events, **attributes)
    assert b.disqualified is not None
    assert (b.disqualified.rule_id, b.disqualified.reason, b.disqualified.detail) == (
        rule_id,
        reason,
        detail,
    )
    assert b.disqualified.event_id == (None if event is None else "x1")


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(("quote_requested", {"message": "Do you have jobs?"}), id="text-filtered-out"),
        pytest.param(("form_submitted", {"fields": {"website_url": ""}}), id="honeypot-empty"),
        pytest.param(("page_viewed", {"website_url": "x"}), id="honeypot-other-event"),
        pytest.param(("form_submitted", {"message": "Jobsite redesign"}), id="word-boundary"),
    ],
)
def test_disqualifiers_that_do_not_fire(event: tuple[str, dict[str, Any]]) -> None:
    b = score(dq_model(), [ev(event[0], at(), **event[1])], email="jo@acme.example")
    assert b.disqualified is None


def test_first_disqualifier_in_model_order_wins() -> None:
    events = [
        ev("email_marked_spam", at(hours=1)),
        ev("form_submitted", at(hours=2), message="casino", fields={"website_url": "x"}),
    ]
    b = score(dq_model(), list(reversed(events)), email="spy@rival.example")
    assert b.disqualified is not None
    assert b.disqualified.rule_id == "honeypot"
    without_form = score(dq_model(), events[:1], email="spy@rival.example")
    assert without_form.disqualified is not None
    assert without_form.disqualified.rule_id == "competitor"


def test_score_is_still_computed_when_disqualified() -> None:
    events = [ev("form_submitted", at(hours=h), message="casino") for h in range(3)]
    b = score(dq_model(), events)
    assert b.disqualified is not None and b.disqualified.reason == "spam"
    assert b.total == 15


@pytest.mark.parametrize(
    ("kind", "props", "reason"),
    [
        pytest.param(
            "form_submitted",
            {
                "form": "contact",
                "message": "Hello! I graduated in design last month and would love to apply "
                "for a junior position. Do you have any vacancies? My CV is attached.",
            },
            "job_seeker",
            id="job-seeker",
        ),
        pytest.param(
            "message_received",
            {"body": "Hi, are there internships for students this summer?"},
            "job_seeker",
            id="internship-chat",
        ),
        pytest.param(
            "form_submitted",
            {
                "form": "contact",
                "message": "We offer cheap backlinks and guest post placements that "
                "rank your site #1 on Google. Click here for prices!",
            },
            "spam",
            id="spam",
        ),
        pytest.param(
            "form_submitted",
            {"form": "contact", "message": "Hi, this is for my school project: how does SEO work?"},
            "low_value",
            id="low-value",
        ),
        pytest.param(
            "form_submitted",
            {"form": "newsletter", "fields": {"website_url": "http://cheap.example"}},
            "spam",
            id="honeypot",
        ),
        pytest.param(
            "quote_requested",
            {
                "message": "Hi, we are a 40-person logistics company looking for a new website "
                "with a customer portal. Budget around 30k. Could you send a quote and "
                "your availability for Q3?"
            },
            None,
            id="normal-quote-request",
        ),
        pytest.param(
            "form_submitted",
            {
                "form": "contact-sales",
                "message": "We're hiring an agency to redesign our online shop. "
                "Who would we talk to about the project?",
            },
            None,
            id="hiring-an-agency",
        ),
        pytest.param(
            "email_replied",
            {"body": "Thanks for the guide! Could we book a call about our relaunch?"},
            None,
            id="friendly-reply",
        ),
    ],
)
def test_default_model_on_realistic_messages(
    kind: str, props: dict[str, Any], reason: str | None
) -> None:
    b = score(default_model(), [ev(kind, at(), **props)], email="sam@acme-logistics.example")
    found = None if b.disqualified is None else b.disqualified.reason
    assert found == reason


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"email": "x@mailinator.com"}, "spam"),
        ({"email": "x@pixelforge.example"}, "competitor"),
        ({"email": "x@acme.example", "do_not_contact": "yes"}, "do_not_contact"),
        ({"email": "x@acme.example", "do_not_contact": False}, None),
        ({"email": "x@gmail.com"}, None),
    ],
)
def test_default_model_attribute_disqualifiers(
    attributes: dict[str, Any], reason: str | None
) -> None:
    b = evaluate(default_model(), Lead("l", attributes), [], at())
    assert (None if b.disqualified is None else b.disqualified.reason) == reason


def test_default_model_does_not_read_our_own_email_subjects_as_lead_text() -> None:
    subject = "Congratulations! Your free website audit is ready - click here"
    events = [ev("email_delivered", at(), campaign="c1", subject=subject)]
    assert score(default_model(), events).disqualified is None


def test_text_disqualifiers_read_only_what_the_lead_wrote() -> None:
    reply = ev("email_replied", at(), subject="Re: Claim your prize", body="Send a quote?")
    assert score(default_model(), [reply]).disqualified is None
    form = ev("form_submitted", at(), form="contact", message="Claim your prize now")
    found = score(default_model(), [form]).disqualified
    assert found is not None and found.reason == "spam"
