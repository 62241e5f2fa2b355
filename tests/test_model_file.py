"""Loading scoring models: every problem names the file, the line, the rule and what is wrong."""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from textwrap import dedent

import pytest

from builders import default_model, model
from leadgate.domain.model import DISQUALIFY_REASONS, CountRule, EventRule, GapRule, RatioRule
from leadgate.domain.model_file import load_model
from leadgate.domain.yamldoc import SpecError

MARK = "# <-"


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_model(dedent(text), "model.yaml")
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def marked_line(text: str) -> int:
    """The line of ``text`` that carries the marker comment."""
    lines = dedent(text).splitlines()
    return next(i for i, line in enumerate(lines, 1) if MARK in line)


CASES = [
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: pricing
            event: page_viewed
            where:
              pth: {glob: '/pricing*'}  # <-
            points: 10
        """,
        "pricing",
        "unknown event field 'pth' for page_viewed (known: category, name, path,",
        id="unknown-event-field",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: form-company
            event: form_submitted
            where:
              fields.company: {exists: true}
            points: 2
          - id: guides
            event: asset_downloaded
            once_per: asset_name  # <-
            points: 8
        """,
        "guides",
        "unknown event field 'asset_name' for asset_downloaded",
        id="unknown-once-per-field",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: recent-pricing
            event: page_viewed
            window: 3 days  # <-
            points: 10
        """,
        "recent-pricing",
        "bad duration '3 days' (use a number and a unit: 90s, 45m, 12h, 30d, 2w)",
        id="duration-with-words",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: repeat
            event: page_viewed
            count_at_least: 3
            within: 0d  # <-
            points: 10
        """,
        "repeat",
        "bad duration '0d': must be more than zero",
        id="duration-zero",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: back
            kind: return_after_gap
            event: page_viewed
            gap: -1d  # <-
            points: 5
        """,
        "back",
        "bad duration '-1d'",
        id="duration-negative",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: old-news
            event: page_viewed
            points: 5
            decay:
              half_life: 45  # <-
        """,
        "old-news",
        "bad duration 45",
        id="half-life-without-unit",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: pricing
            event: page_viewed
            where:
              path:
                glob: '/pricing*'
                matches: '(/pricing'  # <-
            points: 10
        """,
        "pricing",
        "field 'path': regex '(/pricing' does not compile",
        id="regex-does-not-compile",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        fit:
          - id: senior
            field: title
            matches: '(?i)(director'  # <-
            points: 10
        """,
        "senior",
        "field 'title': regex '(?i)(director' does not compile",
        id="fit-regex-does-not-compile",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        disqualify:
          - id: jobs
            text_matches: '(?i)\\b(job'  # <-
            reason: job_seeker
        """,
        "jobs",
        "regex '(?i)\\\\b(job' does not compile",
        id="text-regex-does-not-compile",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: pricing
            event: page_viewed
            points: 10
          - id: pricing  # <-
            event: page_viewed
            points: 5
        """,
        "pricing",
        "duplicate rule id (first at line 3)",
        id="duplicate-rule-id",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: pricing
            event: page_viewed
            points: 10
        fit:
          - id: pricing  # <-
            field: title
            exists: true
            points: 5
        """,
        "pricing",
        "duplicate rule id (first at line 3)",
        id="duplicate-id-across-sections",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: pricing
            event: page_viewed
            points: 10
            cap: {total: 5}  # <-
        """,
        "pricing",
        "cap total 5 is below the rule's points 10",
        id="cap-total-below-points",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: unsubscribed
            event: email_unsubscribed
            points: -20
            cap:
              total: 10  # <-
        """,
        "unsubscribed",
        "cap total 10 is below the rule's points -20",
        id="cap-total-below-negative-points",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: services
            event: page_viewed
            points: 4
            cap:
              period: 1d
              period_max: 3  # <-
        """,
        "services",
        "cap period_max 3 is below the rule's points 4",
        id="cap-period-max-below-points",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: services
            event: page_viewed
            points: 4
            cap:  # <-
              period: 1d
        """,
        "services",
        "a period cap needs both 'period' (e.g. 1d) and 'period_max'",
        id="period-without-period-max",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: services
            event: page_viewed
            points: 4
            cap:
              period_max: 8
              totl: 20  # <-
        """,
        "services",
        "unknown key 'totl' in a cap (allowed: period, period_max, total)",
        id="unknown-cap-key",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: pricing
            event: page_viewed
            pionts: 10  # <-
        """,
        "pricing",
        "unknown key 'pionts' in an event rule (allowed: cap, decay, event, group, id,",
        id="unknown-key-typo",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: repeat
            event: page_viewed
            count_at_least: 3
            cap: {total: 10}  # <-
            points: 10
        """,
        "repeat",
        "unknown key 'cap' in a count rule",
        id="key-of-another-kind",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: calculator
            event: pricing_calculator_used  # <-
            points: 10
        """,
        "calculator",
        "unknown event type 'pricing_calculator_used' (declare custom ones under 'custom_events:')",
        id="unknown-event-type",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        disqualify:
          - id: jobs
            text_matches: '(?i)jobs?'
            event: [form_submitted, form_submited]  # <-
            reason: job_seeker
        """,
        "jobs",
        "unknown event type 'form_submited'",
        id="unknown-event-type-in-text-filter",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: clicks
            kind: clicks  # <-
            event: email_clicked
            points: 3
        """,
        "clicks",
        "unknown rule kind 'clicks' (known: event, count, ratio, return_after_gap)",
        id="unknown-rule-kind",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        fit:
          - id: senior
            field: job_title  # <-
            matches: '(?i)director'
            points: 10
        """,
        "senior",
        "unknown lead attribute 'job_title' (declare custom ones under 'attributes:')",
        id="unknown-attribute",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        fit:
          - id: big-budget
            where:
              budget: {gte: 10000}  # <-
            points: 10
        """,
        "big-budget",
        "unknown lead attribute 'budget'",
        id="unknown-attribute-in-where",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: shop-pages
            event: page_viewed
            group: ecommerce  # <-
            points: 2
        """,
        "shop-pages",
        "unknown group 'ecommerce' (declare it under 'groups:')",
        id="unknown-group",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        fit:
          - id: vip
            field: email_domain
            in_list: vip_domains  # <-
            points: 10
        """,
        "vip",
        "field 'email_domain': unknown list 'vip_domains' (known lists: ",
        id="unknown-list",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        disqualify:
          - id: competitor
            field: email_domain
            in: [rival-agency.example]
            reason: competition  # <-
        """,
        "competitor",
        "reason must be one of spam, competitor, job_seeker, low_value, do_not_contact, "
        "got 'competition'",
        id="bad-reason",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        disqualify:
          - id: nobody
            reason: spam
            where: {}  # <-
        """,
        "nobody",
        "'where' needs at least one test",
        id="disqualifier-without-test",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: opens
            kind: ratio
            numerator: {event: email_opened, distinct: campaign}
            denominator: {event: email_delivered, distinct: campaign}
            at_least: 50  # <-
            points: 8
        """,
        "opens",
        "at_least is a share between 0 and 1, got 50",
        id="ratio-share-above-one",
    ),
    pytest.param(
        """\
        thresholds: {mql: 40, sql: 40}
        rules:
          - id: repeat
            event: page_viewed
            count_at_least: 0  # <-
            points: 10
        """,
        "repeat",
        "count_at_least must be a whole number >= 1",
        id="count-below-one",
    ),
]


@pytest.mark.parametrize(("text", "rule_id", "fragment"), CASES)
def test_problem_names_file_line_rule_and_what(text: str, rule_id: str, fragment: str) -> None:
    prefix = f"model.yaml:{marked_line(text)}: rule '{rule_id}': "
    found = [p for p in problems(text) if fragment in p]
    assert found, problems(text)
    assert found[0].startswith(prefix), found[0]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param(
            """\
            name: no-thresholds  # <-
            rules: []
            """,
            "thresholds must give both mql and sql, e.g. {mql: 50, sql: 50}",
            id="thresholds-missing",
        ),
        pytest.param(
            """\
            name: half
            thresholds: {mql: 40}  # <-
            """,
            "thresholds must give both mql and sql",
            id="thresholds-without-sql",
        ),
        pytest.param(
            """\
            thresholds:
              mql: 50
              sql: 30  # <-
            """,
            "the SQL threshold 30 is below the MQL one 50",
            id="sql-below-mql",
        ),
        pytest.param(
            """\
            thresholds:
              mql: fifty  # <-
              sql: 50
            """,
            "the MQL threshold must be a number, got 'fifty'",
            id="threshold-not-a-number",
        ),
        pytest.param(
            """\
            thresholds: {mql: 40, sql: 40}
            handover: sales  # <-
            """,
            "handover must be 'sql' or 'mql', got 'sales'",
            id="bad-handover",
        ),
        pytest.param(
            """\
            thresholds: {mql: 40, sql: 40}
            intent_window: a month  # <-
            """,
            "bad duration 'a month'",
            id="bad-intent-window",
        ),
        pytest.param(
            """\
            thresholds: {mql: 40, sql: 40}
            treshold: 12  # <-
            """,
            "unknown key 'treshold' in the model (allowed: attributes, calibration, custom_events,",
            id="unknown-top-level-key",
        ),
        pytest.param(
            """\
            thresholds: {mql: 40, sql: 40}
            groups: [fit]  # <-
            """,
            "'fit' is always a group; do not declare it",
            id="reserved-group",
        ),
        pytest.param(
            """\
            thresholds: {mql: 40, sql: 40}
            lists: [gmail.com]  # <-
            """,
            "'lists' must map each list name to a list of values",
            id="lists-not-a-mapping",
        ),
        pytest.param(
            """\
            thresholds: {mql: 40, sql: 40}
            groups: ecommerce  # <-
            """,
            "'groups' must be a list of names",
            id="groups-not-a-list",
        ),
        pytest.param(
            """\
            thresholds: {mql: 40, sql: 40}
            rules: 5  # <-
            """,
            "'rules' must be a list",
            id="rules-not-a-list",
        ),
        pytest.param(
            """\
            thresholds: {mql: 40, sql: 40}
            rules:
              - id: pricing
                event: page_viewed
                where:
                  path:
                    glob: '/pricing*'
                    glob: '/prices*'  # <-
                points: 10
            """,
            "duplicate key 'glob'",
            id="duplicate-yaml-key",
        ),
        pytest.param(
            """\
            thresholds: {mql: 40, sql: 40}
            version: 2024-02-30  # <-
            """,
            "bad value: day is out of range for month",
            id="impossible-date",
        ),
        pytest.param(
            """\
            thresholds: {mql: 40, sql: 40}
            rules:
              - id: pricing
                event: page_viewed
                where:
                  path:
                    [glob]: '/pricing*'  # <-
                points: 10
            """,
            "a key must be a plain value, got ['glob']",
            id="list-as-key",
        ),
    ],
)
def test_model_level_problem_names_file_and_line(text: str, fragment: str) -> None:
    found = [p for p in problems(text) if fragment in p]
    assert found, problems(text)
    assert found[0].startswith(f"model.yaml:{marked_line(text)}: "), found[0]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param(
            "thresholds: {mql: 40, sql: 40}\nrules:\n  - id: a\n   event: page_viewed\n",
            4,
            id="bad-indentation",
        ),
        pytest.param("thresholds: {mql: 40, sql: 40\nrules: []\n", 2, id="unclosed-brace"),
        pytest.param("thresholds: {mql: 40, sql: 40}\nname: 'open\n", 3, id="unclosed-quote"),
        pytest.param("thresholds:\n\tmql: 40\n", 2, id="tab-indent"),
    ],
)
def test_yaml_syntax_error_names_the_line(text: str, line: int) -> None:
    (problem,) = problems(text)
    assert problem.startswith(f"model.yaml:{line}: YAML syntax error: ")


def test_several_problems_are_reported_together() -> None:
    text = """\
    thresholds: {mql: 50, sql: 40}
    rules:
      - id: pricing
        event: page_viewed
        pionts: 10
      - id: services
        event: page_vewed
        points: 2
    fit:
      - id: senior
        field: job_title
        matches: director
        points: 10
    disqualify:
      - id: jobs
        text_matches: job
        reason: jobseeker
    """
    found = problems(text)
    expected = [
        "model.yaml:1: the SQL threshold 40 is below the MQL one 50",
        "model.yaml:5: rule 'pricing': unknown key 'pionts'",
        "model.yaml:3: rule 'pricing': points must be a number, got None",
        "model.yaml:7: rule 'services': unknown event type 'page_vewed'",
        "model.yaml:11: rule 'senior': unknown lead attribute 'job_title'",
        "model.yaml:17: rule 'jobs': reason must be one of",
    ]
    assert len(found) == len(expected)
    for problem, start in zip(found, expected, strict=True):
        assert problem.startswith(start), problem


def test_declared_custom_event_attribute_group_and_list_are_accepted() -> None:
    m = model(
        """\
        thresholds: {mql: 40, sql: 40}
        custom_events: [Pricing Calculator Used]
        attributes: [job_title]
        groups: [ecommerce]
        lists:
          vip_domains: [Big-Client.example, other.example]
        rules:
          - id: calculator
            event: pricing_calculator_used
            where: {plan: {in: [pro, team]}}
            points: 10
            group: ecommerce
        fit:
          - id: vip
            field: email_domain
            in_list: vip_domains
            points: 15
          - id: senior
            field: job_title
            matches: (?i)director
            points: 10
            group: ecommerce
        """
    )
    (rule,) = m.rules
    assert isinstance(rule, EventRule)
    assert rule.match.event == "pricing_calculator_used"
    assert rule.group == "ecommerce"
    assert m.groups == ("ecommerce",)
    assert m.lists["vip_domains"] == frozenset({"big-client.example", "other.example"})
    assert [f.id for f in m.fit] == ["vip", "senior"]


def test_source_event_names_map_to_canonical_types() -> None:
    m = model(
        """\
        thresholds: {mql: 40, sql: 40}
        intent_actions:
          - event: Call Booked
        rules:
          - {id: clicks, event: Email Link Clicked, points: 3}
          - {id: pages, event: page, points: 1}
        """
    )
    assert [r.match.event for r in m.rules if isinstance(r, EventRule)] == [
        "email_clicked",
        "page_viewed",
    ]
    assert [a.event for a in m.intent_actions] == ["meeting_booked"]


def test_rule_kinds_and_defaults() -> None:
    m = model(
        """\
        thresholds: {mql: 40, sql: 60}
        decay: {half_life: 45d}
        rules:
          - {id: plain, event: page_viewed, points: 1}
          - {id: counted, event: page_viewed, count_at_least: 3, within: 14d, points: 10}
          - id: opens
            kind: ratio
            numerator: {event: email_opened, distinct: campaign}
            denominator: {event: email_delivered, distinct: campaign}
            at_least: 0.5
            points: 8
          - {id: back, kind: return_after_gap, event: page_viewed, gap: 3d, points: 5}
          - {id: forever, event: email_unsubscribed, points: -20, decay: none}
          - {id: quick, event: page_viewed, points: 1, decay: {half_life: 7d}, window: 2w}
        """
    )
    plain, counted, opens, back, forever, quick = m.rules
    assert isinstance(plain, EventRule) and plain.label == "plain" and plain.cap is None
    assert isinstance(counted, CountRule)
    assert (counted.at_least, counted.within) == (3, timedelta(days=14))
    assert isinstance(opens, RatioRule) and opens.min_denominator == 1
    assert isinstance(back, GapRule) and back.gap == timedelta(days=3)
    assert plain.half_life == timedelta(days=45)
    assert forever.half_life is None
    assert quick.half_life == timedelta(days=7) and quick.window == timedelta(weeks=2)
    assert m.intent_window == timedelta(days=30)
    assert m.handover == "sql"
    assert (m.thresholds.mql, m.thresholds.sql) == (40, 60)
    assert len(m.version) == 12  # a digest of the text when no version is given


def test_version_is_a_digest_of_the_text() -> None:
    a = model("thresholds: {mql: 40, sql: 40}\n")
    b = model("thresholds: {mql: 40, sql: 40}\n")
    c = model("thresholds: {mql: 41, sql: 41}\n")
    assert a.version == b.version != c.version


def test_shipped_default_model_loads_cleanly() -> None:
    m = default_model()
    text = resources.files("leadgate").joinpath("models/default.yaml").read_text()
    lines = text.splitlines()
    assert m.name == "webstudio-default"
    assert m.source == "default.yaml"
    assert 0 < m.thresholds.mql <= m.thresholds.sql
    assert m.intent_window == timedelta(days=30)
    assert m.half_life == timedelta(days=45)
    ids = {r.id for r in m.rules}
    assert {
        "pricing-page",
        "service-pages-repeat",
        "returning-visitor",
        "guides",
        "opens-most-nurture-emails",
        "unsubscribed",
    } <= ids
    assert {d.reason for d in m.disqualifiers} == set(DISQUALIFY_REASONS)
    assert {a.event for a in m.intent_actions} >= {"quote_requested", "meeting_booked"}
    for rule in (*m.rules, *m.fit, *m.disqualifiers):
        assert f"id: {rule.id}" in lines[rule.line - 1], rule.id


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1.0e+12"])
def test_points_must_be_finite_and_sane(value: str) -> None:
    rule = f"{{id: r, event: page_viewed, points: {value}}}"
    text = f"thresholds: {{mql: 1, sql: 1}}\nrules:\n  - {rule}\n"
    with pytest.raises(SpecError) as info:
        load_model(text, "m.yaml")
    assert "m.yaml:3: rule 'r': points must be a number from -1e9 to 1e9, got " in str(info.value)


@pytest.mark.parametrize(
    ("value", "got"),
    [
        ("1e308", "got 1e308"),  # text to YAML 1.1, a number to the writer
        ("1.0e+308", "got 1e+308"),
        ("-2e9", "got -2e9"),
        ("1" + "0" * 400, "got an integer of 401 digits"),
        (".inf", "got inf"),
    ],
)
def test_a_number_too_large_is_named_with_the_range(value: str, got: str) -> None:
    text = f"thresholds: {{mql: {value}, sql: 50}}\n"
    with pytest.raises(SpecError) as info:
        load_model(text, "m.yaml")
    assert (
        str(info.value) == f"m.yaml:1: the MQL threshold must be a number from -1e9 to 1e9, {got}"
    )


def test_exponent_numbers_are_numbers() -> None:
    rule = "{id: r, event: page_viewed, points: 2.5E1}"
    m = load_model(f"thresholds: {{mql: 4e1, sql: 5E+1}}\nrules:\n  - {rule}\n", "m.yaml")
    assert (m.thresholds.mql, m.thresholds.sql) == (40.0, 50.0)
    assert m.rules[0].points == 25.0
    with pytest.raises(SpecError, match="must be a number, got 'fifty'"):
        load_model("thresholds: {mql: 4e1, sql: fifty}\n", "m.yaml")


def test_typos_get_a_suggestion() -> None:
    text = "thresholds: {mql: 1, sql: 1}\nrules:\n  - {id: r, event: quote_requestd, pionts: 1}\n"
    with pytest.raises(SpecError) as info:
        load_model(text, "m.yaml")
    message = str(info.value)
    assert "did you mean 'points'?" in message
    assert "did you mean 'quote_requested'?" in message


@pytest.mark.parametrize("depth", [300, 5000])
def test_a_file_nested_too_deeply_is_a_problem_not_a_crash(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    text = f"name: deep\nversion: 1\nthresholds: {{mql: 1, sql: 2}}\nrules:\n- {nested}\n"
    with pytest.raises(SpecError) as caught:
        load_model(text, "deep.yaml")
    assert str(caught.value).startswith("deep.yaml:")
    if depth > 1000:
        assert "nested too deeply" in str(caught.value)
