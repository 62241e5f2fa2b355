"""The vectorised scorer gives the reference evaluator's numbers.

Random histories (seeded) for the default model and for a model using every rule kind
and option are scored both ways and compared per lead: every rule's points, the groups,
total, fit, stage, disqualification (rule, reason and event), intent event, events seen
and the last event time. The histories hold ties in time, repeated event ids with the
same or different content, events after the scoring time and exactly at it, timestamps
with offsets, missing and null properties, numbers that equal strings, non-mapping
``fields``, and attributes of every type. The slower general paths are forced once too.
Simulated Segment files are read by both readers and must give the same events, lead
attributes and scores.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadgate.adapters.model_source import read_model
from leadgate.domain.events import Event, Lead
from leadgate.domain.model import ScoringModel
from leadgate.domain.model_file import load_model
from leadgate.domain.scoring import evaluate
from leadgate.domain.stages import decide
from leadgate.fastscore import (
    EventStore,
    Scores,
    connect,
    load_segment,
    prepare,
    score_all,
    score_segment_files,
)
from leadgate.fastscore import events as fs_events
from leadgate.fastscore import rules as fs_rules
from leadgate.fastscore import segment as fs_segment
from leadgate.fastscore.prefilter import could_match_sql, required_literals
from leadgate.services.sources import load_sources
from leadgate.simulation import main_simulate

AS_OF = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)

# Every rule kind and option: windows, once_per on a nested path, total and period caps
# with partial awards, negative points, per-rule decay, counts with and without a span,
# ratios with a window, gaps with a period cap, groups, custom events, every kind of
# disqualifier, intent actions with conditions.
EVERY_OPTION = """
name: every-option
version: "7"
thresholds: {mql: 8, sql: 10}
intent_window: 30d
decay: {half_life: 20d}
groups: [web, seo]
custom_events: [Trial Started]
attributes: [plan, score_hint]
lists:
  partners: [partner.example, Friends.Example]
intent_actions:
  - {event: quote_requested}
  - {event: trial_started, where: {plan: {in: [pro, 2]}}}
  - event: form_submitted
    where: {form: {glob: 'contact*'}, "fields.budget": {gte: 1000}}
  - event: email_replied
    where: {body: {matches: '\\?\\s*$'}}
rules:
  - id: pricing
    event: page_viewed
    where: {path: {glob: ['/pricing*', '/plans/?']}}
    points: 2.5
    group: web
    cap: {total: 11, period: 1d, period_max: 6}
  - id: services-window
    event: page_viewed
    where: {path: {glob: '/services/*'}, title: {exists: true}}
    window: 30d
    points: 3
    decay: none
  - id: service-period
    event: page_viewed
    where: {path: {glob: '/services/*'}}
    points: 1.5
    group: web
    cap: {period: 12h, period_max: 4}
  - id: assets-once
    event: asset_downloaded
    once_per: asset
    points: 4
    group: seo
    cap: {total: 10}
  - id: form-company-once
    event: form_submitted
    once_per: fields.company
    points: 3
    window: 60d
  - id: campaign-clicks
    event: email_clicked
    once_per: campaign
    points: 2
    decay: {half_life: 7d}
  - id: replies-many
    event: email_replied
    points: 1
    cap: {total: 300}
  - id: unsubscribed
    event: email_unsubscribed
    points: -7
    cap: {total: 10, period: 7d, period_max: 8}
  - id: bounced
    event: email_bounced
    points: -2
  - id: three-services
    event: page_viewed
    where: {path: {glob: '/services/*'}}
    count_at_least: 3
    within: 2d
    points: 6
    group: web
  - id: two-assets-ever
    event: asset_downloaded
    count_at_least: 2
    points: 5
    window: 90d
  - id: first-trial
    event: trial_started
    count_at_least: 1
    within: 1h
    points: 9
    decay: {half_life: 3d}
  - id: opens
    kind: ratio
    numerator: {event: email_opened, distinct: campaign}
    denominator: {event: email_delivered, distinct: campaign}
    at_least: 0.6
    min_denominator: 2
    window: 45d
    points: 7
    group: seo
  - id: clicks-per-open
    kind: ratio
    numerator: {event: email_clicked, where: {link_url: {contains: 'PRICING'}}, distinct: campaign}
    denominator: {event: email_opened, distinct: campaign}
    at_least: 1.0
    points: 4
  - id: comeback
    kind: return_after_gap
    event: page_viewed
    gap: 2d
    points: 2
    window: 50d
    cap: {total: 5, period: 30d, period_max: 3}
  - id: comeback-form
    kind: return_after_gap
    event: form_submitted
    where: {form: {not_in: [newsletter]}}
    gap: 36h
    points: 4
fit:
  - {id: senior, field: title, matches: '(?i)\\b(head|chief|vp)\\b', points: 6, group: web}
  - {id: mid-size, field: company_size, gt: 9, lte: 500, points: 4}
  - id: partner-domain
    field: email_domain
    in_list: partners
    points: 5
    group: seo
  - {id: no-partner, field: email_domain, not_in_list: partners, points: -1}
  - id: pro-plan
    where: {plan: pro, score_hint: {gte: 2}}
    points: 3
  - {id: has-country, field: country, exists: false, points: -2}
  - {id: customer, field: customer, equals: true, points: -4}
disqualify:
  - {id: hp, honeypot: website_url, reason: spam}
  - id: dq-form
    event: form_submitted
    where: {form: {equals: spam-trap}}
    reason: spam
  - {id: texts-any, text_matches: '(?i)casino|\\$\\$\\$', reason: spam}
  - id: jobs
    text_matches: '(?i)\\b(jobs?|cv)\\b'
    event: [form_submitted, email_replied]
    reason: job_seeker
  - {id: rival, field: email_domain, in: [rival.example], reason: competitor}
  - {id: nope, field: do_not_contact, equals: true, reason: do_not_contact}
"""

PATHS = [
    "/pricing", "/pricing/team", "/plans/a", "/plans/ab", "/testimonials", "/case-studies/x",
    "/services/web", "/services/seo", "/careers", "/jobs/3", "/", "/blog/a", None, 7,
]  # fmt: skip
BENIGN = [
    None, "", "Could you send a quote?", "What is your pricing?", "Hello", "Price?  ", 12,
    ["a", "list"], "Résumé attached", "Thanks", "See you", "Any availability next week?",
]  # fmt: skip
SPAMMY = ["I need a job", "My CV", "Win at the casino", "$$$ deal", "backlinks for you"]
CAMPAIGNS = ["c1", "c2", "c3", "c\u00e9", 1, "1", "", None, 2.0]
TYPES = [
    "page_viewed", "page_viewed", "page_viewed", "page_viewed", "page_viewed",
    "asset_downloaded", "email_delivered", "email_delivered", "email_opened", "email_opened",
    "email_clicked", "email_replied",
    "email_unsubscribed", "email_bounced", "email_marked_spam", "form_submitted",
    "form_submitted", "quote_requested", "meeting_booked", "message_received",
    "webinar_attended", "trial_started", "custom_thing",
]  # fmt: skip


def _message(rng: random.Random) -> Any:
    return rng.choice(SPAMMY) if rng.random() < 0.03 else rng.choice(BENIGN)


def _props(rng: random.Random, kind: str, campaigns: list[Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if kind == "page_viewed":
        props["path"] = rng.choice(PATHS + ["/services/web", "/services/seo"] * 3)
        props["title"] = rng.choice(["Pricing", "", None, "Services"])
    elif kind in ("asset_downloaded", "webinar_attended"):
        props["asset"] = rng.choice(["a", "b", "c", None, 3, 3.0])
        props["webinar"] = rng.choice(["w1", "w2"])
    elif kind.startswith("email_"):
        props["campaign"] = rng.choice(campaigns)
        props["subject"] = rng.choice(["Hi", "News", "", None] * 50 + ["Casino night"])
        props["body"] = _message(rng)
        props["link_url"] = rng.choice(["https://x/pricing", "https://x/PRICING", None])
    elif kind == "form_submitted":
        props["form"] = rng.choice(
            ["contact", "contact-sales", "request-proposal", "quote", "newsletter"] * 3
            + ["spam-trap"]
        )
        props["message"] = _message(rng)
        fields: dict[str, Any] = {
            "company": rng.choice(["Acme", "Beta", None, 5, "acme"]),
            "budget": rng.choice([500, 1500, "2000", "lots", None]),
            "note": _message(rng),
        }
        if rng.random() < 0.1:
            fields["website_url"] = rng.choice(["http://spam.example", "", None])
        props["fields"] = rng.choice([fields, fields, "not a mapping"])
        if rng.random() < 0.05:
            props["website_url"] = "x"
    elif kind == "message_received":
        props["body"] = _message(rng)
        props["comment"] = _message(rng)
    elif kind == "trial_started":
        props["plan"] = rng.choice(["pro", "free", 2, "2", None])
    if rng.random() < 0.05:
        props["question"] = _message(rng)
    return {k: v for k, v in props.items() if v is not None or rng.random() < 0.3}


def _attributes(rng: random.Random) -> dict[str, Any]:
    domain = rng.choice(
        ["gmail.com", "partner.example", "friends.example", "rival.example", "acme.example", ""]
    )
    attrs: dict[str, Any] = {
        "title": rng.choice(["Head of Sales", "VP Marketing", "Intern", "chief cook", "", None, 3]),
        "company_size": rng.choice([5, 10, "250", 501, 9.5, "many", None, True]),
        "email": rng.choice(
            [f"x@{domain}", f"Y@ {domain.upper()} ", "no-at", None, f"a@b@{domain}", "@"]
        ),
        "customer": rng.choice([True, False, "yes", None, "true"]),
        "do_not_contact": rng.choice([False] * 12 + [True, "1"]),
        "plan": rng.choice(["pro", "free", None]),
        "score_hint": rng.choice([1, 2, "3", None]),
        "country": rng.choice(["GB", "", None]),
    }
    if rng.random() < 0.2:
        attrs["email_domain"] = rng.choice(["partner.example", "", "Rival.example", None])
    return {k: v for k, v in attrs.items() if v is not None or rng.random() < 0.5}


def _timestamp(rng: random.Random, previous: list[datetime]) -> datetime:
    if previous and rng.random() < 0.15:
        return rng.choice(previous)  # a tie
    if previous and rng.random() < 0.35:  # close to another event: hits spans and periods
        return rng.choice(previous) + timedelta(minutes=rng.randint(-600, 600))
    moment = AS_OF - timedelta(days=rng.uniform(-5, rng.choice([40, 120])))
    moment = moment.replace(microsecond=rng.choice([0, 0, rng.randint(0, 999_999)]))
    if rng.random() < 0.05:
        return AS_OF  # exactly at the scoring time
    return moment


def random_history(seed: int, leads: int) -> tuple[list[Lead], list[Event]]:
    rng = random.Random(seed)
    people: list[Lead] = []
    events: list[Event] = []
    for n in range(leads):
        lead_id = f"lead-{n:04d}" if rng.random() < 0.9 else f"anon:{n}"
        people.append(Lead(lead_id, _attributes(rng)))
        times: list[datetime] = []
        own: list[Event] = []
        campaigns = rng.sample(CAMPAIGNS, 3)
        for _ in range(rng.choice([0, 1, 3, 8, 15, 30, 50])):
            kind = rng.choice(TYPES)
            at = _timestamp(rng, times)
            times.append(at)
            event_id = f"e{n}-{len(own)}"
            if own and rng.random() < 0.08:  # a repeated id: same or different content
                twin = rng.choice(own)
                event_id = twin.id
                if rng.random() < 0.5:
                    kind, at = twin.type, twin.timestamp
            own.append(Event(event_id, lead_id, kind, at, _props(rng, kind, campaigns)))
        events += own
    return people, events


MODELS = {
    "default": lambda: read_model(),
    "every-option": lambda: load_model(EVERY_OPTION, "every-option.yaml"),
}


def _store(con: duckdb.DuckDBPyConnection, leads: list[Lead], events: list[Event]) -> EventStore:
    """The history in DuckDB: timestamps as ISO text with offsets, properties as JSON text."""
    zones = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
    con.execute(
        "CREATE TABLE ev AS SELECT unnest(?::VARCHAR[]) AS lead_id, unnest(?::VARCHAR[]) AS id, "
        "unnest(?::VARCHAR[]) AS type, CAST(unnest(?::VARCHAR[]) AS TIMESTAMPTZ) AS ts, "
        "unnest(?::VARCHAR[]) AS properties",
        [
            [e.lead_id for e in events],
            [e.id for e in events],
            [e.type for e in events],
            [e.timestamp.astimezone(zones[i % 3]).isoformat() for i, e in enumerate(events)],
            [orjson.dumps(e.properties).decode() for e in events],
        ],
    )
    con.execute(
        "CREATE TABLE people AS SELECT unnest(?::VARCHAR[]) AS lead_id, "
        "CAST(unnest(?::VARCHAR[]) AS JSON) AS attributes",
        [[p.id for p in leads], [orjson.dumps(dict(p.attributes)).decode() for p in leads]],
    )
    return prepare(con, "ev", "people")


def assert_same_as_reference(
    model: ScoringModel,
    leads: list[Lead],
    events: list[Event],
    scores: Scores,
    as_of: datetime = AS_OF,
) -> None:
    by_lead: dict[str, list[Event]] = {}
    for event in events:
        by_lead.setdefault(event.lead_id, []).append(event)
    fast = {r["lead_id"]: r for r in scores.rows(batch=50)}
    points: dict[tuple[str, str], float] = {}
    for row in scores.points.fetchall():
        assert (row[0], row[1]) not in points and row[2] != 0
        points[(row[0], row[1])] = row[2]
    assert set(fast) == {p.id for p in leads} | set(by_lead)
    for lead in leads:
        ref = evaluate(model, lead, by_lead.get(lead.id, []), as_of)
        got = fast[lead.id]
        where = f"lead {lead.id}"
        for result in ref.rules:
            value = points.get((lead.id, result.rule_id), 0.0)
            assert value == pytest.approx(result.points, abs=1e-9), (
                f"{where}, rule {result.rule_id}"
            )
        for name, value in ref.groups.items():
            assert got["groups"][name] == pytest.approx(value, abs=1e-9), f"{where}, group {name}"
        assert got["total"] == pytest.approx(ref.total, abs=1e-9), where
        assert got["fit"] == pytest.approx(ref.fit, abs=1e-9), where
        assert got["stage"] == decide(ref, model).stage, where
        dq = ref.disqualified
        assert (got["disqualified_by"], got["disqualified_reason"]) == (
            (dq.rule_id, dq.reason) if dq else (None, None)
        ), where
        assert got["disqualified_event_id"] == (dq.event_id if dq else None), where
        assert got["has_intent"] == (ref.intent is not None), where
        assert got["intent_event_id"] == (ref.intent.event_id if ref.intent else None), where
        assert got["events_seen"] == ref.events_seen, where
        last = ref.last_event_at.replace(tzinfo=None) if ref.last_event_at else None
        assert got["last_event_at"] == last, where


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_numbers_as_reference(model_name: str, seed: int) -> None:
    model = MODELS[model_name]()
    leads, events = random_history(seed, 120)
    con = connect(memory_limit="1GB")
    store = _store(con, leads, events)
    assert_same_as_reference(model, leads, events, score_all(model, store, AS_OF))


def test_stages_and_rules_are_all_exercised() -> None:
    """The random data reaches every stage and gives points for every rule."""
    model = MODELS["every-option"]()
    leads, events = random_history(1, 120)
    con = connect(memory_limit="1GB")
    scores = score_all(model, _store(con, leads, events), AS_OF)
    rows = list(scores.rows())
    assert {r["stage"] for r in rows} == {"new", "nurturing", "mql", "sql", "disqualified"}
    rewarded = {rule_id for _, rule_id, _ in scores.points.fetchall()}
    assert rewarded == {rule.id for rule in (*model.fit, *model.rules)}
    assert {r["disqualified_by"] for r in rows} >= {d.id for d in model.disqualifiers}


SEGMENT = [
    {"type": "page", "name": "Pricing", "properties": {"path": "/pricing"},
     "messageId": "m1", "timestamp": "2026-03-01T10:00:00Z", "anonymousId": "a1"},
    {"type": "identify", "traits": {"email": "ann@acme.example", "title": "CEO"},
     "messageId": "m2", "timestamp": "2026-03-01T10:05:00+01:00", "anonymousId": "a1",
     "userId": "u1"},
    {"type": "identify", "traits": {"email": "ann@acme.example", "title": "Head of Sales"},
     "messageId": "m3", "timestamp": "2026-03-02T10:05:00", "userId": "u1"},
    {"type": "track", "event": "Email Link Clicked", "properties": {"campaign_id": "c9"},
     "messageId": "m4", "timestamp": "2026-03-03T08:00:00.123456789Z", "userId": "u1"},
    {"type": "track", "event": "Quote Requested", "properties": {"message": "Price?"},
     "messageId": "m5", "timestamp": "2026-03-04T08:00:00Z", "anonymousId": "a1"},
    {"type": "page", "properties": {"path": "/", "name": "Home page"}, "name": "Home",
     "messageId": "m6", "timestamp": "2026-03-05T08:00:00Z", "anonymousId": "a2"},
    {"type": "track", "event": "Something Custom", "properties": {"campaign": "kept",
     "campaign_id": "dropped"}, "timestamp": "2026-03-06T08:00:00Z", "userId": "u2"},
    {"type": "track", "event": "Quote Requested", "timestamp": "not a time", "userId": "u2"},
]  # fmt: skip


def test_load_segment(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in SEGMENT))
    con = connect(memory_limit="1GB")
    store = load_segment(con, path)
    leads = dict(con.execute(f"SELECT lead_id, attributes FROM {store.leads}").fetchall())
    assert set(leads) == {"u1", "u2", "anon:a2"}
    assert orjson.loads(leads["u1"]) == {"email": "ann@acme.example", "title": "Head of Sales"}
    events = con.execute(
        f"SELECT l.lead_id, e.id, e.type, e.us, e.props FROM {store.events} e "
        f"JOIN {store.leads} l USING (lead_key) ORDER BY e.ord"
    ).fetchall()
    got = [(lead, i, t, us, orjson.loads(p)) for lead, i, t, us, p in events]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def us(text: str) -> int:
        return (datetime.fromisoformat(text) - epoch) // timedelta(microseconds=1)

    assert got[:3] == [
        ("anon:a2", "m6", "page_viewed", us("2026-03-05T08:00:00+00:00"),
         {"path": "/", "name": "Home page"}),
        ("u1", "m1", "page_viewed", us("2026-03-01T10:00:00+00:00"),
         {"path": "/pricing", "name": "Pricing"}),
        ("u1", "m4", "email_clicked", us("2026-03-03T08:00:00.123456+00:00"),
         {"campaign_id": "c9", "campaign": "c9"}),
    ]  # fmt: skip
    assert got[3][:3] == ("u1", "m5", "quote_requested")
    assert got[4][0] == "u2" and got[4][2] == "something_custom"
    assert got[4][4] == {"campaign": "kept", "campaign_id": "dropped"}
    assert got[4][1].startswith("h:")
    assert len(got) == 5


def _python_path(path: Path) -> tuple[dict[str, Lead], dict[str, list[Event]]]:
    """Leads and events as the Python readers see a Segment file."""
    loaded = load_sources(None, path, None)
    assert not loaded.errors
    return loaded.inputs.leads, loaded.inputs.events


def test_segment_file_scores_as_the_python_readers_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated Segment data, read by both paths and scored by both evaluators."""
    monkeypatch.setattr(fs_segment, "BATCH", 7)  # leads are written in several batches
    path = tmp_path / "events.jsonl"
    main_simulate(400, 60, 5, path, tmp_path / "truth.csv")
    extra = [
        {"type": "alias", "previousId": "old-1", "userId": "u-000003",
         "timestamp": "2026-01-02T00:00:00Z"},
        {"type": "track", "event": "Quote Requested", "anonymousId": "old-1",
         "properties": {"message": "price?"}, "messageId": "x1",
         "originalTimestamp": "2026-02-01T10:00:00+02:00"},
        {"type": "screen", "name": "Pricing", "userId": "u-000004", "messageId": "x2",
         "properties": {}, "context": {"page": {"path": "/pricing", "url": ""}},
         "sentAt": "2026-02-10T10:00:00Z"},
        {"type": "page", "userId": "u-000004", "messageId": "x3", "name": "Services",
         "properties": {"title": "t"}, "context": {"page": {"path": "/services/seo"}},
         "timestamp": "2026-02-11T10:00:00Z"},
        {"type": "identify", "userId": "u-000004", "timestamp": "2026-02-12T10:00:00Z",
         "traits": {"firstName": "Kim", "title": None, "company": {"name": "Acme",
                    "employee_count": 40}}},
        {"type": "group", "userId": "u-000005", "groupId": "g1",
         "timestamp": "2026-02-12T10:00:00Z",
         "traits": {"name": "Beta", "employees": 12, "industry": "Retail"}},
    ]  # fmt: skip
    escaped = (  # an escaped property name and a page name to add to escaped properties
        b'{"type":"track","event":"Email Opened","userId":"u-000006","messageId":"x4",'
        b'"timestamp":"2026-02-13T10:00:00Z","properties":{"campaign\\u005fid":"c7"}}\n'
        b'{"type":"page","name":"N\\u00e4me","userId":"u-000006","messageId":"x5",'
        b'"timestamp":"2026-02-13T11:00:00Z","properties":{"title":"a \\"quoted\\" one"}}\n'
    )
    with path.open("ab") as f:
        f.write(b"".join(orjson.dumps(m) + b"\n" for m in extra) + escaped)
    leads, events = _python_path(path)
    con = connect(memory_limit="1GB")
    store = load_segment(con, path)
    fast_leads = dict(con.execute(f"SELECT lead_id, attributes FROM {store.leads}").fetchall())
    for lead_id, lead in leads.items():
        assert orjson.loads(fast_leads[lead_id]) == dict(lead.attributes), lead_id
    loaded = {
        (lead_id, event_id): (kind, us, orjson.loads(props))
        for lead_id, event_id, kind, us, props in con.execute(
            f"SELECT l.lead_id, e.id, e.type, e.us, e.props FROM {store.events} e "
            f"JOIN {store.leads} l USING (lead_key)"
        ).fetchall()
    }
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    python = {
        (e.lead_id, e.id): (
            e.type,
            (e.timestamp - epoch) // timedelta(microseconds=1),
            e.properties,
        )
        for lead_events in events.values()
        for e in lead_events
    }
    assert loaded == python
    as_of = datetime(2026, 3, 1, tzinfo=UTC)
    model = read_model()
    everyone = [leads.get(i, Lead(i)) for i in sorted(set(leads) | set(events))]
    flat = [e for i in sorted(events) for e in events[i]]
    assert_same_as_reference(model, everyone, flat, score_all(model, store, as_of), as_of)


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_fallback_paths_give_the_same_numbers(
    model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slower general paths (used for large caps, many distinct values, many text
    hits, hash collisions) agree with the reference too."""
    monkeypatch.setattr(fs_rules, "MAX_TOP_K", 0)
    monkeypatch.setattr(fs_rules, "MAX_BIT_VALUES", 0)
    monkeypatch.setattr(fs_events, "MAX_LITERAL_HITS", 0)
    monkeypatch.setattr(fs_events, "HASH_JOIN", False)
    model = MODELS[model_name]()
    leads, events = random_history(4, 100)
    con = connect(memory_limit="1GB")
    assert_same_as_reference(
        model, leads, events, score_all(model, _store(con, leads, events), AS_OF)
    )


PATTERNS = [
    r"(?i)\b(jobs?|vacanc(y|ies)|cv|résumé|apply for)\b",
    r"(?i)(backlinks?|guest post|\$\$\$|\b0[89]\d{3,}|risk[- ]free|rank (you|your site) #?1)",
    r"\?\s*$",
    r"Price|COST",
    r"(?i:k)elvin",
    r"straße",
    r"a[bc]d|x\.y",
]
TEXT_ALPHABET = 'abcdeijklmnoprsuvxyABCKPRS0189 ?$.-#\\"é\u212a\u017f\u0131\n'


@given(st.lists(st.text(alphabet=TEXT_ALPHABET, max_size=30), max_size=40))
@settings(max_examples=60, deadline=None)
def test_prefilter_never_drops_a_match(values: list[str]) -> None:
    """Whenever Python's regex matches a text, the SQL prefilter keeps its JSON text."""
    values += ["apply for a job", "RISK-FREE", "call 0812345", "KELVIN", "Kelvin", "ſtraße"]
    con = duckdb.connect()
    for pattern in PATTERNS:
        literals = required_literals(pattern)
        if literals is None:
            continue
        regex = re.compile(pattern)
        jsons = [orjson.dumps(v).decode() for v in values] + [
            orjson.dumps({"k": v}).decode() for v in values
        ]
        keep = could_match_sql("v", literals)
        query = f"SELECT list(v) FILTER (WHERE {keep}) FROM unnest(?::VARCHAR[]) t(v)"
        kept = con.execute(query, [jsons]).fetchall()[0][0] or []
        for value in values:
            if regex.search(value):
                assert orjson.dumps(value).decode() in kept, (pattern, value)
                assert orjson.dumps({"k": value}).decode() in kept, (pattern, value)


def test_prepare_takes_relations_with_epoch_times_and_structs(tmp_path: Path) -> None:
    con = connect(memory_limit="1GB")
    at = datetime(2026, 3, 31, tzinfo=UTC)
    us = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    events = con.sql(
        "SELECT 'l1' AS lead_id, 'e1' AS id, 'quote_requested' AS type, "
        f"CAST({us} AS BIGINT) AS ts, {{'message': 'Price?'}} AS properties"
    )
    leads = con.sql("SELECT 'l1' AS lead_id, {'title': 'Head of Marketing'} AS attributes")
    model = read_model()
    lead = Lead("l1", {"title": "Head of Marketing"})
    event = Event("e1", "l1", "quote_requested", at, {"message": "Price?"})
    assert_same_as_reference(
        model, [lead], [event], score_all(model, prepare(con, events, leads), AS_OF)
    )
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in SEGMENT))
    scores = score_segment_files(model, [path], AS_OF, memory_limit="1GB")
    assert {r["lead_id"] for r in scores.rows()} == {"u1", "u2", "anon:a2"}
