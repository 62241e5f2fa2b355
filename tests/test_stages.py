"""Stage decisions and the words that explain them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from builders import at, ev, model, score
from leadgate.domain.events import Event
from leadgate.domain.model import ScoringModel
from leadgate.domain.scoring import Breakdown
from leadgate.domain.stages import Decision, decide, describe_rule, explain, reasons

STAGE_MODEL = """\
name: stage-test
version: "7"
thresholds: {mql: 20, sql: 30}
intent_window: 30d
decay: none
intent_actions:
  - event: quote_requested
rules:
  - {id: pages, event: page_viewed, points: 5}
  - {id: quote, event: quote_requested, points: 10}
  - {id: unsubscribed, event: email_unsubscribed, points: -20}
fit:
  - {id: senior, field: title, matches: '(?i)director', points: 10}
disqualify:
  - {id: competitor, label: competitor domain, field: email_domain, in: [rival.example],
     reason: competitor}
"""


def stage_model() -> ScoringModel:
    return model(STAGE_MODEL)


def pages(n: int, start: datetime | None = None) -> list[Event]:
    first = start or at()
    return [ev("page_viewed", first + timedelta(minutes=i), path=f"/p{i}") for i in range(n)]


def decided(events: list[Event], as_of: datetime | None = None, **attrs: Any) -> Decision:
    m = stage_model()
    return decide(score(m, events, as_of, **attrs), m)


@pytest.mark.parametrize(
    ("events", "attrs", "stage", "total"),
    [
        pytest.param([], {}, "new", 0, id="no-events"),
        pytest.param([], {"title": "Director"}, "new", 10, id="fit-only-below-mql"),
        pytest.param(pages(1), {}, "nurturing", 5, id="one-page"),
        pytest.param(pages(3), {}, "nurturing", 15, id="just-below-mql"),
        pytest.param(pages(4), {}, "mql", 20, id="exactly-mql"),
        pytest.param(pages(6), {}, "mql", 30, id="sql-score-without-intent"),
        pytest.param([ev("quote_requested", at())], {}, "nurturing", 10, id="hand-raise-alone"),
        pytest.param(
            [*pages(3), ev("quote_requested", at(hours=1))], {}, "mql", 25, id="intent-below-sql"
        ),
        pytest.param(
            [*pages(4), ev("quote_requested", at(hours=1))], {}, "sql", 30, id="exactly-sql"
        ),
        pytest.param(
            [*pages(6), ev("email_unsubscribed", at(hours=1))], {}, "nurturing", 10, id="negative"
        ),
        pytest.param(
            [*pages(6), ev("quote_requested", at(hours=1))],
            {"email": "spy@rival.example"},
            "disqualified",
            40,
            id="disqualified-beats-sql",
        ),
    ],
)
def test_stage(events: list[Event], attrs: dict[str, Any], stage: str, total: float) -> None:
    d = decided(events, **attrs)
    assert (d.stage, d.score, d.model_version, d.lead_id) == (stage, total, "7", "lead-1")


@pytest.mark.parametrize(
    ("intent_age", "stage"),
    [
        pytest.param(timedelta(days=30), "sql", id="exactly-window-old"),
        pytest.param(timedelta(days=31), "mql", id="31-days-old"),
        pytest.param(timedelta(days=30, seconds=1), "mql", id="a-second-too-old"),
    ],
)
def test_sql_needs_intent_within_the_window(intent_age: timedelta, stage: str) -> None:
    as_of = at(days=40)
    events = [*pages(6, as_of - timedelta(hours=1)), ev("quote_requested", as_of - intent_age)]
    d = decided(events, as_of)
    assert d.stage == stage
    assert d.score == 40


def test_sql_decision_cause_names_threshold_intent_and_rules() -> None:
    events = [*pages(4), ev("quote_requested", at(hours=1))]
    d = decided(events, title="Marketing Director")
    assert d.stage == "sql"
    assert d.cause == (
        "score 40.0 >= SQL threshold 30 and quote_requested on 2024-03-04 (within 30d)"
    )
    assert d.rule_ids == ("pages", "quote", "senior", "intent:quote_requested")
    assert (d.threshold, d.model_version, d.reason) == (30, "7", None)


def test_intent_date_in_the_cause_is_the_utc_date() -> None:
    late_evening = datetime(2024, 3, 4, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    d = decided([*pages(4), ev("quote_requested", late_evening)], as_of=at(days=2))
    assert "quote_requested on 2024-03-05 (within 30d)" in d.cause


@pytest.mark.parametrize(
    ("events", "cause", "rule_ids", "threshold"),
    [
        pytest.param([], "no activity yet; score 0.0", (), 20, id="new"),
        pytest.param(pages(2), "score 10.0 < MQL threshold 20", ("pages",), 20, id="nurturing"),
        pytest.param(pages(4), "score 20.0 >= MQL threshold 20", ("pages",), 20, id="mql"),
        pytest.param(
            pages(6),
            "score 30.0 >= MQL threshold 20; no intent action within 30d for SQL",
            ("pages",),
            20,
            id="mql-no-intent",
        ),
        pytest.param(
            [*pages(8), ev("email_unsubscribed", at(hours=2))],
            "score 20.0 >= MQL threshold 20",
            ("pages",),
            20,
            id="negative-rules-not-listed",
        ),
    ],
)
def test_decision_cause(
    events: list[Event], cause: str, rule_ids: tuple[str, ...], threshold: float
) -> None:
    d = decided(events)
    assert (d.cause, d.rule_ids, d.threshold) == (cause, rule_ids, threshold)


def test_disqualified_decision_names_rule_reason_and_detail() -> None:
    d = decided([*pages(6), ev("quote_requested", at(hours=1))], email="spy@rival.example")
    assert d.stage == "disqualified"
    assert d.cause == "competitor: competitor domain (email_domain='rival.example')"
    assert (d.rule_ids, d.threshold, d.reason, d.model_version) == (
        ("competitor",),
        None,
        "competitor",
        "7",
    )


def test_fit_alone_above_mql_is_mql_even_without_activity() -> None:
    m = model(STAGE_MODEL.replace("points: 10}\ndisqualify", "points: 25}\ndisqualify"))
    d = decide(score(m, title="Director"), m)
    assert (d.stage, d.score, d.rule_ids) == ("mql", 25, ("senior",))


# -- explanations -------------------------------------------------------------------------


def sql_breakdown() -> tuple[Breakdown, Decision, list[Event]]:
    m = stage_model()
    events = [*pages(4), ev("quote_requested", at(hours=1), eid="q1")]
    b = score(m, events, at(days=1), title="Director")
    return b, decide(b, m), events


def test_reasons_lists_rules_largest_first() -> None:
    b, _, _ = sql_breakdown()
    assert reasons(b) == "+20 pages (4 events); +10 quote (1 event); +10 senior"


def test_reasons_puts_the_disqualification_first() -> None:
    m = stage_model()
    b = score(m, pages(1), email="a@rival.example")
    assert reasons(b) == "disqualified: competitor (competitor domain); +5 pages (1 event)"


def test_reasons_is_empty_without_points() -> None:
    assert reasons(score(stage_model())) == ""


def test_explain_shows_stage_score_model_rules_and_intent() -> None:
    b, d, _ = sql_breakdown()
    lines = explain(b, d).splitlines()
    assert lines[0] == "lead lead-1: SQL, score 40.0 (fit 10.0, engagement 30.0)"
    assert lines[1] == "  as of 2024-03-05 12:00 UTC, model stage-test@7, 5 events"
    assert lines[2] == f"  why: {d.cause}"
    assert lines[3:] == [
        "  points:",
        "    +20 pages (4 events)",
        "    +10 quote (1 event)",
        "    +10 senior",
        "  intent: quote_requested at 2024-03-04 13:00 UTC",
    ]


def test_explain_with_events_lists_what_earned_the_points() -> None:
    b, d, events = sql_breakdown()
    text = explain(b, d, events, per_rule=2)
    assert "      2024-03-04 12:00 page_viewed /p0 (+5)" in text
    assert "      2024-03-04 12:01 page_viewed /p1 (+5)" in text
    assert "      ... and 2 more" in text
    assert "      2024-03-04 13:00 quote_requested (+10)" in text


def test_explain_names_disqualification_and_empty_points() -> None:
    m = stage_model()
    b = score(m, [], email="a@rival.example")
    text = explain(b, decide(b, m))
    assert text.splitlines()[0] == "lead lead-1: DISQUALIFIED, score 0.0 (fit 0.0, engagement 0.0)"
    assert "  points: none" in text
    assert (
        "  disqualified: competitor by rule competitor (competitor domain): "
        "email_domain='rival.example'"
    ) in text


EXPLAIN_MODEL = """\
name: explain-test
version: "3"
thresholds: {mql: 40, sql: 40}
decay: {half_life: 45d}
rules:
  - {id: pricing-page, label: pricing page, event: page_viewed,
     where: {path: {glob: '/pricing*'}}, points: 10, cap: {total: 20}}
  - {id: service-pages, label: service page, event: page_viewed,
     where: {path: {glob: '/services/*'}}, points: 2,
     cap: {total: 10, period: 1d, period_max: 4}}
  - {id: service-repeat, label: key service pages visited repeatedly, event: page_viewed,
     where: {path: {glob: '/services/*'}}, count_at_least: 3, within: 14d, points: 10}
fit:
  - {id: senior-title, label: senior title, field: title, matches: '(?i)head', points: 10}
"""


def test_explain_shows_caps_and_decay() -> None:
    m = model(EXPLAIN_MODEL)
    events = [ev("page_viewed", at(hours=h), path="/pricing") for h in range(3)]
    events += [ev("page_viewed", at(hours=3 + h), path=f"/services/s{h}") for h in range(3)]
    b = score(m, events, as_of=at(days=45, hours=5), title="Head of Growth")
    text = explain(b, decide(b, m))
    assert text.splitlines()[1:] == [
        "  as of 2024-04-18 17:00 UTC, model explain-test@3, 6 events",
        "  why: score 27.0 < MQL threshold 40",
        "  points:",
        "    +10 senior title",
        "    +10 pricing page (3 events, capped at 20 in total, 20 before decay)",
        "    +5 key service pages visited repeatedly (3 within the span, 10 before decay)",
        "    +2 service page (3 events, capped at 4 per 1d, 4 before decay)",
    ]


@pytest.mark.parametrize(
    ("rule_yaml", "events", "expected"),
    [
        pytest.param(
            "- {id: r, label: pricing page, event: page_viewed, points: 10, cap: {total: 20}}",
            [("page_viewed", 0), ("page_viewed", 1), ("page_viewed", 2)],
            "+20 pricing page (3 events, capped at 20 in total)",
            id="event-capped",
        ),
        pytest.param(
            "- {id: r, label: unsubscribed, event: email_unsubscribed, points: -20}",
            [("email_unsubscribed", 0)],
            "-20 unsubscribed (1 event)",
            id="negative",
        ),
        pytest.param(
            "- {id: r, label: repeat, event: page_viewed, count_at_least: 2, points: 10}",
            [("page_viewed", 0), ("page_viewed", 1)],
            "+10 repeat (2 within the span)",
            id="count",
        ),
        pytest.param(
            "- {id: r, label: back, kind: return_after_gap, event: page_viewed, gap: 1h, "
            "points: 5}",
            [("page_viewed", 0), ("page_viewed", 2)],
            "+5 back (1 return)",
            id="gap",
        ),
    ],
)
def test_describe_rule(rule_yaml: str, events: list[tuple[str, int]], expected: str) -> None:
    m = model(f"thresholds: {{mql: 1, sql: 1}}\ndecay: none\nrules:\n  {rule_yaml}\n")
    b = score(m, [ev(kind, at(hours=h)) for kind, h in events])
    (rule,) = b.rules
    assert describe_rule(rule) == expected


def test_describe_rule_shows_points_before_decay() -> None:
    m = model(
        "thresholds: {mql: 1, sql: 1}\ndecay: {half_life: 10d}\n"
        "rules:\n  - {id: r, label: guide, event: asset_downloaded, points: 8}\n"
    )
    b = score(m, [ev("asset_downloaded", at())], as_of=at(days=10))
    assert describe_rule(b.rules[0]) == "+4 guide (1 event, 8 before decay)"


def test_explain_lists_named_groups() -> None:
    m = model(
        "thresholds: {mql: 50, sql: 50}\ndecay: none\ngroups: [shop, seo]\n"
        "rules:\n  - {id: shop, event: page_viewed, points: 4, group: shop}\n"
    )
    b = score(m, pages(2))
    assert "\n  groups: shop 8.0, seo 0.0\n" in explain(b, decide(b, m))
