"""Mapping specs: parsing, validation errors with lines, and applying them to rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadgate.domain.events import parse_timestamp
from leadgate.domain.mapping import (
    DEFAULT_MAPPING,
    InvalidRow,
    MappingError,
    SourceMapping,
    parse_mapping,
)
from leadgate.domain.rows import (
    LeadRow,
    canonical_properties,
    cast_value,
    event_header_problems,
    header_problems,
    map_event_row,
    map_lead_row,
    read_timestamp,
    stable_id,
)

XEDU = dedent(
    """\
    description: X Education export
    lead_id: Prospect ID
    outcome: {column: Converted, type: int}
    post_outcome: [Tags, Lead Quality]
    null_values: [Select]
    attributes:
      source: Lead Source
      do_not_email: {column: Do Not Email, map: {Yes: true, No: false}, strict: true}
      total_visits: {column: TotalVisits, type: int}
      views_per_visit: {column: Page Views Per Visit, type: float}
      country: {column: Country, null_values: [unknown]}
    events:
      - name: last_activity
        type_from: Last Activity
        types: {Page Visited on Website: page_viewed}
        skip: [Modified]
        at: 2019-01-01T00:00:00Z
      - name: visit
        type: Page View
        count: TotalVisits
        max_count: 50
        at: "2019-01-01"
        properties: {campaign_id: Lead Source}
    """
)

ROW = {
    "Prospect ID": "p1",
    "Lead Source": "Google",
    "Do Not Email": "No",
    "TotalVisits": "2",
    "Page Views Per Visit": "1.5",
    "Country": "Select",
    "Converted": "1",
    "Tags": "Will revert after reading the email",
    "Lead Quality": "High in Relevance",
    "Last Activity": "Email Opened",
}


def mapping(text: str) -> SourceMapping:
    return parse_mapping(dedent(text), "m.yaml")


def lead_row(text: str, row: dict[str, Any]) -> LeadRow:
    return map_lead_row(row, mapping(text), line=7)


def row_error(text: str, row: dict[str, Any]) -> str:
    with pytest.raises(InvalidRow) as info:
        map_lead_row(row, mapping(text))
    return info.value.reason


# ---------------------------------------------------------------------------
# Parsing


def test_parse_full_mapping() -> None:
    m = parse_mapping(XEDU, "xedu.yaml")
    assert m.source == "xedu.yaml"
    assert m.lead_id == "Prospect ID"
    assert m.post_outcome == ("Tags", "Lead Quality")
    assert m.null_values == {"Select", ""}
    assert m.outcome is not None and (m.outcome.column, m.outcome.type) == ("Converted", "int")
    assert not m.keep_other_columns
    email = m.attributes["do_not_email"]
    # YAML would read Yes/No keys as booleans; value maps keep them as the text in the file.
    assert email.map == {"Yes": True, "No": False}
    assert email.strict
    assert m.attributes["country"].null_values == {"unknown"}
    last, visit = m.events
    assert (last.name, last.type_from) == ("last_activity", "Last Activity")
    assert last.skip == frozenset({"Modified"})
    assert last.at == datetime(2019, 1, 1, tzinfo=UTC)
    assert (visit.type, visit.count, visit.max_count) == ("page_viewed", "TotalVisits", 50)
    assert {"Tags", "Lead Quality", "Converted", "TotalVisits"} <= m.used


def test_event_file_mapping() -> None:
    m = mapping(
        """\
        event_fields: {id: msg, lead_id: who, type: what, timestamp: when, properties: props}
        event_types: {Viewed Pricing Page: page_viewed, Asked For Quote: Quote Requested}
        """
    )
    f = m.event_fields
    assert (f.id, f.lead_id, f.type, f.timestamp, f.properties) == (
        ("msg",),
        "who",
        "what",
        "when",
        "props",
    )
    assert m.event_type("Viewed Pricing Page") == "page_viewed"
    assert m.event_type("viewed-pricing-page") == "page_viewed"
    assert m.event_type("Asked for quote") == "quote_requested"
    assert m.event_type("Email Link Clicked") == "email_clicked"
    assert m.event_type("Something Else") == "something_else"


def test_other_columns_default_and_override() -> None:
    assert mapping("lead_id: id\n").keep_other_columns
    assert not mapping("attributes: {a: b}\n").keep_other_columns
    assert mapping("attributes: {a: b}\nother_columns: keep\n").keep_other_columns


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("", 1, "empty mapping file"),
        ("lead_id: [unclosed\n", 2, "invalid YAML"),
        ("- a\n- b\n", 1, "expected a mapping"),
        ("lead_id: id\natributes: {}\n", 2, "atributes: unknown key (did you mean 'attributes'?)"),
        ("lead_id: id\nlead_id: other\n", 2, "lead_id: duplicate key"),
        ("lead_id: ~\n", 1, "lead_id: expected a column name"),
        ("lead_id: [a, b]\n", 1, "lead_id: expected a column name"),
        ("attributes: [a]\n", 1, "attributes: expected a mapping"),
        ("attributes:\n  a: {type: int}\n", 2, "attributes.a: missing 'column'"),
        ("attributes:\n  a:\n    column: A\n    type: integer\n", 4, "unknown type 'integer'"),
        ("attributes:\n  a: {column: A, kind: x}\n", 2, "attributes.a.kind: unknown key"),
        ("attributes:\n  a: {column: A, strict: true}\n", 2, "strict needs a 'map'"),
        ("attributes:\n  a: {column: A, map: {x: 1}, strict: maybe}\n", 2, "true or false"),
        ("attributes:\n  a: {column: A, map: [x]}\n", 2, "attributes.a.map: expected a mapping"),
        ("null_values: {a: b}\n", 1, "null_values: expected a list"),
        ("other_columns: maybe\n", 1, "expected keep or drop, not 'maybe'"),
        ("events: {type: x}\n", 1, "events: expected a list"),
        ("events:\n  - type: x\n", 2, "exactly one of 'timestamp' (a column) or 'at'"),
        ("events:\n  - {at: '2020-01-01'}\n", 2, "exactly one of 'type' or 'type_from'"),
        ("events:\n  - {type: x, type_from: y, at: '2020-01-01'}\n", 2, "exactly one of 'type'"),
        ("events:\n  - {type: x, at: '2020-1-01'}\n", 2, "events[0].at: not an ISO 8601"),
        ("events:\n  - {type: x, at: '2020-01-01', max_count: 0}\n", 2, "positive integer"),
        ("events:\n  - {type: x, at: '2020-01-01', colour: red}\n", 2, "events[0].colour"),
        (
            "events:\n  - {type: x, at: '2020-01-01'}\n  - {type: x, at: '2020-01-02'}\n",
            3,
            "duplicate event name 'x'",
        ),
        (
            "event_fields: {lead: x}\n",
            1,
            "event_fields.lead: unknown key (did you mean 'lead_id'?)",
        ),
        ("event_types: {a: [b]}\n", 1, "event_types.a: expected an event type"),
        (
            "post_outcome: [Tags]\nattributes:\n  tags: Tags\n",
            3,
            "attributes.tags: column 'Tags' is post_outcome and must not be scored",
        ),
        (
            "outcome: Converted\nevents:\n  - {type: x, count: Converted, at: '2020-01-01'}\n",
            3,
            "events[0]: column 'Converted' is the outcome and must not be scored",
        ),
        ("post_outcome: [Id]\nlead_id: Id\n", 2, "lead_id: column 'Id' is post_outcome"),
    ],
)
def test_mapping_errors_name_file_line_and_key(text: str, line: int, expected: str) -> None:
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml")
    lines = str(info.value).splitlines()
    assert any(x.startswith(f"m.yaml:{line}: ") and expected in x for x in lines), lines


def test_mapping_error_lists_every_problem() -> None:
    text = "lead_id: id\nattributes:\n  a: {column: A, type: number}\n  b: {kolumn: B}\n"
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml")
    lines = str(info.value).splitlines()
    assert lines == [
        "m.yaml:3: attributes.a.type: unknown type 'number'; expected one of int, float, bool, str",
        "m.yaml:4: attributes.b.kolumn: unknown key (did you mean 'column'?); expected one of "
        "column, type, map, null_values, strict",
        "m.yaml:4: attributes.b: missing 'column'",
    ]


# ---------------------------------------------------------------------------
# Applying a mapping to lead rows


def test_lead_row_with_full_mapping() -> None:
    result = map_lead_row(ROW, parse_mapping(XEDU), line=12)
    assert result.line == 12
    assert result.lead.id == "p1"
    assert result.lead.attributes == {
        "source": "Google",
        "do_not_email": False,
        "total_visits": 2,
        "views_per_visit": 1.5,
        "country": None,  # "Select" is a global null value
    }
    assert result.outcome == 1
    ids = [e.id for e in result.events]
    assert ids == ["p1:last_activity", "p1:visit:1", "p1:visit:2"]
    last = result.events[0]
    assert (last.type, last.lead_id) == ("email_opened", "p1")
    assert result.events[1].type == "page_viewed"
    assert result.events[1].timestamp == datetime(2019, 1, 1, tzinfo=UTC)
    # campaign_id -> campaign, original kept
    assert result.events[1].properties == {"campaign_id": "Google", "campaign": "Google"}


def test_outcome_and_post_outcome_never_become_attributes() -> None:
    text = "lead_id: Prospect ID\noutcome: Converted\npost_outcome: [Tags, Lead Quality]\n"
    result = lead_row(text, ROW)
    assert result.outcome == "1"
    assert {"Converted", "Tags", "Lead Quality", "Prospect ID"}.isdisjoint(result.lead.attributes)
    assert result.lead.attributes["Lead Source"] == "Google"
    assert result.lead.attributes["Country"] == "Select"  # no null_values given: only "" is null


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("A", "x", "x"),
        ("A", "", None),
        ("A", "  ", None),
        ("{column: A, type: int}", "42", 42),
        ("{column: A, type: int}", " 7 ", 7),
        ("{column: A, type: int}", "2.0", 2),
        ("{column: A, type: int}", 3.0, 3),
        ("{column: A, type: int}", -4, -4),
        ("{column: A, type: float}", "1.25", 1.25),
        ("{column: A, type: float}", 2, 2.0),
        ("{column: A, type: bool}", "Yes", True),
        ("{column: A, type: bool}", "0", False),
        ("{column: A, type: bool}", False, False),
        ("{column: A, type: str}", 12, "12"),
        ("{column: A, map: {Yes: true, No: false}}", "Yes", True),
        ("{column: A, map: {Yes: true, No: false}}", "Maybe", "Maybe"),
        ("{column: A, map: {'1': high, '2': low}}", 1, "high"),
        ("{column: A, map: {gone: null}}", "gone", None),
        ("{column: A, map: {High: '3'}, type: int}", "High", 3),
        ("{column: A, null_values: [n/a]}", "n/a", None),
        ("{column: A, null_values: [n/a]}", "Select", None),
        ("{column: A, type: int}", "Select", None),
    ],
)
def test_attribute_values(spec: str, value: Any, expected: Any) -> None:
    text = f"lead_id: id\nnull_values: [Select]\nattributes:\n  a: {spec}\n"
    assert lead_row(text, {"id": "L", "A": value}).lead.attributes == {"a": expected}


@pytest.mark.parametrize(
    ("spec", "value", "reason"),
    [
        ("{column: A, type: int}", "2.5", "A: not an int: '2.5'"),
        ("{column: A, type: int}", "abc", "A: not an int: 'abc'"),
        ("{column: A, type: float}", "1,5", "A: not a number: '1,5'"),
        ("{column: A, type: float}", "nan", "A: not a finite number: 'nan'"),
        ("{column: A, type: float}", [1], "A: not a number: [1]"),
        ("{column: A, type: bool}", "perhaps", "A: not a bool: 'perhaps'"),
        ("{column: A, type: str}", {"x": 1}, "A: not a plain value: {'x': 1}"),
        (
            "{column: A, map: {Yes: true, No: false}, strict: true}",
            "Maybe",
            "A: 'Maybe' is not one of the mapped values ('Yes', 'No')",
        ),
    ],
)
def test_bad_values_name_the_column(spec: str, value: Any, reason: str) -> None:
    assert row_error(f"lead_id: id\nattributes:\n  a: {spec}\n", {"id": "L", "A": value}) == reason


def test_every_bad_column_of_a_row_is_reported() -> None:
    text = "lead_id: id\noutcome: {column: C, type: bool}\nattributes:\n"
    text += "  a: {column: A, type: int}\n  b: {column: B, type: float}\n"
    reason = row_error(text, {"id": "L", "A": "x", "B": "y", "C": "z"})
    assert reason == "A: not an int: 'x'; B: not a number: 'y'; C: not a bool: 'z'"


@pytest.mark.parametrize(
    ("text", "row", "reason"),
    [
        ("lead_id: Prospect ID\n", {"id": "x"}, "missing lead id column 'Prospect ID'"),
        ("lead_id: Prospect ID\n", {"Prospect ID": ""}, "Prospect ID: empty lead id"),
        ("lead_id: Prospect ID\n", {"Prospect ID": None}, "missing lead id column 'Prospect ID'"),
        ("other_columns: keep\n", {"name": "x"}, "missing lead id (no 'lead_id' or 'id' field)"),
        ("lead_id: k\n", {"k": [1]}, "k: lead id must be text or an integer, not [1]"),
        ("lead_id: k\n", {"k": True}, "k: lead id must be text or an integer, not True"),
    ],
)
def test_lead_id_problems(text: str, row: dict[str, Any], reason: str) -> None:
    assert row_error(text, row) == reason


def test_default_mapping_keeps_columns_and_nulls_empty_text() -> None:
    result = map_lead_row({"lead_id": "a", "title": "CEO", "phone": ""}, DEFAULT_MAPPING)
    assert result.lead.id == "a"
    assert result.lead.attributes == {"title": "CEO", "phone": None}
    assert map_lead_row({"id": 12, "x": 1}, DEFAULT_MAPPING).lead.id == "12"


def test_dotted_columns_reach_into_json_objects() -> None:
    text = "lead_id: id\nattributes:\n  email: traits.email\n  size: {column: co.size, type: int}\n"
    row = {"id": "L", "traits": {"email": "a@b.com"}, "co": {"size": "12"}}
    assert lead_row(text, row).lead.attributes == {"email": "a@b.com", "size": 12}


# ---------------------------------------------------------------------------
# Events derived from columns

OLIST = """\
lead_id: mql_id
null_values: [unknown]
attributes:
  source: origin
  landing_page: landing_page_id
events:
  - name: first_contact
    type: form_submitted
    timestamp: first_contact_date
    properties: {landing_page: landing_page_id, origin: origin}
"""


def test_event_from_a_timestamp_column() -> None:
    row = {
        "mql_id": "m1",
        "first_contact_date": "2018-02-01",
        "landing_page_id": "lp",
        "origin": "",
    }
    (event,) = lead_row(OLIST, row).events
    assert (event.id, event.type, event.lead_id) == ("m1:first_contact", "form_submitted", "m1")
    assert event.timestamp == datetime(2018, 2, 1, tzinfo=UTC)
    assert event.properties == {"landing_page": "lp"}


def test_null_timestamp_gives_no_event_and_bad_one_an_error() -> None:
    row = {"mql_id": "m1", "first_contact_date": "", "landing_page_id": "lp", "origin": "x"}
    assert lead_row(OLIST, row).events == ()
    row["first_contact_date"] = "2018-2-01"
    assert row_error(OLIST, row) == ("first_contact_date: not an ISO 8601 timestamp: '2018-2-01'")


@pytest.mark.parametrize(
    ("activity", "expected"),
    [
        ("Page Visited on Website", "page_viewed"),  # per-event types table
        ("Email Link Clicked", "email_clicked"),  # built-in aliases
        ("Olark Chat Conversation", "message_received"),  # global event_types
        ("Had a Phone Conversation", "had_a_phone_conversation"),  # custom event
        ("Modified", None),  # skipped
        ("Select", None),  # null
    ],
)
def test_event_type_from_a_column(activity: str, expected: str | None) -> None:
    text = """\
    lead_id: id
    null_values: [Select]
    event_types: {Olark Chat Conversation: message_received}
    events:
      - type_from: Last Activity
        types: {Page Visited on Website: page_viewed}
        skip: [Modified]
        at: "2019-06-30T12:00:00+02:00"
    """
    events = lead_row(text, {"id": "L", "Last Activity": activity}).events
    assert [e.type for e in events] == ([expected] if expected else [])
    if expected:
        assert events[0].id == "L:last_activity"
        assert events[0].timestamp == datetime(2019, 6, 30, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("count", "events", "reason"),
    [
        ("3", 3, None),
        ("0", 0, None),
        ("", 0, None),
        ("2.0", 2, None),
        ("-1", 0, "N: -1 is outside 0..5 (max_count)"),
        ("6", 0, "N: 6 is outside 0..5 (max_count)"),
        ("many", 0, "N: not an int: 'many'"),
    ],
)
def test_count_column_gives_that_many_events(count: str, events: int, reason: str | None) -> None:
    text = (
        "lead_id: id\nevents:\n  - {type: page_viewed, count: N, max_count: 5, at: '2020-01-01'}\n"
    )
    row = {"id": "L", "N": count}
    if reason:
        assert row_error(text, row) == reason
    else:
        made = lead_row(text, row).events
        assert [e.id for e in made] == [f"L:page_viewed:{k}" for k in range(1, events + 1)]


def test_header_problems() -> None:
    m = parse_mapping(XEDU)
    problems, fatal = header_problems(["Prospect ID", "Lead Source", "Lead Source"], m)
    assert not fatal
    assert problems[0] == "duplicate column 'Lead Source'"
    assert "attributes.total_visits: missing column 'TotalVisits'" in problems
    assert "outcome: missing column 'Converted'" in problems
    assert "event 'visit': missing column 'TotalVisits'" in problems
    assert header_problems(["id"], m) == (["missing lead id column 'Prospect ID'"], True)
    assert header_problems(["x"], DEFAULT_MAPPING)[1]
    assert header_problems(["id", "x"], DEFAULT_MAPPING) == ([], False)
    assert event_header_problems(["lead_id", "type"], DEFAULT_MAPPING) == (
        ["missing event column 'timestamp' (event_fields.timestamp)"],
        True,
    )


# ---------------------------------------------------------------------------
# Native event rows


def test_native_event_row() -> None:
    row = {
        "id": "e1",
        "lead_id": "L1",
        "type": "Guide Downloaded",
        "timestamp": "2024-03-01T10:00:00+01:00",
        "properties": {"asset": "pricing-guide", "campaign_name": "Spring"},
    }
    event = map_event_row(row)
    assert (event.id, event.lead_id, event.type) == ("e1", "L1", "asset_downloaded")
    assert event.timestamp == datetime(2024, 3, 1, 9, tzinfo=UTC)
    assert event.properties == {
        "asset": "pricing-guide",
        "campaign_name": "Spring",
        "campaign": "Spring",
    }


def test_native_event_from_csv_like_row() -> None:
    row = {
        "message_id": "m9",
        "lead_id": "L1",
        "type": "page_viewed",
        "timestamp": "2024-03-01",
        "path": "/pricing",
        "referrer": "",
        "properties": '{"title": "Pricing"}',
    }
    event = map_event_row(row)
    assert event.id == "m9"
    assert event.properties == {"path": "/pricing", "title": "Pricing"}


def test_event_without_id_gets_a_stable_hash() -> None:
    row = {"lead_id": "L", "type": "page_viewed", "timestamp": "2024-01-01T00:00:00Z"}
    first, again = map_event_row(row), map_event_row(dict(reversed(row.items())))
    assert first.id == again.id == stable_id(row)
    assert first.id.startswith("h:")
    assert map_event_row({**row, "path": "/x"}).id != first.id


def test_event_fields_and_types_from_mapping() -> None:
    m = mapping(
        """\
        event_fields: {id: uuid, lead_id: contact.id, type: action, timestamp: at}
        event_types: {Pricing Viewed: page_viewed}
        """
    )
    row = {"uuid": 5, "contact": {"id": "c1"}, "action": "Pricing Viewed", "at": "2024-01-01"}
    event = map_event_row(row, m)
    assert (event.id, event.lead_id, event.type) == ("5", "c1", "page_viewed")
    assert event.properties == {"contact": {"id": "c1"}}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"lead_id": None}, "lead_id: missing lead id"),
        ({"lead_id": ""}, "lead_id: missing lead id"),
        ({"lead_id": "  "}, "lead_id: empty lead id"),
        ({"lead_id": 1.5}, "lead_id: lead id must be text or an integer, not 1.5"),
        ({"type": None}, "type: missing event type"),
        ({"type": 3}, "type: expected text, got 3 event type"),
        ({"timestamp": ""}, "timestamp: missing timestamp"),
        (
            {"timestamp": "2015-2-02T00:30:08.276Z"},
            "timestamp: not an ISO 8601 timestamp: '2015-2-02T00:30:08.276Z'",
        ),
        ({"timestamp": "2015-13-02T00:30:08Z"}, "timestamp: not a valid timestamp"),
        ({"timestamp": 1700000000}, "timestamp: expected an ISO 8601 timestamp, got 1700000000"),
        ({"id": ["x"]}, "id: event id must be text or an integer"),
        ({"properties": "{oops"}, "properties: invalid JSON"),
        ({"properties": "[1]"}, "properties: expected a JSON object, got [1]"),
        ({"properties": 7}, "properties: expected a JSON object, got 7"),
    ],
)
def test_bad_event_rows(change: dict[str, Any], reason: str) -> None:
    row = {"id": "e", "lead_id": "L", "type": "x", "timestamp": "2024-01-01T00:00:00Z", **change}
    with pytest.raises(InvalidRow) as info:
        map_event_row(row)
    assert info.value.reason.startswith(reason)


def test_canonical_properties_keep_originals_and_never_overwrite() -> None:
    assert canonical_properties({"campaign_id": "1", "campaign_name": "N"}) == {
        "campaign_id": "1",
        "campaign_name": "N",
        "campaign": "1",
    }
    assert canonical_properties({"campaign": "c", "campaign_id": "1"})["campaign"] == "c"
    assert canonical_properties({"email_subject": "Hi"})["subject"] == "Hi"


@pytest.mark.parametrize(
    ("value", "cast", "expected"),
    [("10", "int", 10), ("1e3", "int", 1000), ("1e3", "float", 1000.0), ("TRUE", "bool", True)],
)
def test_cast_value(value: Any, cast: str, expected: Any) -> None:
    assert cast_value(value, cast) == expected


# ---------------------------------------------------------------------------
# The fast timestamp path reads exactly what parse_timestamp reads

_PARTS = st.tuples(
    st.integers(2, 9998),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    st.sampled_from(["", ".1", ".123", ".123456", ".1234567", ",5"]),
    st.sampled_from(["Z", "Z", "Z", "z", "+00:00", "-05:30", "+14:00", "", "+0530"]),
)


@settings(max_examples=100, deadline=None)
@given(_PARTS)
def test_read_timestamp_matches_parse_timestamp(parts: tuple[Any, ...]) -> None:
    year, month, day, hour, minute, second, fraction, zone = parts
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{fraction}{zone}"
    assert read_timestamp(text) == parse_timestamp(text)
    assert read_timestamp(text).tzinfo is UTC


def test_timestamp_outside_the_calendar_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"'0001-01-01T00:00:00\+14:00'.*out of range"):
        read_timestamp("0001-01-01T00:00:00+14:00")
    with pytest.raises(InvalidRow, match=r"^timestamp: not a valid timestamp: .*out of range"):
        map_event_row({"lead_id": "L", "type": "x", "timestamp": "0001-01-01T00:00+01:00"})


@pytest.mark.parametrize(
    "text",
    [
        "2015-2-02T00:30:08.276Z",
        "2024-02-30T00:00:00Z",
        "2024-02-10T24:00:00.000Z",
        "2024-02-1\u0660T10:00:00Z",
        "2024-02-10T10:00:00.1 3Z",
        "soon",
    ],
)
def test_read_timestamp_rejects_what_parse_timestamp_rejects(text: str) -> None:
    with pytest.raises(ValueError) as fast:
        read_timestamp(text)
    with pytest.raises(ValueError) as slow:
        parse_timestamp(text)
    assert str(fast.value) == str(slow.value)


def _doc_mappings() -> list[str]:
    doc = Path(__file__).parents[1] / "docs" / "mapping.md"
    return re.findall(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)


def test_every_example_in_the_mapping_docs_parses() -> None:
    examples = _doc_mappings()
    assert len(examples) >= 3
    for text in examples:
        parse_mapping(text, "docs/mapping.md")


def test_a_mapping_nested_too_deeply_is_refused_with_a_reason() -> None:
    with pytest.raises(MappingError) as caught:
        parse_mapping("lead_id: " + "[" * 5000 + "]" * 5000, "m.yaml")
    assert "nested too deeply" in str(caught.value)
