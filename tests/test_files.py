"""Reading leads and events from files, and writing results."""

from __future__ import annotations

import gzip
import itertools
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from leadgate.adapters.files import (
    collect_links,
    detect_format,
    load_mapping,
    read_events,
    read_leads,
    read_segment,
    write_results,
)
from leadgate.domain.events import Event
from leadgate.domain.mapping import MappingError, RowError, parse_mapping
from leadgate.domain.rows import LeadRow
from leadgate.domain.segment import Identity, leads_from_identities

DATA = Path(__file__).parents[1].parent / "shared" / "data"
SEGMENT_SPEC = DATA / "formats" / "segment_spec"


def write(path: Path, text: str | bytes) -> Path:
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def jsonl(*items: Any) -> str:
    return "".join(x if isinstance(x, str) else orjson.dumps(x).decode() + "\n" for x in items)


def errors(items: list[Any]) -> list[tuple[int, str]]:
    return [(e.line, e.reason) for e in items if isinstance(e, RowError)]


def leads(items: list[Any]) -> list[LeadRow]:
    return [x for x in items if isinstance(x, LeadRow)]


# ---------------------------------------------------------------------------
# Leads


def test_csv_leads_without_mapping(tmp_path: Path) -> None:
    text = 'lead_id,title,notes\na,CEO,\nb,"Head of\nSales","said ""hi"""\n\nc,CTO\nd,,plain\n'
    items = list(read_leads(write(tmp_path / "leads.csv", text)))
    got = leads(items)
    assert [(r.lead.id, r.line) for r in got] == [("a", 2), ("b", 3), ("d", 7)]
    assert got[0].lead.attributes == {"title": "CEO", "notes": None}
    assert got[1].lead.attributes == {"title": "Head of\nSales", "notes": 'said "hi"'}
    assert got[2].lead.attributes == {"title": None, "notes": "plain"}
    assert errors(items) == [(6, "expected 3 fields, got 2")]
    assert all(e.source == str(tmp_path / "leads.csv") for e in items if isinstance(e, RowError))


def test_csv_header_without_lead_id_stops_with_one_error(tmp_path: Path) -> None:
    path = write(tmp_path / "leads.csv", "name,title\nx,y\n")
    assert errors(list(read_leads(path))) == [
        (1, "missing lead id column (expected 'lead_id' or 'id')")
    ]
    m = parse_mapping("lead_id: Prospect ID\n")
    assert [str(e) for e in read_leads(path, m)] == [
        f"{path}:1: missing lead id column 'Prospect ID'"
    ]


def test_csv_missing_mapped_column_is_reported_once(tmp_path: Path) -> None:
    m = parse_mapping(
        "lead_id: id\nattributes:\n  title: Job Title\n  size: {column: n, type: int}"
    )
    items = list(read_leads(write(tmp_path / "l.csv", "id,n\nx,3\ny,lots\n"), m))
    assert errors(items) == [
        (1, "attributes.title: missing column 'Job Title'"),
        (3, "n: not an int: 'lots'"),
    ]
    assert leads(items)[0].lead.attributes == {"title": None, "size": 3}


def test_csv_bom_empty_id_and_bad_utf8(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbfid,city\n1,Z\xfcrich\n,Bern\n3,Basel\n"
    items = list(read_leads(write(tmp_path / "l.csv", data)))
    assert [r.lead.id for r in leads(items)] == ["3"]
    assert errors(items) == [(2, "not valid UTF-8 text"), (3, "id: empty lead id")]


def test_empty_csv(tmp_path: Path) -> None:
    assert errors(list(read_leads(write(tmp_path / "l.csv", "")))) == [
        (1, "empty file: no header line")
    ]


def test_json_lines_leads_and_errors(tmp_path: Path) -> None:
    text = jsonl(
        {"id": "a", "title": "CEO", "tags": ["x"]},
        "{bad json\n",
        "\n",
        "[1, 2]\n",
        {"name": "no id"},
        {"lead_id": 7, "title": ""},
    )
    items = list(read_leads(write(tmp_path / "l.jsonl", text)))
    assert [(r.lead.id, r.line) for r in leads(items)] == [("a", 1), ("7", 6)]
    assert leads(items)[0].lead.attributes == {"title": "CEO", "tags": ["x"]}
    assert leads(items)[1].lead.attributes == {"title": None}
    found = errors(items)
    assert [line for line, _ in found] == [2, 4, 5]
    assert found[0][1].startswith("invalid JSON: ")
    assert found[1][1] == "expected a JSON object, got a list"
    assert found[2][1] == "missing lead id (no 'lead_id' or 'id' field)"


@pytest.mark.parametrize("name", ["l.csv.gz", "l.CSV.GZ"])
def test_gzip_csv(tmp_path: Path, name: str) -> None:
    items = list(read_leads(write(tmp_path / name, "id,a\n1,x\n2\n")))
    assert [r.lead.id for r in leads(items)] == ["1"]
    assert errors(items) == [(3, "expected 2 fields, got 1")]


def test_gzip_detected_by_content(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    path.write_bytes(gzip.compress(jsonl({"id": "z"}).encode()))
    assert [r.lead.id for r in leads(list(read_leads(path)))] == ["z"]


def test_leads_with_mapping_and_outcome(tmp_path: Path) -> None:
    mapping = write(
        tmp_path / "m.yaml",
        "lead_id: Prospect ID\noutcome: {column: Converted, type: int}\npost_outcome: [Tags]\n"
        "null_values: [Select]\nattributes:\n  city: City\n",
    )
    csv_text = "Prospect ID,City,Converted,Tags\np1,Select,1,Closed\np2,Oslo,0,\n"
    rows = leads(list(read_leads(write(tmp_path / "l.csv", csv_text), load_mapping(mapping))))
    assert [(r.lead.id, r.lead.attributes, r.outcome) for r in rows] == [
        ("p1", {"city": None}, 1),
        ("p2", {"city": "Oslo"}, 0),
    ]


def test_load_mapping_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "lead_id: id\nattributes:\n  a: {column: A, type: x}\n")
    with pytest.raises(MappingError, match=rf"^{path}:3: attributes\.a\.type: unknown type 'x'"):
        load_mapping(path)


# ---------------------------------------------------------------------------
# Native events


def test_native_json_lines_events(tmp_path: Path) -> None:
    text = jsonl(
        {"id": "e1", "lead_id": "L", "type": "Page View", "timestamp": "2024-01-01T10:00:00Z"},
        {"id": "e2", "lead_id": "L", "type": "x", "timestamp": "2015-2-02T00:30:08.276Z"},
        "not json\n",
        {"id": "e3", "type": "x", "timestamp": "2024-01-01"},
        "\n",
        {"message_id": "e4", "lead_id": "M", "type": "quote_requested", "timestamp": "2024-01-02"},
    )
    items = list(read_events(write(tmp_path / "e.jsonl", text)))
    events = [e for e in items if isinstance(e, Event)]
    assert [(e.id, e.lead_id, e.type) for e in events] == [
        ("e1", "L", "page_viewed"),
        ("e4", "M", "quote_requested"),
    ]
    assert events[0].timestamp == datetime(2024, 1, 1, 10, tzinfo=UTC)
    found = errors(items)
    assert found[0] == (2, "timestamp: not an ISO 8601 timestamp: '2015-2-02T00:30:08.276Z'")
    assert found[1][0] == 3 and found[1][1].startswith("invalid JSON")
    assert found[2] == (4, "lead_id: missing lead id")


def test_native_csv_events(tmp_path: Path) -> None:
    text = (
        "id,lead_id,type,timestamp,path,properties\n"
        'e1,L,page_viewed,2024-01-01T00:00:00Z,/pricing,"{""title"": ""Pricing""}"\n'
        "e2,L,page_viewed,2024-01-01,/about,{oops\n"
        ",L,form_submitted,2024-01-03,,\n"
    )
    items = list(read_events(write(tmp_path / "e.csv", text)))
    events = [e for e in items if isinstance(e, Event)]
    assert events[0].properties == {"path": "/pricing", "title": "Pricing"}
    assert events[1].type == "form_submitted" and events[1].id.startswith("h:")
    assert events[1].properties == {}
    assert [(line, reason.split(" (")[0]) for line, reason in errors(items)] == [
        (3, "properties: invalid JSON")
    ]


def test_native_csv_events_with_mapping(tmp_path: Path) -> None:
    m = parse_mapping(
        "event_fields: {id: Activity ID, lead_id: Contact, type: Activity, timestamp: Date}\n"
        "event_types: {Pricing Page Visit: page_viewed}\n"
    )
    text = "Activity ID,Contact,Activity,Date\n1,c1,Pricing Page Visit,2024-05-01 09:30\n"
    (event,) = list(read_events(write(tmp_path / "a.csv", text), m))
    assert isinstance(event, Event)
    assert (event.id, event.lead_id, event.type) == ("1", "c1", "page_viewed")
    missing = list(read_events(write(tmp_path / "b.csv", "Contact,Activity\nc1,x\n"), m))
    assert errors(missing) == [(1, "missing event column 'Date' (event_fields.timestamp)")]


# ---------------------------------------------------------------------------
# Segment


def _segment_log() -> str:
    t = "2024-01-01T00:00:0{}Z"
    return jsonl(
        {"type": "page", "anonymousId": "a1", "messageId": "m1", "timestamp": t.format(1)},
        {
            "type": "identify",
            "userId": "u1",
            "anonymousId": "a1",
            "traits": {"email": "u1@acme.example", "title": "CTO"},
            "timestamp": t.format(2),
        },
        {
            "type": "track",
            "event": "Guide Downloaded",
            "anonymousId": "a2",
            "timestamp": t.format(3),
        },
        {"type": "alias", "previousId": "a3", "userId": "u2", "timestamp": t.format(4)},
        {
            "type": "track",
            "event": "Quote Requested",
            "anonymousId": "a3",
            "timestamp": t.format(5),
        },
        {
            "type": "track",
            "event": "x",
            "userId": "u9",
            "anonymousId": "a1",
            "timestamp": t.format(6),
        },
        "{truncated\n",
        {"action": "track", "event": "Email Opened", "user_id": "u1"},
        {"type": "page", "anonymousId": "a1", "messageId": "m9", "timestamp": t.format(9)},
    )


def test_segment_stitching(tmp_path: Path) -> None:
    path = write(tmp_path / "s.jsonl", _segment_log())
    assert collect_links(path) == {"a1": "u1", "a3": "u2"}  # first link for a1 wins
    items = list(read_events(path))
    events = [e for e in items if isinstance(e, Event)]
    assert [(e.type, e.lead_id) for e in events] == [
        ("page_viewed", "u1"),  # anonymous before identify: joined to its user
        ("asset_downloaded", "anon:a2"),  # never linked: its own lead
        ("quote_requested", "u2"),  # linked by an alias call
        ("x", "u9"),  # a userId is always the lead id
        ("page_viewed", "u1"),
    ]
    identities = [i for i in items if isinstance(i, Identity)]
    assert leads_from_identities(identities)["u1"].attributes["title"] == "CTO"
    found = errors(items)
    assert [line for line, _ in found] == [7, 8]
    assert found[1][1].startswith("timestamp: missing")


def test_segment_without_stitching(tmp_path: Path) -> None:
    path = write(tmp_path / "s.jsonl.gz", _segment_log())
    events = [e for e in read_segment(path, stitch=False) if isinstance(e, Event)]
    assert [e.lead_id for e in events] == ["anon:a1", "anon:a2", "anon:a3", "u9", "anon:a1"]


def test_segment_batch_document(tmp_path: Path) -> None:
    doc = {
        "batch": [
            {"type": "track", "event": "a", "userId": "u", "timestamp": "2024-01-01T00:00:00Z"},
            {"type": "track", "event": "b", "userId": "u", "timestamp": "2024-1-01T00:00:00Z"},
            "oops",
            {"type": "page", "anonymousId": "x", "timestamp": "2024-01-02"},
        ],
        "writeKey": "k",
    }
    path = write(tmp_path / "batch.json", orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    assert detect_format(path) == "json"
    items = list(read_events(path))
    assert [e.type for e in items if isinstance(e, Event)] == ["a", "page_viewed"]
    assert errors(items) == [
        (9, "batch[1]: timestamp: not an ISO 8601 timestamp: '2024-1-01T00:00:00Z'"),
        (15, "batch[2]: expected a JSON object, got a string"),
    ]


def test_broken_json_document(tmp_path: Path) -> None:
    path = write(tmp_path / "x.json", '{\n  "type": "track",\n  "event": \n}\n')
    (error,) = list(read_events(path))
    assert isinstance(error, RowError) and error.line == 4
    assert error.reason.startswith("invalid JSON")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.csv", "x", "csv"),
        ("a.jsonl", "x", "jsonl"),
        ("a.ndjson.gz", "x", "jsonl"),
        ("a.json", '{"a": 1}\n{"a": 2}\n', "jsonl"),
        ("a.json", '\n{"a": 1}\n', "jsonl"),
        ("a.json", '{\n  "a": 1\n}\n', "json"),
        ("a.json", "[1, 2]\n", "json"),
    ],
)
def test_detect_format(tmp_path: Path, name: str, text: str, expected: str) -> None:
    assert detect_format(write(tmp_path / name, text)) == expected


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown file type '\.txt'"):
        detect_format(write(tmp_path / "a.txt", ""))


def test_explicit_format_and_dialect(tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.log", jsonl({"type": "page", "userId": "u", "sentAt": "2024-01-01"})
    )
    (event,) = list(read_events(path, format="jsonl"))
    assert isinstance(event, Event) and event.type == "page_viewed"
    (native,) = list(read_events(path, format="jsonl", dialect="native"))
    assert isinstance(native, RowError) and native.reason == "lead_id: missing lead id"


# ---------------------------------------------------------------------------
# Writers


def test_write_csv_and_jsonl(tmp_path: Path) -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = [
        {"lead_id": "a", "score": 12.5, "stage": "mql", "at": when, "ok": True, "why": {"r": 1}},
        {"lead_id": "b", "score": 0, "stage": None},
    ]
    assert write_results(tmp_path / "out.csv", iter(rows)) == 2
    assert (tmp_path / "out.csv").read_text() == (
        "lead_id,score,stage,at,ok,why\n"
        'a,12.5,mql,2024-01-02T03:04:05+00:00,true,"{""r"":1}"\n'
        "b,0,,,,\n"
    )
    assert write_results(tmp_path / "out.jsonl.gz", rows) == 2
    lines = gzip.decompress((tmp_path / "out.jsonl.gz").read_bytes()).splitlines()
    assert orjson.loads(lines[0])["at"] == "2024-01-02T03:04:05+00:00"
    assert orjson.loads(lines[1]) == {"lead_id": "b", "score": 0, "stage": None}
    assert [r.lead.id for r in leads(list(read_leads(tmp_path / "out.csv")))] == ["a", "b"]


def test_write_csv_with_columns_and_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_results(path, [{"b": 1, "a": 2}], columns=["a", "b", "c"])
    assert path.read_text() == "a,b,c\n2,1,\n"
    with pytest.raises(ValueError, match="row 2: columns not in the header: extra"):
        write_results(path, [{"a": 1}, {"a": 2, "extra": 3}])
    assert path.read_text() == "a,b,c\n2,1,\n"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_write_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert write_results("-", [{"a": 1}, {"a": frozenset({"x"})}]) == 2
    assert capsysbinary.readouterr().out == b'{"a":1}\n{"a":["x"]}\n'


# ---------------------------------------------------------------------------
# Real data (../shared/data)

TIMESTAMP_MISSING = "timestamp: missing (no timestamp, originalTimestamp, sentAt or receivedAt)"
TYPE_MISSING = "type: missing (expected one of alias, group, identify, page, screen, track)"
NO_USER = "userId: missing (no userId, user_id or anonymousId)"

SEGMENT_EXPECTED: dict[str, list[str]] = {
    **{f"b2b_saas_{n:02d}.json": [f"error {TIMESTAMP_MISSING}"] for n in range(1, 11)},
    **{f"email_{n:02d}.json": [f"error {TIMESTAMP_MISSING}"] for n in range(1, 7)},
    "common_01.json": ["event report_submitted 97980cfea0067"],
    "group_01.json": [f"error {NO_USER}"],
    "group_02.json": ["group 97980cfea0067"],
    "http_api_01.json": [f"error {TYPE_MISSING}"],
    "http_api_02.json": ["event item_purchased 019mr8mf4r"],
    "http_api_03.json": [f"error {TYPE_MISSING}"],
    "http_api_04.json": [f"error {TYPE_MISSING}"],
    "http_api_05.json": [f"error {TYPE_MISSING}"],
    "http_api_06.json": [],  # an alias call: it only links ids
    "http_api_07.json": [
        "identify 019mr8mf4r",
        "event song_played 019mr8mf4r",
        "error batch[2]: timestamp: not an ISO 8601 timestamp: '2015-2-02T00:30:08.276Z'",
        "error batch[3]: timestamp: not an ISO 8601 timestamp: '2015-2-02T00:30:12.984Z'",
    ],
    "http_api_08.json": [f"error {TYPE_MISSING}"],
    "identify_01.json": ["identify 97980cfea0067"],
    "identify_02.json": ["identify 97980cfea0067"],
    "page_01.json": [f"error {NO_USER}; {TIMESTAMP_MISSING}"],
    "page_02.json": ["event page_viewed 97980cfea0067"],
    "track_01.json": [f"error {NO_USER}; {TIMESTAMP_MISSING}"],
    "track_02.json": ["event course_clicked AiUGstSDIg"],
    "track_03.json": ["event button_clicked AiUGstSDIg"],
}


def _describe(item: Event | Identity | RowError) -> str:
    if isinstance(item, RowError):
        return f"error {item.reason}"
    if isinstance(item, Identity):
        return f"{item.kind} {item.lead_id}"
    return f"event {item.type} {item.lead_id}"


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (the ../shared/data folder is absent)")


@pytest.mark.realdata
def test_every_segment_spec_example_reads_or_names_its_error() -> None:
    _need(SEGMENT_SPEC)
    files = sorted(SEGMENT_SPEC.glob("*.json"))
    assert len(files) == 34
    got = {f.name: [_describe(x) for x in read_events(f)] for f in files}
    assert got == SEGMENT_EXPECTED


@pytest.mark.realdata
def test_segment_example_details() -> None:
    _need(SEGMENT_SPEC)
    (page,) = list(read_events(SEGMENT_SPEC / "page_02.json"))
    assert isinstance(page, Event)
    assert page.id == "022bb90c-bbac-11e4-8dfc-aa07a5b093db"
    assert page.properties == {
        "title": "Welcome | Initech",
        "url": "http://www.example.com",
        "name": "Home",
    }
    assert page.timestamp == datetime(2015, 2, 23, 22, 28, 55, 111000, tzinfo=UTC)
    (identity,) = list(read_events(SEGMENT_SPEC / "identify_02.json"))
    assert isinstance(identity, Identity)
    assert (identity.attributes["city"], identity.attributes["country"]) == ("San Francisco", "USA")
    batch = [e for e in read_events(SEGMENT_SPEC / "http_api_07.json") if isinstance(e, RowError)]
    assert [e.line for e in batch] == [23, 33]


XEDU_MAPPING = """\
lead_id: Prospect ID
outcome: {column: Converted, type: int}
post_outcome: [Tags, Lead Quality]
null_values: [Select]
attributes:
  lead_number: {column: Lead Number, type: int}
  origin: Lead Origin
  source: Lead Source
  do_not_email: {column: Do Not Email, map: {Yes: true, No: false}, strict: true}
  do_not_call: {column: Do Not Call, map: {Yes: true, No: false}, strict: true}
  total_visits: {column: TotalVisits, type: int}
  time_on_site: {column: Total Time Spent on Website, type: int}
  page_views_per_visit: {column: Page Views Per Visit, type: float}
  country: Country
  city: City
  specialization: Specialization
  occupation: What is your current occupation
  heard_about_us: How did you hear about X Education
  lead_profile: Lead Profile
events:
  - name: last_activity
    type_from: Last Activity
    types: {Page Visited on Website: page_viewed, Olark Chat Conversation: message_received}
    at: "2019-01-01T00:00:00Z"
  - name: visit
    type: page_viewed
    count: TotalVisits
    at: "2019-01-01T00:00:00Z"
"""


@pytest.mark.realdata
def test_xeducation_csv_with_a_mapping() -> None:
    path = DATA / "xeducation_leads.csv"
    _need(path)
    items = list(read_leads(path, parse_mapping(XEDU_MAPPING, "xedu.yaml")))
    assert errors(items) == []
    rows = leads(items)
    assert len(rows) == 9240
    assert len({r.lead.id for r in rows}) == 9240
    first = rows[0]
    assert first.line == 2 and first.lead.id == "7927b2df-8bba-4d29-b9a2-b6e0beafe620"
    # "Select" means "not answered": null, never the text "Select".
    assert first.lead.attributes["specialization"] is None
    assert first.lead.attributes["city"] is None
    assert not any("Select" in r.lead.attributes.values() for r in rows)
    assert all({"Tags", "Lead Quality", "Converted"}.isdisjoint(r.lead.attributes) for r in rows)
    assert Counter(r.outcome for r in rows) == {0: 5679, 1: 3561}
    visits = sum(1 for r in rows for e in r.events if e.id.startswith(f"{r.lead.id}:visit:"))
    assert visits == sum(r.lead.attributes["total_visits"] or 0 for r in rows)
    last = Counter(e.type for r in rows for e in r.events if e.id.endswith(":last_activity"))
    assert last["email_opened"] == 3437 and last["message_received"] == 973


@pytest.mark.realdata
def test_xeducation_with_the_documented_mapping() -> None:
    path = DATA / "xeducation_leads.csv"
    _need(path)
    doc = (Path(__file__).parents[1] / "docs" / "mapping.md").read_text(encoding="utf-8")
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    read = read_leads(path, parse_mapping(example, "docs/mapping.md"))
    items = list(itertools.islice(read, 2000))
    assert errors(items) == []
    rows = leads(items)
    assert len(rows) == 2000
    assert {r.lead.attributes["activity_index"] for r in rows} == {None, "high", "medium", "low"}
    assert {type(r.lead.attributes["wants_free_copy"]) for r in rows} == {bool}


@pytest.mark.realdata
def test_olist_marketing_qualified_leads() -> None:
    path = DATA / "olist" / "olist_marketing_qualified_leads_dataset.csv"
    _need(path)
    mapping = parse_mapping(
        "lead_id: mql_id\nnull_values: [unknown]\nattributes:\n  source: origin\n"
        "  landing_page: landing_page_id\nevents:\n  - name: first_contact\n"
        "    type: form_submitted\n    timestamp: first_contact_date\n"
        "    properties: {landing_page: landing_page_id}\n"
    )
    items = list(read_leads(path, mapping))
    assert errors(items) == []
    rows = leads(items)
    assert len(rows) == 8000
    assert all(len(r.events) == 1 and r.events[0].type == "form_submitted" for r in rows)
    assert rows[0].events[0].timestamp == datetime(2018, 2, 1, tzinfo=UTC)
    assert rows[0].lead.attributes["source"] == "social"


def test_write_json_extension_means_json_lines(tmp_path: Path) -> None:
    assert write_results(tmp_path / "out.json", [{"a": 1}, {"a": 2}]) == 2
    assert (tmp_path / "out.json").read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert detect_format(tmp_path / "out.json") == "jsonl"


def test_write_events_and_read_them_back(tmp_path: Path) -> None:
    when = datetime(2024, 5, 1, 12, tzinfo=UTC)
    rows = [
        {"id": "e1", "lead_id": "L", "type": "page_viewed", "timestamp": when, "properties": {}},
        {"id": "e2", "lead_id": "L", "type": "quote_requested", "timestamp": when},
    ]
    write_results(tmp_path / "events.jsonl.gz", rows)
    back = list(read_events(tmp_path / "events.jsonl.gz"))
    assert back == [
        Event("e1", "L", "page_viewed", when, {}),
        Event("e2", "L", "quote_requested", when, {}),
    ]


def test_bad_utf8_in_a_json_document(tmp_path: Path) -> None:
    path = write(tmp_path / "doc.json", b'{\n  "batch": [\n    {"event": "caf\xe9"}\n  ]\n}\n')
    assert errors(list(read_events(path))) == [
        (3, "not valid UTF-8 text: the document cannot be read")
    ]


def test_many_bad_csv_lines_are_each_reported(tmp_path: Path) -> None:
    data = b"id,name\n" + b"".join(b"%d,\xff\n" % i for i in range(1, 6)) + b"9,ok\n"
    items = list(read_leads(write(tmp_path / "l.csv", data)))
    assert errors(items) == [(n, "not valid UTF-8 text") for n in range(2, 7)]
    assert [r.lead.id for r in leads(items)] == ["9"]
