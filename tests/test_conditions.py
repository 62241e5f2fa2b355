"""Condition operators, durations and numbers: the building blocks of every rule."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from leadgate.domain.conditions import (
    as_number,
    build_condition,
    build_conditions,
    format_duration,
    parse_duration,
)
from leadgate.domain.lists import BUILTIN_LISTS

MISSING = object()


def holds(op: str, value: Any, actual: Any, field: str = "f") -> bool:
    condition = build_condition(field, op, value, BUILTIN_LISTS)
    data = {} if actual is MISSING else {field: actual}
    return condition.holds(data)


OPERATOR_TABLE = [
    # equals: numbers against numeric strings, booleans against their spellings
    ("equals", 10, 10, True),
    ("equals", 10, "10", True),
    ("equals", 10, "10.0", True),
    ("equals", 10, " 10 ", True),
    ("equals", 10, 10.0, True),
    ("equals", 10, "11", False),
    ("equals", 10, "ten", False),
    ("equals", 10, MISSING, False),
    ("equals", 1.5, "1.5", True),
    ("equals", "10", 10, True),
    ("equals", "newsletter", "newsletter", True),
    ("equals", "newsletter", "Newsletter", False),
    ("equals", True, True, True),
    ("equals", True, "yes", True),
    ("equals", True, "TRUE", True),
    ("equals", True, 1, True),
    ("equals", True, "1", True),
    ("equals", True, False, False),
    ("equals", True, "no", False),
    ("equals", True, "maybe", False),
    ("equals", True, MISSING, False),
    ("equals", False, False, True),
    ("equals", False, "0", True),
    ("equals", False, "false", True),
    ("equals", False, MISSING, False),
    # not_equals
    ("not_equals", "contact", "newsletter", True),
    ("not_equals", "contact", "contact", False),
    ("not_equals", 10, "10", False),
    ("not_equals", True, "yes", False),
    ("not_equals", "contact", MISSING, True),
    # in / not_in
    ("in", ["contact-sales", "quote"], "quote", True),
    ("in", ["contact-sales", "quote"], "newsletter", False),
    ("in", [1, 2], "2", True),
    ("in", [1, 2], "3", False),
    ("in", ["a"], MISSING, False),
    ("not_in", ["contact-sales", "quote"], "newsletter", True),
    ("not_in", ["contact-sales", "quote"], "quote", False),
    ("not_in", [1, 2], "2.0", False),
    ("not_in", ["a"], MISSING, False),
    # glob: case-sensitive, one pattern or a list
    ("glob", "/pricing*", "/pricing", True),
    ("glob", "/pricing*", "/pricing/teams", True),
    ("glob", "/pricing*", "/Pricing", False),
    ("glob", "/pricing*", "/about", False),
    ("glob", "/services/*", "/services/web-design", True),
    ("glob", "/services/*", "/services", False),
    ("glob", ["/careers*", "/jobs*"], "/jobs/designer", True),
    ("glob", ["/careers*", "/jobs*"], "/careers", True),
    ("glob", ["/careers*", "/jobs*"], "/about/careers", False),
    ("glob", "/pricing*", MISSING, False),
    # matches: a regex searched anywhere in the text
    ("matches", "(?i)director", "Marketing Director", True),
    ("matches", "director", "Marketing Director", False),
    ("matches", "ead", "Head of Sales", True),
    ("matches", "^ceo$", "CEO", False),
    ("matches", r"\?", "Are you free in May?", True),
    ("matches", "^12", 123, True),
    ("matches", ".*", MISSING, False),
    # contains: case-insensitive substring
    ("contains", "price", "What is the PRICE?", True),
    ("contains", "price", "what does it cost", False),
    ("contains", "2", 123, True),
    ("contains", "x", MISSING, False),
    # gt / gte / lt / lte: numbers and numeric strings; anything else never holds
    ("gt", 10, 11, True),
    ("gt", 10, 10, False),
    ("gt", 10, "11", True),
    ("gt", 10, "eleven", False),
    ("gt", 10, MISSING, False),
    ("gt", 10, "", False),
    ("gt", 10, [11], False),
    ("gt", 0, True, False),
    ("gte", 10, 10, True),
    ("gte", 10, "10", True),
    ("gte", 10, 9.99, False),
    ("gte", 0.5, "0.5", True),
    ("lt", 10, 9, True),
    ("lt", 10, 10, False),
    ("lt", 10, "9.5", True),
    ("lt", 10, "n/a", False),
    ("lte", 10, "10.0", True),
    ("lte", 500, "  500 ", True),
    ("lte", 500, 500.01, False),
    # exists: present and not empty
    ("exists", True, "x", True),
    ("exists", True, 0, True),
    ("exists", True, False, True),
    ("exists", True, "", False),
    ("exists", True, MISSING, False),
    ("exists", False, MISSING, True),
    ("exists", False, "", True),
    ("exists", False, "x", False),
    # in_list / not_in_list: trimmed, case-insensitive membership of a named list
    ("in_list", "free_email_providers", "gmail.com", True),
    ("in_list", "free_email_providers", " GMAIL.com ", True),
    ("in_list", "free_email_providers", "acme.example", False),
    ("in_list", "free_email_providers", MISSING, False),
    ("in_list", "disposable_email_providers", "mailinator.com", True),
    ("not_in_list", "free_email_providers", "acme.example", True),
    ("not_in_list", "free_email_providers", "gmail.com", False),
    ("not_in_list", "free_email_providers", MISSING, False),
]


@pytest.mark.parametrize(("op", "value", "actual", "expected"), OPERATOR_TABLE)
def test_operator(op: str, value: Any, actual: Any, expected: bool) -> None:
    assert holds(op, value, actual) is expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"fields": {"company": "Acme"}}, True),
        ({"fields": {"company": "Other"}}, False),
        ({"fields": "Acme"}, False),
        ({"company": "Acme"}, False),
        ({}, False),
    ],
)
def test_dotted_field_reads_nested_values(data: dict[str, Any], expected: bool) -> None:
    condition = build_condition("fields.company", "equals", "Acme", BUILTIN_LISTS)
    assert condition.holds(data) is expected


@pytest.mark.parametrize(
    ("op", "value", "fragment"),
    [
        ("in", "quote", "'in' needs a non-empty list, got 'quote'"),
        ("in", [], "'in' needs a non-empty list"),
        ("not_in", None, "'not_in' needs a non-empty list"),
        ("gt", "10", "'gt' needs a number, got '10'"),
        ("lte", True, "'lte' needs a number, got True"),
        ("gte", None, "'gte' needs a number"),
        ("exists", "yes", "'exists' needs true or false, got 'yes'"),
        ("matches", "(", "regex '(' does not compile"),
        ("matches", "[a-", "regex '[a-' does not compile"),
        ("in_list", "vip_domains", "unknown list 'vip_domains' (known lists: "),
        ("in_list", ["gmail.com"], "unknown list ['gmail.com']"),
        ("between", [1, 2], "unknown operator 'between'"),
    ],
)
def test_build_condition_rejects_bad_values(op: str, value: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        build_condition("f", op, value, BUILTIN_LISTS)


@pytest.mark.parametrize(
    ("size", "expected"),
    [(9, False), (10, True), ("250", True), (499, True), (500, False), (None, False)],
)
def test_several_operators_on_one_field_must_all_hold(size: Any, expected: bool) -> None:
    built = build_conditions({"company_size": {"gte": 10, "lt": 500}}, BUILTIN_LISTS)
    conditions = [c for _, _, c in built]
    assert [(f, op) for f, op, _ in built] == [("company_size", "gte"), ("company_size", "lt")]
    assert all(not isinstance(c, str) for c in conditions)
    data = {"company_size": size}
    assert all(c.holds(data) for c in conditions if not isinstance(c, str)) is expected


def test_plain_value_means_equals_and_plain_list_means_in() -> None:
    built = build_conditions({"form": "newsletter", "path": ["/a", "/b"]}, BUILTIN_LISTS)
    assert [(f, op) for f, op, _ in built] == [("form", "equals"), ("path", "in")]
    form, path = (c for _, _, c in built)
    assert not isinstance(form, str) and not isinstance(path, str)
    assert form.holds({"form": "newsletter"})
    assert not form.holds({"form": "contact"})
    assert path.holds({"path": "/b"})
    assert not path.holds({"path": "/c"})


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ([{"form": "x"}], "'where' must be a mapping of field to test"),
        ({"form": {}}, "field 'form' has an empty test"),
        ({"path": {"glob": "/a", "matches": "("}}, "field 'path': regex '(' does not compile"),
    ],
)
def test_build_conditions_reports_problems_as_text(spec: Any, fragment: str) -> None:
    errors = [c for _, _, c in build_conditions(spec, BUILTIN_LISTS) if isinstance(c, str)]
    assert len(errors) == 1
    assert fragment in errors[0]


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("glob", "/pricing*", "path glob '/pricing*'"),
        ("in_list", "free_email_providers", "path in_list free_email_providers"),
        ("matches", "(?i)^/price", "path matches (?i)^/price"),
        ("gte", 10, "path gte 10"),
    ],
)
def test_describe_reads_like_the_model_file(op: str, value: Any, expected: str) -> None:
    assert build_condition("path", op, value, BUILTIN_LISTS).describe() == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("45m", timedelta(minutes=45)),
        ("12h", timedelta(hours=12)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
        ("1.5d", timedelta(hours=36)),
        (" 3d ", timedelta(days=3)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("3 days", "bad duration '3 days'"),
        ("0d", "must be more than zero"),
        ("0.0h", "must be more than zero"),
        ("-1d", "bad duration '-1d'"),
        ("30", "bad duration '30'"),
        (30, "bad duration 30"),
        (True, "bad duration True"),
        (None, "bad duration None"),
        ("1y", "bad duration '1y'"),
        ("d", "bad duration 'd'"),
    ],
)
def test_parse_duration_rejects(value: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(weeks=2), "2w"),
        (timedelta(days=30), "30d"),
        (timedelta(hours=36), "36h"),
        (timedelta(minutes=90), "90m"),
        (timedelta(seconds=90), "90s"),
    ],
)
def test_format_duration(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected
    assert parse_duration(expected) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3.0),
        (2.5, 2.5),
        ("42", 42.0),
        (" 7.5 ", 7.5),
        ("-3", -3.0),
        ("seven", None),
        ("", None),
        (None, None),
        (True, None),
        (False, None),
        ([1], None),
    ],
)
def test_as_number(value: Any, expected: float | None) -> None:
    assert as_number(value) == expected
