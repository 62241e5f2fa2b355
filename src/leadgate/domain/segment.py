"""Segment-spec messages (track, page, screen, identify, group, alias) -> events and identities.

Pure functions over one decoded message. The email spec examples write
``user_id``/``action`` instead of ``userId``/``type``; both spellings are read.

Lead ids: a message's ``userId`` is its lead id. A message with only an
``anonymousId`` takes the userId that anonymous id is linked to (``links``,
collected by the reader from every message carrying both ids and from alias
calls), else it stays its own lead, ``anon:<anonymousId>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadgate.domain.events import PROPERTY_ALIASES, Event, Lead
from leadgate.domain.mapping import DEFAULT_MAPPING, InvalidRow, SourceMapping
from leadgate.domain.rows import canonical_properties, read_timestamp, stable_id

SEGMENT_TYPES = frozenset({"track", "page", "screen", "identify", "group", "alias"})
_EVENT_KINDS = frozenset({"track", "page", "screen"})
ANONYMOUS_PREFIX = "anon:"
_TIME_FIELDS = (
    "timestamp",
    "originalTimestamp",
    "original_timestamp",
    "sentAt",
    "sent_at",
    "receivedAt",
    "received_at",
)
_PAGE_CONTEXT = ("url", "path", "title", "referrer", "search")
_TRAIT_ALIASES = (("firstName", "first_name"), ("lastName", "last_name"))
_ADDRESS = (
    ("city", "city"),
    ("country", "country"),
    ("state", "state"),
    ("postalCode", "postal_code"),
)


@dataclass(frozen=True, slots=True)
class Identity:
    """What an identify (``kind="identify"``) or group call says about a lead.

    ``attributes`` are the traits with the usual lead attribute names added
    (first_name, city, company, company_size, ...); originals are kept.
    """

    lead_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None
    kind: str = "identify"


def _first(msg: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = msg.get(name)
        if value is not None and value != "":
            return value
    return None


def _ident(msg: Mapping[str, Any], *names: str) -> str | None:
    value = _first(msg, *names)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRow(f"{names[0]}: expected text, got {type(value).__name__}")
    return str(value)


def message_type(msg: Mapping[str, Any]) -> str | None:
    """The call type, lower-cased; a typeless message with an ``event`` is a track call
    and one with a ``previousId`` an alias call (HTTP API bodies omit the type)."""
    value = _first(msg, "type", "action")
    if isinstance(value, str):
        return value.strip().lower()
    if value is None and "event" in msg:
        return "track"
    if value is None and ("previousId" in msg or "previous_id" in msg):
        return "alias"
    return None


def is_segment_message(obj: Mapping[str, Any]) -> bool:
    """Whether a decoded record looks like a Segment message rather than a native event."""
    if "lead_id" in obj:
        return False
    if isinstance(obj.get("batch"), list):
        return True
    if obj.get("type") in SEGMENT_TYPES:
        return True
    if obj.get("action") in SEGMENT_TYPES and "user_id" in obj:
        return True
    return "userId" in obj or "anonymousId" in obj


def identity_links(msg: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(anonymous id, user id) pairs a message establishes; an alias links its previousId."""
    try:
        user = _ident(msg, "userId", "user_id")
        if user is None:
            return []
        links = []
        anon = _ident(msg, "anonymousId", "anonymous_id")
        if anon is not None and anon != user:
            links.append((anon, user))
        previous = _ident(msg, "previousId", "previous_id")
        if previous is not None and previous != user and message_type(msg) == "alias":
            links.append((previous, user))
        return links
    except InvalidRow:
        return []


def resolve_lead_id(msg: Mapping[str, Any], links: Mapping[str, str]) -> str:
    """userId, else the user linked to the anonymousId, else ``anon:<anonymousId>``."""
    user = _ident(msg, "userId", "user_id")
    if user is not None:
        return user
    anon = _ident(msg, "anonymousId", "anonymous_id")
    if anon is None:
        raise InvalidRow("userId: missing (no userId, user_id or anonymousId)")
    return links.get(anon) or ANONYMOUS_PREFIX + anon


def message_time(msg: Mapping[str, Any]) -> datetime | None:
    """timestamp, else originalTimestamp, else sentAt, else receivedAt; None when absent."""
    for name in _TIME_FIELDS:
        value = msg.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise InvalidRow(f"{name}: expected an ISO 8601 timestamp, got {value!r}")
        try:
            return read_timestamp(value)
        except ValueError as exc:
            raise InvalidRow(f"{name}: {exc}") from None
    return None


def _object(msg: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = msg.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRow(f"{name}: expected an object, got {type(value).__name__}")
    return value


def convert_message(
    msg: Mapping[str, Any],
    links: Mapping[str, str] | None = None,
    mapping: SourceMapping = DEFAULT_MAPPING,
) -> Event | Identity | None:
    """One Segment message as an Event (track, page, screen) or an Identity (identify,
    group); None for alias calls, which only link ids. Raises InvalidRow naming the
    field when the message cannot be read."""
    kind = msg.get("type")
    if (
        type(kind) is str
        and kind in _EVENT_KINDS
        and "user_id" not in msg
        and "message_id" not in msg
    ):
        event = _plain_event(msg, kind, links, mapping)
        if event is not None:
            return event
    return checked_message(msg, links, mapping)


def _plain_event(
    msg: Mapping[str, Any], kind: str, links: Mapping[str, str] | None, mapping: SourceMapping
) -> Event | None:
    """The common, well-formed event message, read directly; None when anything is
    unusual, and the message goes through ``checked_message`` instead."""
    get = msg.get
    raw_time, props, lead_id = get("timestamp"), get("properties"), get("userId")
    if type(raw_time) is not str or not (props is None or type(props) is dict):
        return None
    if lead_id is None:
        anon = get("anonymousId")
        if anon is None and "anonymous_id" in msg:
            return None
        if type(anon) is not str or not anon:
            return None
        lead_id = (links.get(anon) if links else None) or ANONYMOUS_PREFIX + anon
    elif type(lead_id) is not str or not lead_id:
        return None
    try:
        when = read_timestamp(raw_time)
    except ValueError:
        return None
    event_id = get("messageId")
    if event_id is None:
        event_id = stable_id(msg)
    elif type(event_id) is not str or not event_id:
        return None
    if kind != "track":
        return _view_event(msg, kind, event_id, lead_id, when, props or {})
    name = get("event")
    if type(name) is not str or not name.strip():
        return None
    if props and not props.keys().isdisjoint(PROPERTY_ALIASES):
        props = canonical_properties(props)
    return Event(event_id, lead_id, mapping.event_type(name), when, props or {})


def _view_event(
    msg: Mapping[str, Any],
    kind: str,
    event_id: str,
    lead_id: str,
    when: datetime,
    props: Mapping[str, Any],
) -> Event:
    """A page or screen call: properties plus its name, category and context.page."""
    out = dict(props)
    for name in ("name", "category"):
        if msg.get(name) is not None:
            out.setdefault(name, msg[name])
    page = _object(msg, "context").get("page")
    if isinstance(page, dict):
        for name in _PAGE_CONTEXT:
            if page.get(name) not in (None, ""):
                out.setdefault(name, page[name])
    event_type = "page_viewed" if kind == "page" else "screen_viewed"
    return Event(event_id, lead_id, event_type, when, canonical_properties(out))


def checked_message(
    msg: Mapping[str, Any],
    links: Mapping[str, str] | None = None,
    mapping: SourceMapping = DEFAULT_MAPPING,
) -> Event | Identity | None:
    """convert_message, checking every field (both spellings, every timestamp field)."""
    problems: list[str] = []
    kind = message_type(msg)
    if kind is None or kind not in SEGMENT_TYPES:
        found = "missing" if kind is None else f"unknown call type {kind!r}"
        problems.append(f"type: {found} (expected one of {', '.join(sorted(SEGMENT_TYPES))})")
    lead_id: str | None = None
    try:
        lead_id = resolve_lead_id(msg, links or {})
    except InvalidRow as exc:
        problems.append(exc.reason)
    when: datetime | None = None
    try:
        when = message_time(msg)
    except InvalidRow as exc:
        problems.append(exc.reason)
    else:
        if when is None and kind in _EVENT_KINDS:
            problems.append(
                "timestamp: missing (no timestamp, originalTimestamp, sentAt or receivedAt)"
            )
    if kind == "track" and not isinstance(msg.get("event"), str | None):
        problems.append("event: expected text")
    elif kind == "track" and not str(msg.get("event") or "").strip():
        problems.append("event: missing event name")
    if problems:
        raise InvalidRow("; ".join(problems))
    assert lead_id is not None and kind is not None
    if kind == "alias":
        return None
    if kind == "identify":
        return Identity(lead_id, trait_attributes(identify_traits(msg)), when, "identify")
    if kind == "group":
        return Identity(lead_id, group_attributes(msg), when, "group")
    assert when is not None
    props = _object(msg, "properties")
    event_id = _ident(msg, "messageId", "message_id") or stable_id(msg)
    if kind != "track":
        return _view_event(msg, kind, event_id, lead_id, when, props)
    event_type = mapping.event_type(str(msg["event"]))
    return Event(event_id, lead_id, event_type, when, canonical_properties(props))


def identify_traits(msg: Mapping[str, Any]) -> dict[str, Any]:
    """An identify call's traits: ``traits``, over ``context.traits`` (where some
    libraries, RudderStack's among them, put an identify's traits)."""
    context = msg.get("context")
    inner = context.get("traits") if isinstance(context, dict) else None
    base = dict(inner) if isinstance(inner, dict) else {}
    return {**base, **_object(msg, "traits")}


def trait_attributes(traits: Mapping[str, Any]) -> dict[str, Any]:
    """Identify traits as lead attributes: originals plus first_name, city, company, ..."""
    out = dict(traits)
    for source, name in _TRAIT_ALIASES:
        if traits.get(source) is not None:
            out.setdefault(name, traits[source])
    address = traits.get("address")
    if isinstance(address, dict):
        for source, name in _ADDRESS:
            if address.get(source) is not None:
                out.setdefault(name, address[source])
    company = traits.get("company")
    if isinstance(company, dict):
        out["company"] = company.get("name")
        out["company_traits"] = company
        if company.get("industry") is not None:
            out.setdefault("industry", company["industry"])
        if company.get("employee_count") is not None:
            out.setdefault("company_size", company["employee_count"])
    return out


def group_attributes(msg: Mapping[str, Any]) -> dict[str, Any]:
    """A group call's account traits as lead attributes (company, industry, company_size)."""
    traits = _object(msg, "traits")
    size = _first(traits, "employees", "employee_count")
    out = {
        "group_id": _first(msg, "groupId", "group_id"),
        "company": traits.get("name"),
        "industry": traits.get("industry"),
        "company_size": size,
        "website": traits.get("website"),
        "group": traits,
    }
    return {k: v for k, v in out.items() if v is not None}


def leads_from_identities(identities: Iterable[Identity]) -> dict[str, Lead]:
    """Leads built from identify/group calls; for each attribute the last non-null
    value in the order given wins."""
    merged: dict[str, dict[str, Any]] = {}
    for identity in identities:
        attrs = merged.setdefault(identity.lead_id, {})
        attrs.update((k, v) for k, v in identity.attributes.items() if v is not None)
    return {lead_id: Lead(lead_id, attrs) for lead_id, attrs in merged.items()}
