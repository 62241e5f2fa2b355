"""Inbound webhooks and native events: domain conversions and signatures (no fixtures),
then the endpoints in process on SQLite and PostgreSQL.

Payloads are built from the real formats in ``../shared/data/formats/`` (read at test
time): every key sent is checked against the published schema it claims to follow.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from anyio.from_thread import start_blocking_portal

from leadgate.domain import calendly, hubspot
from leadgate.domain.forms import form_messages
from leadgate.domain.inbound import InvalidPayload, SignatureError, native_event, native_items
from leadgate.store.repository import Repository
from leadgate.web.app import create_app
from leadgate.web.settings import Settings
from test_store import db_url  # noqa: F401  (fixture: SQLite and PostgreSQL)
from test_web import Client

FORMATS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "formats"
HUBSPOT_DIR = FORMATS / "hubspot_webhook_schemas_iglu"
CALENDLY_SCHEMAS = FORMATS / "calendly" / "calendly_webhook_schemas_extracted.json"
SEGMENT_PAGE = FORMATS / "segment_spec" / "page_01.json"
SECRET = "hs-client-secret-7f3a"
SIGNING_KEY = "calendly-signing-key-91c2"
HUBSPOT_PATH = "/api/webhooks/hubspot"


def ago(days: float = 0.0, minutes: float = 0.0) -> datetime:
    return datetime.now(UTC) - timedelta(days=days, minutes=minutes)


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def load_json(path: Path) -> Any:
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data folder is beside the repository)")
    return json.loads(path.read_text(encoding="utf-8"))


# -- the published formats ---------------------------------------------------------------


def undeclared(payload: Any, schema: Mapping[str, Any], defs: Mapping[str, Any]) -> list[str]:
    """Keys of ``payload`` its JSON schema does not declare (``$ref`` into ``defs``)."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    if isinstance(payload, list):
        return [p for item in payload for p in undeclared(item, schema.get("items", {}), defs)]
    if not isinstance(payload, dict) or "properties" not in schema:
        return []
    props = schema["properties"]
    out = [key for key in payload if key not in props]
    for key, value in payload.items():
        if key in props:
            out += [f"{key}.{p}" for p in undeclared(value, props[key], defs)]
    return out


def hubspot_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = load_json(HUBSPOT_DIR / f"com.hubspot_{name}_1-0-0.json")
    return schema


def hubspot_event(name: str, kind: str, **fields: Any) -> dict[str, Any]:
    """A HubSpot webhook event following its Iglu schema; HubSpot's post also names the
    ``subscriptionType`` (the Iglu schemas carry it in the schema name instead)."""
    schema = hubspot_schema(name)
    event = {
        "objectId": 1246965,
        "changeSource": "CRM",
        "eventId": 1816279340,
        "subscriptionId": 25,
        "portalId": 33,
        "appId": 1160452,
        "occurredAt": iso(ago(minutes=2)),  # the schema's date-time; HubSpot sends epoch ms
        "attemptNumber": 0,
        **fields,
    }
    assert undeclared(event, schema, {}) == []
    props = schema["properties"]
    for key, value in event.items():
        expected = "integer" if isinstance(value, int) else "string"
        assert props[key]["type"] == expected, key
        assert not isinstance(value, int) or 0 <= value <= props[key]["maximum"], key
    return {"subscriptionType": kind, **event}


def invitee_webhook(kind: str, email: str, **payload: Any) -> dict[str, Any]:
    """A Calendly invitee webhook following the published notification schema."""
    schemas = load_json(CALENDLY_SCHEMAS)
    start = ago(days=-2)
    doc = {
        "created_at": iso(ago(minutes=1)),
        "created_by": "https://api.calendly.com/users/AAAAAAAAAAAAAAAA",
        "event": kind,
        "payload": {
            "cancel_url": "https://calendly.com/cancellations/AAAAAAAAAAAAAAAA",
            "created_at": iso(ago(minutes=1)),
            "email": email,
            "event": "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2",
            "name": "Dana Reyes",
            "first_name": "Dana",
            "last_name": "Reyes",
            "questions_and_answers": [],
            "rescheduled": False,
            "status": "active",
            "timezone": "Europe/Lisbon",
            "tracking": {"utm_campaign": "spring", "utm_source": "newsletter"},
            "uri": "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2/invitees/7c1",
            "scheduled_event": {
                "uri": "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2",
                "name": "Discovery call",
                "status": "active",
                "start_time": iso(start),
                "end_time": iso(start + timedelta(minutes=30)),
                "event_type": "https://api.calendly.com/event_types/GBGBDCAADAEDCRZ2",
            },
            **payload,
        },
    }
    schema = schemas["invitee_webhook_notification_schema"]
    assert undeclared(doc, schema, schemas["definitions"]) == []
    return doc


def unbounce_post(fields: Mapping[str, str], *, iglu: bool = False) -> dict[str, Any]:
    """Unbounce's form post: urlencoded with ``data.json`` as JSON text, or the Iglu
    schema's camel-cased form with ``data.json`` as an object."""
    data = {k: [v] for k, v in fields.items()}
    data |= {"ip_address": ["192.0.2.7"], "page_uuid": ["a2838d98-4cf4-11df-a3fd-00163e372d58"]}
    if iglu:
        doc: dict[str, Any] = {
            "pageId": "a2838d98-4cf4-11df-a3fd-00163e372d58",
            "pageName": "Spring offer",
            "variant": "b",
            "pageUrl": "https://offers.example.com/spring",
            "data.json": data,
        }
        assert undeclared(doc, hubspot_schema_unbounce(), {}) == []
        return doc
    return {
        "page_id": "a2838d98-4cf4-11df-a3fd-00163e372d58",
        "page_name": "Spring offer",
        "variant": "b",
        "page_url": "https://offers.example.com/spring",
        "data.json": json.dumps(data),
        "data.xml": "<data></data>",
    }


def hubspot_schema_unbounce() -> dict[str, Any]:
    schema: dict[str, Any] = load_json(HUBSPOT_DIR / "com.unbounce_form_post_1-0-0.json")
    return schema


# -- domain: signatures -------------------------------------------------------------------


def reference_v3(secret: str, method: str, uri: str, body: str, timestamp: str) -> str:
    """HubSpot's recipe written out: base64(HMAC-SHA256(secret, method+uri+body+timestamp))."""
    source = f"{method}{uri}{body}{timestamp}".encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize(
    ("uri", "signed"),
    [
        ("https://x.example/hook", "https://x.example/hook"),
        ("https://x.example/hook?to=a%40b.c%2Cd", "https://x.example/hook?to=a@b.c,d"),
        (
            "https://x.example/hook?p=%3a%2f%3F%21%24%27%28%29%2A%3B",
            "https://x.example/hook?p=:/?!$'()*;",
        ),
        ("https://x.example/hook?q=a%20b%26c", "https://x.example/hook?q=a%20b%26c"),  # not listed
    ],
)
def test_hubspot_decodes_only_the_listed_escapes_before_signing(uri: str, signed: str) -> None:
    assert hubspot.signed_uri(uri) == signed
    body = b'[{"objectId":1}]'
    expected = reference_v3(SECRET, "POST", signed, body.decode(), "1700000000000")
    assert hubspot.v3_signature(SECRET, "POST", uri, body, "1700000000000") == expected


def test_hubspot_v3_verification_accepts_fresh_and_refuses_wrong_stale_or_missing() -> None:
    body, uri, now = b"[]", "https://x.example/hook", 1_700_000_000_000
    stamp = str(now - 60_000)
    good = reference_v3(SECRET, "POST", uri, "[]", stamp)
    hubspot.verify_v3(SECRET, "POST", uri, body, good, stamp, now)  # no exception
    cases = [
        (good, stamp, b"[1]", "does not match"),
        (reference_v3("other", "POST", uri, "[]", stamp), stamp, body, "does not match"),
        (None, stamp, body, "missing X-HubSpot-Signature-v3"),
        (good, None, body, "missing X-HubSpot-Request-Timestamp"),
        (good, "soon", body, "epoch milliseconds"),
    ]
    for signature, timestamp, sent, reason in cases:
        with pytest.raises(SignatureError, match=reason):
            hubspot.verify_v3(SECRET, "POST", uri, sent, signature, timestamp, now)
    old = str(now - 5 * 60_000 - 1)
    with pytest.raises(SignatureError, match="older than 5 minutes"):
        hubspot.verify_v3(
            SECRET, "POST", uri, body, reference_v3(SECRET, "POST", uri, "[]", old), old, now
        )


def test_calendly_verification_reads_t_and_v1_and_refuses_stale_or_wrong() -> None:
    body, now = b'{"event":"invitee.created"}', 1_700_000_000
    t = str(now - 30)
    v1 = hmac.new(SIGNING_KEY.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert calendly.signature(SIGNING_KEY, t, body) == v1
    calendly.verify(SIGNING_KEY, f"t={t},v1={v1}", body, now)
    calendly.verify(SIGNING_KEY, f"t={t}, v1=deadbeef, v1={v1}", body, now)  # rotated keys
    refusals = [
        (f"t={t},v1={v1}", b"{}", "does not match"),
        (f"t={now - 181},v1={v1}", body, "older than 3 minutes"),
        (f"v1={v1}", body, "no t="),
        (f"t={t}", body, "no v1="),
        (None, body, "missing Calendly-Webhook-Signature"),
    ]
    for header, sent, reason in refusals:
        with pytest.raises(SignatureError, match=reason):
            calendly.verify(SIGNING_KEY, header, sent, now)


# -- domain: conversions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reasons"),
    [
        ({"lead_id": "u1", "type": "x"}, ["id: missing"]),
        ({"id": "e1", "lead_id": "u1"}, ["type: missing"]),
        ({"id": "e1", "type": "x"}, ["lead_id: missing (give lead_id, email or anonymous_id)"]),
        ({"id": "e1", "email": "nope", "type": "x"}, ["email: not an email address"]),
        ({"id": "e1", "lead_id": "u1", "type": "x", "timestamp": "2015-2-02"}, ["timestamp:"]),
        (
            {"id": "e1", "lead_id": "u1", "type": "x", "properties": []},
            ["properties: expected an object"],
        ),
        (
            {"id": ["e"], "lead_id": {}, "type": 3.5},
            ["id: expected text", "lead_id: expected text", "type: expected text"],
        ),
        (
            {"id": "e1", "lead_id": "u1", "type": "x", "timestmap": "2026-01-01T00:00:00Z"},
            ["timestmap: unknown field; did you mean 'timestamp'?"],
        ),
        ({"id": "e1", "lead_id": "u1", "type": "x", "score": 99}, ["score: unknown field (known:"]),
    ],
)
def test_a_native_event_names_every_wrong_field(event: dict[str, Any], reasons: list[str]) -> None:
    with pytest.raises(InvalidPayload) as caught:
        native_event(event)
    for reason in reasons:
        assert reason in caught.value.reason


def test_a_native_event_with_an_email_is_an_identify_then_a_track_on_the_same_ids() -> None:
    event = {
        "id": "e1",
        "email": " Dana@Acme.Example ",
        "type": "Guide Downloaded",
        "timestamp": "2026-03-02T09:30:00Z",
        "properties": {"asset": "seo-guide"},
        "attributes": {"title": "CMO"},
    }
    introduce, act = native_event(event)
    assert introduce["type"] == "identify" and act["type"] == "track"
    assert introduce["traits"] == {"title": "CMO", "email": "dana@acme.example"}
    assert introduce["anonymousId"] == act["anonymousId"] == "email:dana@acme.example"
    assert (act["messageId"], act["event"], act["properties"]) == (
        "e1",
        "Guide Downloaded",
        {"asset": "seo-guide"},
    )
    assert native_items([event]) == ([event], False)
    assert native_items({"events": [event]}) == ([event], False)
    assert native_items(event) == ([event], True)


def test_a_form_keeps_the_honeypot_and_text_in_fields_and_facts_out_of_them() -> None:
    doc = {
        "Email": "Lee@Example.org",
        "First-Name": "Lee",
        "Company": "Initech",
        "company_size": "40",
        "Message": "What does a redesign cost?",
        "website_url": "spam.biz",
        "ajs_anonymous_id": "anon-7",
        "page_url": "https://site.example/contact?x=1",
    }
    introduce, act = form_messages("contact-sales", doc)
    assert introduce["anonymousId"] == act["anonymousId"] == "anon-7"
    assert introduce["traits"] == {
        "email": "lee@example.org",
        "first_name": "Lee",
        "company": "Initech",
        "company_size": 40,
    }
    props = act["properties"]
    assert props["form"] == "contact-sales" and props["path"] == "/contact"
    assert props["fields"]["website_url"] == "spam.biz"
    assert props["message"] == "What does a redesign cost?"
    assert "ajs_anonymous_id" not in props["fields"] and "page_url" not in props["fields"]
    again = form_messages("contact-sales", dict(doc))[1]
    assert again["messageId"] == act["messageId"]  # the same content is the same submission
    changed = form_messages("contact-sales", {**doc, "Message": "other"})[1]
    assert changed["messageId"] != act["messageId"]
    with pytest.raises(InvalidPayload, match="email: missing"):
        form_messages("contact", {"name": "x"})
    with pytest.raises(InvalidPayload, match="Email: not an email address"):
        form_messages("contact", {"Email": "x at y"})


def test_a_json_form_may_nest_its_fields_and_name_its_own_submission_id() -> None:
    doc = {
        "fields": {"work_email": "ana@globex.example", "Job Title": "CTO", "question": "Rates?"},
        "page_url": "https://site.example/quote",
        "submission_id": "sub-981",
        "timestamp": "2026-03-02T09:30:00Z",
    }
    introduce, act = form_messages("quote", doc)
    assert introduce["traits"] == {"email": "ana@globex.example", "title": "CTO"}
    assert act["messageId"] == "form:quote:sub-981"
    assert act["timestamp"] == introduce["timestamp"] == "2026-03-02T09:30:00+00:00"
    assert act["properties"]["message"] == "Rates?" and act["properties"]["path"] == "/quote"
    assert "submission_id" not in act["properties"]["fields"]


@pytest.mark.parametrize("iglu", [False, True])
def test_unbounce_posts_in_either_shape_give_the_same_submission(iglu: bool) -> None:
    post = unbounce_post(
        {"email": "kim@initech.example", "name": "Kim", "message": "Hi"}, iglu=iglu
    )
    introduce, act = form_messages("spring-offer", post)
    assert introduce["traits"] == {"email": "kim@initech.example", "name": "Kim"}
    props = act["properties"]
    assert props["fields"] == {"email": "kim@initech.example", "name": "Kim", "message": "Hi"}
    assert props["url"] == "https://offers.example.com/spring" and props["source"] == "unbounce"
    assert props["unbounce"]["variant"] == "b"


def test_hubspot_events_convert_and_the_unsupported_are_ignored_with_a_reason() -> None:
    created = hubspot_event("contact_creation", "contact.creation")
    changed = hubspot_event(
        "contact_change",
        "contact.propertyChange",
        eventId=2,
        propertyName="jobtitle",
        propertyValue="Head of Growth",
    )
    changed["occurredAt"] = 1_700_000_000_000  # what HubSpot itself sends: epoch milliseconds
    deal = hubspot_event("deal_creation", "deal.creation", eventId=3)
    broken = {"subscriptionType": "contact.creation", "portalId": 33, "occurredAt": "yesterday"}
    out = hubspot.webhook_events([created, changed, deal, broken, "x"])
    assert [m["type"] for m in out.messages] == ["identify", "track", "identify"]
    assert set(out.origins) == {0, 1}
    assert out.messages[1]["messageId"] == "hubspot:33:1816279340"
    assert out.messages[2]["traits"] == {"title": "Head of Growth"}
    assert out.messages[2]["timestamp"] == "2023-11-14T22:13:20+00:00"
    assert all(m["anonymousId"] == "hubspot:33:1246965" for m in out.messages)
    assert [(p.index, p.reason.split(":")[0]) for p in out.ignored] == [(2, "deal.creation")]
    problems = {p.index: p.reason for p in out.problems}
    assert "objectId: missing" in problems[3] and "eventId: missing" in problems[3]
    assert "occurredAt:" in problems[3] and "expected an event object" in problems[4]


# -- the endpoints ------------------------------------------------------------------------


class Inbound:
    """The app in process with a write and an admin key and both webhook secrets."""

    def __init__(self, client: Client, app: Any, write_key: str, admin_key: str) -> None:
        self.client = client
        self.app = app
        self.write_key = write_key
        self.admin_key = admin_key

    def events(self, body: Any, **kwargs: Any) -> httpx.Response:
        return self.client.post("/api/events", json=body, auth=(self.write_key, ""), **kwargs)

    def form(
        self,
        form_id: str,
        fields: Mapping[str, Any],
        *,
        urlencoded: bool = False,
        key: str | None = None,
    ) -> httpx.Response:
        if urlencoded:
            return self.client.post(
                f"/api/forms/{form_id}?{urlencode({'key': key or self.write_key})}",
                content=urlencode(fields, doseq=True).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        headers = {"Authorization": f"Bearer {key or self.write_key}"}
        return self.client.post(f"/api/forms/{form_id}", json=fields, headers=headers)

    def hubspot(
        self,
        events: Any,
        *,
        secret: str = SECRET,
        at_ms: int | None = None,
        uri: str | None = None,
        path: str = HUBSPOT_PATH,
    ) -> httpx.Response:
        body = orjson.dumps(events)
        stamp = str(at_ms if at_ms is not None else time.time_ns() // 1_000_000)
        signed = uri or f"http://leadgate.test{path}"
        headers = {
            hubspot.SIGNATURE_HEADER: reference_v3(secret, "POST", signed, body.decode(), stamp),
            hubspot.TIMESTAMP_HEADER: stamp,
            "Content-Type": "application/json",
        }
        return self.client.post(path, content=body, headers=headers)

    def calendly(
        self, doc: Any, *, key: str = SIGNING_KEY, at: int | None = None
    ) -> httpx.Response:
        body = orjson.dumps(doc)
        t = str(at if at is not None else int(time.time()))
        v1 = hmac.new(key.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        headers = {calendly.SIGNATURE_HEADER: f"t={t},v1={v1}", "Content-Type": "application/json"}
        return self.client.post("/api/webhooks/calendly", content=body, headers=headers)

    def lead_id(self, kind: str, value: str) -> str | None:
        with self.app.state.engine.connect() as conn:
            found: str | None = Repository(conn).lead_for_identity(kind, value)
            return found

    def lead(self, lead_id: str | None) -> dict[str, Any]:
        assert lead_id is not None
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        response = self.client.get(f"/api/leads/{lead_id}", headers=headers)
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view


def make_client(settings: Settings) -> Iterator[Inbound]:
    app = create_app(settings)
    with app.state.engine.begin() as conn:
        now = datetime.now(UTC)
        _, write_key = Repository(conn).create_api_key("write", now)
        _, admin_key = Repository(conn).create_api_key("admin", now)
    transport = httpx.ASGITransport(app=app)
    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=transport, base_url="http://leadgate.test")
        try:
            yield Inbound(Client(portal, client), app, write_key, admin_key)
        finally:
            portal.call(client.aclose)
            app.state.engine.dispose()


@pytest.fixture
def api(db_url: str) -> Iterator[Inbound]:  # noqa: F811
    settings = Settings(
        database_url=db_url,
        hubspot_client_secret=SECRET,
        calendly_signing_key=SIGNING_KEY,
        public_url=None,
    )
    yield from make_client(settings)


def test_native_events_take_valid_ones_report_invalid_ones_by_index_and_ignore_retries(
    api: Inbound,
) -> None:
    events = [
        {
            "id": "n1",
            "lead_id": "u1",
            "type": "page_viewed",
            "timestamp": iso(ago(2)),
            "properties": {"path": "/pricing"},
            "attributes": {"title": "Founder"},
        },
        {"id": "n2", "lead_id": "u1", "type": "page_viewed"},  # dated when received
        {"lead_id": "u1", "type": "page_viewed"},
        {"id": "n4", "lead_id": "u1", "type": "x", "timestamp": "2015-2-02T00:30:08Z"},
        "not an event",
    ]
    body = api.events({"events": events}).json()
    assert (body["accepted"], body["stored"], body["duplicates"]) == (2, 2, 0)
    assert [e["index"] for e in body["errors"]] == [2, 3, 4]
    assert body["errors"][0]["reason"].startswith("id: missing")
    assert "timestamp" in body["errors"][1]["reason"] and "2015-2-02" in body["errors"][1]["reason"]
    again = api.events(events[:2]).json()
    assert (again["accepted"], again["stored"], again["duplicates"]) == (2, 0, 2)
    lead = api.lead("u1")
    assert [e["id"] for e in lead["recent_events"]] == ["n2", "n1"]
    assert lead["attributes"]["title"] == "Founder"
    assert {r["rule_id"] for r in lead["breakdown"]["rules"]} == {"pricing-page", "senior-title"}


def test_native_events_refuse_bad_bodies_keys_and_sizes(api: Inbound) -> None:
    response = api.events({"id": "x", "lead_id": "u9"})
    assert response.status_code == 422 and "type: missing" in response.json()["error"]
    response = api.events({"events": "nope"})
    assert response.status_code == 400 and "events:" in response.json()["error"]
    response = api.client.post("/api/events", content=b"{oops", auth=(api.write_key, ""))
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    event = {"id": "big", "lead_id": "u9", "type": "x", "properties": {"t": "y" * 33_000}}
    response = api.events(event)
    assert response.status_code == 413 and "32 KB" in response.json()["error"]
    body = api.events([event, {**event, "id": "ok", "properties": {}}]).json()
    assert body["accepted"] == 1 and body["errors"] == [
        {"index": 0, "reason": "event is larger than the 32 KB limit for one event"}
    ]
    response = api.events([event] * 16)
    assert response.status_code == 413 and "500 KB" in response.json()["error"]
    assert api.client.post("/api/events", json=event).status_code == 401
    admin = {"Authorization": f"Bearer {api.admin_key}"}
    assert api.client.post("/api/events", json=event, headers=admin).status_code == 403
    assert len(api.lead("u9")["recent_events"]) == 1  # only "ok" went in


def test_a_form_with_an_email_joins_the_anonymous_visitors_page_views(api: Inbound) -> None:
    page = load_json(SEGMENT_PAGE)  # Segment's own page call example, from an anonymous visitor
    for i, path in enumerate(["/services/seo", "/services/seo/audit", "/pricing"]):
        call = {
            **page,
            "anonymousId": "visitor-1",
            "messageId": f"pv{i}",
            "timestamp": iso(ago(days=3 - i)),
            "properties": {**page["properties"], "path": path},
        }
        assert api.client.post("/v1/page", json=call, auth=(api.write_key, "")).status_code == 200
    visitor = api.lead_id("anonymous_id", "visitor-1")
    assert visitor is not None and len(api.lead(visitor)["recent_events"]) == 3
    known = api.events(
        {
            "id": "k1",
            "lead_id": "crm-42",
            "email": "sam@initech.example",
            "type": "email_opened",
            "timestamp": iso(ago(5)),
        }
    )
    assert known.status_code == 200
    fields = {
        "email": "Sam@Initech.example",
        "name": "Sam Lee",
        "company": "Initech",
        "message": "We need a new site",
        "website_url": "",
        "ajs_anonymous_id": "visitor-1",
        "page_url": "https://site.example/contact",
    }
    response = api.form("contact", fields, urlencoded=True)
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["stored"]) == (1, 1)
    assert api.lead_id("anonymous_id", "visitor-1") == "crm-42"
    lead = api.lead("crm-42")
    events = {e["id"]: e for e in lead["recent_events"]}
    assert {"pv0", "pv1", "pv2", "k1"} <= set(events)
    submitted = next(e for e in lead["recent_events"] if e["type"] == "form_submitted")
    assert submitted["properties"]["fields"]["name"] == "Sam Lee"
    assert submitted["properties"]["path"] == "/contact"
    assert lead["attributes"]["company"] == "Initech"
    assert "contact-form" in {r["rule_id"] for r in lead["breakdown"]["rules"]}
    retry = api.form("contact", fields, urlencoded=True).json()
    assert (retry["stored"], retry["duplicates"]) == (0, 1)
    assert len(api.lead("crm-42")["recent_events"]) == len(lead["recent_events"])


def test_a_filled_honeypot_disqualifies_the_lead_as_spam(api: Inbound) -> None:
    fields = {"email": "bot@leads.example", "message": "Hello", "website_url": "http://x.example"}
    assert api.form("contact", fields).status_code == 200
    lead = api.lead(api.lead_id("email", "bot@leads.example"))
    assert lead["stage"] == "disqualified"
    assert lead["breakdown"]["disqualified"]["rule_id"] == "honeypot"
    assert lead["breakdown"]["disqualified"]["reason"] == "spam"
    human = {"email": "pat@leads.example", "message": "Hello", "website_url": ""}
    assert api.form("contact", human).status_code == 200
    assert api.lead(api.lead_id("email", "pat@leads.example"))["stage"] == "nurturing"


def test_forms_refuse_missing_keys_bad_emails_and_unread_content_types(api: Inbound) -> None:
    fields = {"email": "x@y.example"}
    assert api.form("contact", fields, key="lg_wrong").status_code == 401
    assert api.form("contact", fields, urlencoded=True, key="lg_wrong").status_code == 401
    assert api.client.post("/api/forms/contact", json=fields).status_code == 401
    response = api.form("contact", {"name": "No Email"})
    assert response.status_code == 422 and "email: missing" in response.json()["error"]
    response = api.form("contact", {"your-email": "not-an-email"})
    assert response.status_code == 422 and "your-email: not an email" in response.json()["error"]
    response = api.form("contact", {"email": "x@y.example", "timestamp": "March"})
    assert response.status_code == 422 and "timestamp:" in response.json()["error"]
    response = api.client.post(
        f"/api/forms/contact?key={api.write_key}",
        files={"email": (None, "x@y.example")},
    )
    assert response.status_code == 415 and "multipart/form-data" in response.json()["error"]
    response = api.form("contact", {"email": "x@y.example", "message": "z" * 33_000})
    assert response.status_code == 413
    assert api.lead_id("email", "x@y.example") is None  # nothing refused was stored


def test_an_unbounce_post_is_taken_in_and_its_job_seeker_text_disqualifies(api: Inbound) -> None:
    post = unbounce_post(
        {
            "email": "jo@mail.example",
            "name": "Jo",
            "message": "I am looking for an internship, my CV is attached",
        }
    )
    response = api.form("spring-offer", post, urlencoded=True)
    assert response.status_code == 200 and response.json()["stored"] == 1
    lead = api.lead(api.lead_id("email", "jo@mail.example"))
    assert lead["stage"] == "disqualified"
    assert lead["breakdown"]["disqualified"]["reason"] == "job_seeker"
    submitted = lead["recent_events"][0]["properties"]
    assert submitted["unbounce"]["page_name"] == "Spring offer"
    assert "ip_address" not in submitted["fields"]


def test_a_calendly_booking_makes_a_warm_lead_sql(api: Inbound) -> None:
    email = "dana@acme.example"
    warmup = [
        {
            "id": f"w{i}",
            "email": email,
            "type": "page_viewed",
            "timestamp": iso(ago(days=1 + i)),
            "properties": {"path": "/pricing"},
            "attributes": {"title": "Head of Marketing"},
        }
        for i in range(2)
    ]
    assert api.events(warmup).json()["stored"] == 2
    lead_id = api.lead_id("email", email)
    before = api.lead(lead_id)
    # default model: fit 10 + pricing ~20 < 40 (the MQL and SQL threshold)
    assert before["stage"] == "nurturing" and 29 < before["score"] < 40
    qa = [{"question": "What do you need?", "answer": "A new website", "position": 0}]
    response = api.calendly(invitee_webhook("invitee.created", email, questions_and_answers=qa))
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["stored"]) == (1, 2)
    after = api.lead(lead_id)
    assert after["stage"] == "handed_over" and after["score"] >= 40
    assert after["breakdown"]["intent"]["event_type"] == "meeting_booked"
    assert [(c["from"], c["to"]) for c in after["stage_history"]][-2:] == [
        ("nurturing", "sql"),
        ("sql", "handed_over"),
    ]
    booked = next(e for e in after["recent_events"] if e["type"] == "meeting_booked")
    assert booked["properties"]["meeting_type"] == "Discovery call"
    assert booked["properties"]["utm_source"] == "newsletter"
    assert after["attributes"]["first_name"] == "Dana"
    retry = api.calendly(invitee_webhook("invitee.created", email, questions_and_answers=qa))
    assert (retry.json()["stored"], retry.json()["duplicates"]) == (0, 2)
    canceled = invitee_webhook(
        "invitee.canceled",
        email,
        status="canceled",
        cancellation={"canceled_by": "Dana Reyes", "reason": "Clash", "canceler_type": "invitee"},
    )
    assert api.calendly(canceled).json()["stored"] == 1
    final = api.lead(lead_id)
    assert final["recent_events"][0]["type"] == "meeting_canceled"
    assert final["recent_events"][0]["properties"]["reason"] == "Clash"
    assert final["stage"] == "handed_over"  # the model moves leads forward only


def test_calendly_answers_are_read_as_the_invitees_own_words(api: Inbound) -> None:
    qa = [{"question": "Anything else?", "answer": "Are you hiring? I'd like a job", "position": 0}]
    doc = invitee_webhook("invitee.created", "alex@example.net", questions_and_answers=qa)
    assert api.calendly(doc).status_code == 200
    lead = api.lead(api.lead_id("email", "alex@example.net"))
    assert lead["stage"] == "disqualified"
    assert lead["breakdown"]["disqualified"]["reason"] == "job_seeker"


def test_calendly_signatures_missing_wrong_or_stale_are_401(api: Inbound) -> None:
    doc = invitee_webhook("invitee.created", "lou@example.net")
    assert api.calendly(doc, key="guess").status_code == 401
    stale = api.calendly(doc, at=int(time.time()) - 600)
    assert stale.status_code == 401 and "older than 3 minutes" in stale.json()["error"]
    unsigned = api.client.post("/api/webhooks/calendly", json=doc)
    assert unsigned.status_code == 401 and "missing" in unsigned.json()["error"]
    assert api.lead_id("email", "lou@example.net") is None
    other = api.calendly({"event": "routing_form_submission.created", "payload": {}})
    assert other.status_code == 200 and other.json()["ignored"][0]["index"] == 0
    broken = api.calendly({"event": "invitee.created", "payload": {"name": "No Email"}})
    assert broken.status_code == 422 and "payload.email: missing" in broken.json()["error"]


def test_hubspot_contacts_are_taken_in_when_signed_and_join_the_lead_by_email(
    api: Inbound,
) -> None:
    form = api.form("contact", {"email": "robin@globex.example", "message": "Hi"})
    assert form.status_code == 200
    assert api.lead_id("email", "robin@globex.example") is not None
    batch = [
        hubspot_event("contact_creation", "contact.creation"),
        hubspot_event(
            "contact_change",
            "contact.propertyChange",
            eventId=11,
            propertyName="email",
            propertyValue="Robin@Globex.example",
        ),
        hubspot_event(
            "contact_change",
            "contact.propertyChange",
            eventId=12,
            propertyName="jobtitle",
            propertyValue="VP Sales",
        ),
        hubspot_event("company_creation", "company.creation", eventId=13),
    ]
    response = api.hubspot(batch)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["stored"], body["errors"]) == (3, 1, [])
    assert body["ignored"][0]["index"] == 3
    # One lead now holds the form's email and the HubSpot contact: both were anonymous
    # (no user id), so the ingest use case may keep either id.
    joined = api.lead_id("anonymous_id", "hubspot:33:1246965")
    assert joined == api.lead_id("email", "robin@globex.example")
    lead = api.lead(joined)
    assert lead["attributes"]["title"] == "VP Sales"
    assert sorted(e["type"] for e in lead["recent_events"]) == [
        "crm_contact_created",
        "form_submitted",
    ]
    retried = api.hubspot([{**batch[0], "attemptNumber": 1}]).json()
    assert (retried["stored"], retried["duplicates"]) == (0, 1)


def test_hubspot_signatures_wrong_stale_or_missing_are_401_and_add_nothing(api: Inbound) -> None:
    batch = [hubspot_event("contact_creation", "contact.creation", objectId=77)]
    assert api.hubspot(batch, secret="guess").status_code == 401
    stale = api.hubspot(batch, at_ms=time.time_ns() // 1_000_000 - 6 * 60_000)
    assert stale.status_code == 401 and "older than 5 minutes" in stale.json()["error"]
    unsigned = api.client.post(HUBSPOT_PATH, json=batch)
    assert unsigned.status_code == 401
    assert "missing X-HubSpot-Signature-v3" in unsigned.json()["error"]
    elsewhere = api.hubspot(batch, uri="https://other.example" + HUBSPOT_PATH)
    assert elsewhere.status_code == 401  # the URL is part of what is signed
    assert api.lead_id("anonymous_id", "hubspot:33:77") is None
    query = api.hubspot(
        batch,
        path=HUBSPOT_PATH + "?portal=a%3Ab",
        uri=f"http://leadgate.test{HUBSPOT_PATH}?portal=a:b",
    )
    assert query.status_code == 200 and query.json()["stored"] == 1
    bad = api.hubspot({"portalId": 1})
    assert (
        bad.status_code == 200 and "subscriptionType: missing" in bad.json()["errors"][0]["reason"]
    )
    wrong_shape = api.hubspot("hello")
    assert wrong_shape.status_code == 422 and "body:" in wrong_shape.json()["error"]


def test_webhooks_behind_a_proxy_and_without_secrets(db_url: str) -> None:  # noqa: F811
    settings = Settings(
        database_url=db_url,
        hubspot_client_secret=SECRET,
        calendly_signing_key=None,
        public_url="https://leads.example.com/",
    )
    for api in make_client(settings):
        batch = [hubspot_event("contact_creation", "contact.creation", objectId=5)]
        assert api.hubspot(batch).status_code == 401  # signed for the inner URL
        proxied = api.hubspot(batch, uri="https://leads.example.com" + HUBSPOT_PATH)
        assert proxied.status_code == 200 and proxied.json()["stored"] == 1
        off = api.calendly(invitee_webhook("invitee.created", "a@b.example"))
        assert off.status_code == 503
        assert "LEADGATE_CALENDLY_SIGNING_KEY" in off.json()["error"]
    settings = Settings(database_url=db_url, hubspot_client_secret=None, calendly_signing_key=None)
    for api in make_client(settings):
        off = api.hubspot([hubspot_event("contact_creation", "contact.creation")])
        assert off.status_code == 503
        assert "LEADGATE_HUBSPOT_CLIENT_SECRET" in off.json()["error"]


def test_webhook_secrets_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADGATE_HUBSPOT_CLIENT_SECRET", "from-env")
    monkeypatch.setenv("LEADGATE_CALENDLY_SIGNING_KEY", "")
    settings = Settings()
    assert settings.hubspot_client_secret == "from-env"
    assert settings.calendly_signing_key is None  # empty is unset
    assert "from-env" not in repr(settings)
