"""Segment-spec messages to events and identities (pure; files are in test_files.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from leadgate.domain.events import Event
from leadgate.domain.mapping import InvalidRow, parse_mapping
from leadgate.domain.segment import (
    Identity,
    checked_message,
    convert_message,
    identity_links,
    is_segment_message,
    leads_from_identities,
    message_type,
)

T = "2015-02-23T22:28:55.111Z"
WHEN = datetime(2015, 2, 23, 22, 28, 55, 111000, tzinfo=UTC)


def event(msg: dict[str, Any], links: dict[str, str] | None = None) -> Event:
    result = convert_message(msg, links)
    assert isinstance(result, Event)
    return result


def problem(msg: dict[str, Any]) -> str:
    with pytest.raises(InvalidRow) as info:
        convert_message(msg)
    return info.value.reason


def test_track_becomes_a_canonical_event() -> None:
    msg = {
        "type": "track",
        "event": "Email Link Clicked",
        "userId": "u1",
        "messageId": "m1",
        "timestamp": T,
        "properties": {"campaign_id": "123", "link_url": "https://x.example"},
    }
    e = event(msg)
    assert (e.id, e.lead_id, e.type, e.timestamp) == ("m1", "u1", "email_clicked", WHEN)
    assert e.properties == {
        "campaign_id": "123",
        "campaign": "123",
        "link_url": "https://x.example",
    }


def test_email_spec_spelling_user_id_and_action() -> None:
    msg = {"action": "track", "event": "Email Opened", "user_id": "u1", "sentAt": T}
    e = event(msg)
    assert (e.lead_id, e.type, e.timestamp) == ("u1", "email_opened", WHEN)


def test_page_takes_name_and_context_page() -> None:
    msg = {
        "type": "page",
        "name": "Pricing",
        "userId": "u1",
        "timestamp": T,
        "properties": {"url": "https://x.example/pricing"},
        "context": {"page": {"path": "/pricing", "url": "ignored", "title": "Pricing | X"}},
    }
    e = event(msg)
    assert e.type == "page_viewed"
    assert e.properties == {
        "url": "https://x.example/pricing",
        "name": "Pricing",
        "path": "/pricing",
        "title": "Pricing | X",
    }


def test_screen_is_a_custom_event() -> None:
    assert event({"type": "screen", "name": "Home", "userId": "u", "timestamp": T}).type == (
        "screen_viewed"
    )


def test_mapping_alias_table_applies_to_track_names() -> None:
    m = parse_mapping("event_types: {Report Submitted: form_submitted}\n")
    msg = {"type": "track", "event": "Report Submitted", "userId": "u", "timestamp": T}
    result = convert_message(msg, None, m)
    assert isinstance(result, Event) and result.type == "form_submitted"


def test_timestamp_precedence() -> None:
    base = {"type": "track", "event": "x", "userId": "u"}
    later = "2015-02-24T00:00:00Z"
    assert event({**base, "timestamp": T, "originalTimestamp": later}).timestamp == WHEN
    assert event({**base, "originalTimestamp": T, "sentAt": later}).timestamp == WHEN
    assert event({**base, "sentAt": T, "receivedAt": later}).timestamp == WHEN
    assert event({**base, "receivedAt": T}).timestamp == WHEN


def test_missing_message_id_gets_a_stable_hash() -> None:
    msg = {"type": "track", "event": "x", "userId": "u", "timestamp": T}
    assert event(msg).id == event(dict(reversed(msg.items()))).id
    assert event(msg).id != event({**msg, "event": "y"}).id


def test_anonymous_ids_resolve_through_links() -> None:
    msg = {"type": "page", "anonymousId": "a1", "timestamp": T}
    assert event(msg).lead_id == "anon:a1"
    assert event(msg, {"a1": "u1"}).lead_id == "u1"
    assert event({**msg, "userId": "u2"}, {"a1": "u1"}).lead_id == "u2"


def test_identity_links() -> None:
    assert identity_links({"userId": "u", "anonymousId": "a"}) == [("a", "u")]
    assert identity_links({"type": "alias", "userId": "u", "previousId": "p"}) == [("p", "u")]
    assert identity_links({"previousId": "p", "userId": "u"}) == [("p", "u")]
    assert identity_links({"anonymousId": "a"}) == []
    assert identity_links({"userId": "u", "anonymousId": "u"}) == []
    assert identity_links({"userId": {"bad": 1}, "anonymousId": "a"}) == []


def test_identify_becomes_an_identity_with_lead_attributes() -> None:
    msg = {
        "type": "identify",
        "userId": "u1",
        "timestamp": T,
        "traits": {
            "email": "peter@example.com",
            "firstName": "Peter",
            "address": {"city": "San Francisco", "country": "USA"},
            "company": {"name": "Initech", "employee_count": 120, "industry": "Tech"},
        },
    }
    identity = convert_message(msg)
    assert isinstance(identity, Identity)
    assert (identity.lead_id, identity.kind, identity.timestamp) == ("u1", "identify", WHEN)
    attrs = identity.attributes
    assert attrs["email"] == "peter@example.com"
    assert (attrs["firstName"], attrs["first_name"]) == ("Peter", "Peter")
    assert (attrs["city"], attrs["country"]) == ("San Francisco", "USA")
    assert (attrs["company"], attrs["company_size"], attrs["industry"]) == ("Initech", 120, "Tech")


def test_identify_without_timestamp_is_fine() -> None:
    identity = convert_message({"type": "identify", "userId": "u", "traits": {"plan": "pro"}})
    assert isinstance(identity, Identity) and identity.timestamp is None


def test_group_and_alias() -> None:
    group = {
        "type": "group",
        "userId": "u",
        "groupId": "g1",
        "traits": {"name": "Initech", "industry": "Technology", "employees": 329},
    }
    identity = convert_message(group)
    assert isinstance(identity, Identity) and identity.kind == "group"
    assert identity.attributes == {
        "group_id": "g1",
        "company": "Initech",
        "industry": "Technology",
        "company_size": 329,
        "group": group["traits"],
    }
    assert convert_message({"type": "alias", "userId": "u", "previousId": "p"}) is None


def test_leads_from_identities_merge_in_order() -> None:
    leads = leads_from_identities(
        [
            Identity("u", {"email": "old@x.com", "title": "CTO"}),
            Identity("v", {"email": "v@x.com"}),
            Identity("u", {"email": "new@x.com", "title": None}, kind="group"),
        ]
    )
    assert leads["u"].attributes == {"email": "new@x.com", "title": "CTO"}
    assert leads["v"].attributes == {"email": "v@x.com"}


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        ({"userId": "u", "timestamp": T}, "type: missing (expected one of alias, group"),
        ({"type": "purchase", "userId": "u"}, "type: unknown call type 'purchase'"),
        ({"type": "track", "event": "x", "timestamp": T}, "userId: missing (no userId"),
        ({"type": "track", "event": "x", "userId": "u"}, "timestamp: missing (no timestamp"),
        (
            {"type": "track", "event": "x", "userId": "u", "timestamp": "2015-2-02T00:30:08.276Z"},
            "timestamp: not an ISO 8601 timestamp: '2015-2-02T00:30:08.276Z'",
        ),
        (
            {"type": "track", "event": "x", "userId": "u", "sentAt": "yesterday"},
            "sentAt: not an ISO 8601 timestamp: 'yesterday'",
        ),
        ({"type": "track", "userId": "u", "timestamp": T}, "event: missing event name"),
        ({"type": "track", "event": 5, "userId": "u", "timestamp": T}, "event: expected text"),
        ({"type": "track", "event": "x", "userId": [1], "timestamp": T}, "userId: expected text"),
        (
            {"type": "page", "userId": "u", "timestamp": T, "properties": [1]},
            "properties: expected an object, got list",
        ),
        ({"type": "identify", "userId": "u", "traits": "x"}, "traits: expected an object"),
        (
            {"type": "page"},
            "userId: missing (no userId, user_id or anonymousId); timestamp: missing",
        ),
    ],
)
def test_unreadable_messages_name_the_field(msg: dict[str, Any], reason: str) -> None:
    assert problem(msg).startswith(reason)


@pytest.mark.parametrize(
    ("obj", "segment"),
    [
        ({"type": "track", "event": "x"}, True),
        ({"action": "track", "user_id": "u"}, True),
        ({"userId": "u", "event": "x"}, True),
        ({"batch": []}, True),
        ({"type": "page_viewed", "lead_id": "L"}, False),
        ({"type": "page", "lead_id": "L"}, False),
        ({"id": "e", "type": "email_opened"}, False),
    ],
)
def test_is_segment_message(obj: dict[str, Any], segment: bool) -> None:
    assert is_segment_message(obj) is segment


def test_message_type_of_http_api_bodies() -> None:
    assert message_type({"event": "x", "userId": "u"}) == "track"
    assert message_type({"previousId": "p", "userId": "u"}) == "alias"
    assert message_type({"traits": {}, "userId": "u"}) is None
    assert message_type({"type": "Track"}) == "track"


_VARIANTS: list[dict[str, Any]] = [
    {"type": "track", "event": "Email Opened", "userId": "u", "timestamp": T},
    {"type": "track", "event": "Email Opened", "userId": 42, "timestamp": T, "messageId": "m"},
    {"type": "track", "event": "x", "userId": "", "user_id": "v", "timestamp": T},
    {"type": "track", "event": "x", "anonymousId": "a1", "timestamp": T},
    {"type": "track", "event": "x", "anonymous_id": "a1", "timestamp": T},
    {"type": "track", "event": "x", "anonymousId": "a2", "timestamp": "", "sentAt": T},
    {"type": "track", "event": "x", "userId": "u", "timestamp": T, "message_id": "m2"},
    {"type": "track", "event": "x", "userId": "u", "timestamp": T, "messageId": ""},
    {"type": "track", "event": "x", "userId": "u", "timestamp": T, "properties": None},
    {
        "type": "track",
        "event": "x",
        "userId": "u",
        "timestamp": T,
        "properties": {"campaign_id": 1},
    },
    {"type": "page", "userId": "u", "timestamp": T, "name": "Home", "category": "Docs"},
    {"type": "page", "userId": "u", "timestamp": "2015-02-23T22:28:55+01:00"},
    {"type": "page", "userId": "u", "timestamp": "2015-02-23 22:28"},
    {"type": "screen", "anonymousId": "a1", "timestamp": T, "properties": {"x": 1}},
]


@pytest.mark.parametrize("msg", _VARIANTS)
def test_fast_path_agrees_with_checked_path(msg: dict[str, Any]) -> None:
    links = {"a1": "u1"}
    assert convert_message(msg, links) == checked_message(msg, links)
