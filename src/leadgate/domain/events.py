"""Events and leads: the plain data every other part of leadgate works on."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Canonical event types and the properties rules may name for each.
# Dotted paths below a listed property (``fields.company``) are always allowed.
CANONICAL_EVENTS: dict[str, frozenset[str]] = {
    "page_viewed": frozenset(
        {"url", "path", "title", "referrer", "search", "name", "category"}
        | {"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"}
    ),
    "asset_downloaded": frozenset({"asset", "asset_type", "title", "url"}),
    "email_sent": frozenset({"campaign", "email_id", "subject"}),
    "email_delivered": frozenset({"campaign", "email_id", "subject"}),
    "email_opened": frozenset({"campaign", "email_id", "subject"}),
    "email_clicked": frozenset({"campaign", "email_id", "subject", "link_url"}),
    "email_bounced": frozenset({"campaign", "email_id", "subject"}),
    "email_marked_spam": frozenset({"campaign", "email_id", "subject"}),
    "email_unsubscribed": frozenset({"campaign", "email_id", "subject"}),
    "email_replied": frozenset({"campaign", "email_id", "subject", "body"}),
    "form_submitted": frozenset({"form", "fields", "message", "url", "path"}),
    "quote_requested": frozenset({"message", "service", "budget", "form"}),
    "meeting_booked": frozenset({"start_time", "end_time", "meeting_type", "source"}),
    "message_received": frozenset({"body", "channel", "subject"}),
    "webinar_registered": frozenset({"webinar"}),
    "webinar_attended": frozenset({"webinar", "duration_minutes"}),
}

# Source event names (lower-cased, spaces and dashes as underscores) -> canonical type.
EVENT_ALIASES: dict[str, str] = {
    "page": "page_viewed",
    "pageview": "page_viewed",
    "page_view": "page_viewed",
    "viewed_page": "page_viewed",
    "page_visited": "page_viewed",
    "asset_downloaded": "asset_downloaded",
    "file_downloaded": "asset_downloaded",
    "guide_downloaded": "asset_downloaded",
    "whitepaper_downloaded": "asset_downloaded",
    "case_study_downloaded": "asset_downloaded",
    "email_sent": "email_sent",
    "email_delivered": "email_delivered",
    "email_opened": "email_opened",
    "email_link_clicked": "email_clicked",
    "email_clicked": "email_clicked",
    "email_bounced": "email_bounced",
    "email_marked_as_spam": "email_marked_spam",
    "email_marked_spam": "email_marked_spam",
    "unsubscribed": "email_unsubscribed",
    "email_unsubscribed": "email_unsubscribed",
    "email_replied": "email_replied",
    "form_submitted": "form_submitted",
    "form_submit": "form_submitted",
    "quote_requested": "quote_requested",
    "quote_request": "quote_requested",
    "meeting_booked": "meeting_booked",
    "call_booked": "meeting_booked",
    "demo_requested": "meeting_booked",
    "invitee_created": "meeting_booked",
    "message_received": "message_received",
    "chat_message": "message_received",
    "webinar_registered": "webinar_registered",
    "webinar_attended": "webinar_attended",
}

_NAME_SEP = re.compile(r"[\s\-.]+")

# Property names used across sources for the same thing -> canonical property.
PROPERTY_ALIASES: dict[str, str] = {
    "campaign_id": "campaign",
    "campaign_name": "campaign",
    "email_subject": "subject",
}


def canonical_event_type(name: str) -> str:
    """Map a source event name ("Email Link Clicked") to its canonical type.

    Unknown names are kept as custom events, normalised the same way, so rules
    can still match them.
    """
    key = _NAME_SEP.sub("_", name.strip().lower())
    return EVENT_ALIASES.get(key, key)


def to_utc(value: datetime) -> datetime:
    """An aware UTC datetime; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


_ISO_SHAPE = re.compile(
    r"^\d{4}-\d{2}-\d{2}"  # date, two-digit month and day
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?"  # optional time
    r"(?:Z|z|[+-]\d{2}(?::?\d{2})?)?$"  # optional offset
)


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 timestamp to an aware UTC datetime.

    Raises ValueError naming the text when it is not a valid timestamp (for
    example ``2015-2-02T00:30:08Z``, a one-digit month).
    """
    raw = text.strip()
    if not _ISO_SHAPE.match(raw):
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}")
    fixed = raw[:-1] + "+00:00" if raw[-1] in "Zz" else raw
    # Python accepts at most 6 fractional digits.
    fixed = re.sub(r"([.,])(\d{6})\d+", r"\1\2", fixed)
    try:
        return to_utc(datetime.fromisoformat(fixed))
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid timestamp: {text!r} ({exc})") from None


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a lead did. ``id`` is the source's message id (idempotency key)."""

    id: str
    lead_id: str
    type: str
    timestamp: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)

    def sort_key(self) -> tuple[datetime, str]:
        return (self.timestamp, self.id)


@dataclass(frozen=True, slots=True)
class Lead:
    """A person we may sell to: an id and attributes (title, company, email, ...)."""

    id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


def lookup(data: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted path (``fields.company``), or None when absent."""
    return lookup_path(data, path.split("."))


def lookup_path(data: Mapping[str, Any], parts: Sequence[str]) -> Any:
    """Value at a path given as its parts (``("fields", "company")``), or None."""
    value: Any = data
    for part in parts:
        if not (type(value) is dict or isinstance(value, Mapping)) or part not in value:
            return None
        value = value[part]
    return value


def email_domain(email: object) -> str | None:
    """The lower-cased domain of an email address, or None (also for non-text values)."""
    if not isinstance(email, str) or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower() or None


# Attributes every lead may carry; models may declare more under ``attributes:``.
KNOWN_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "email",
        "email_domain",
        "first_name",
        "last_name",
        "name",
        "title",
        "company",
        "company_size",
        "industry",
        "country",
        "city",
        "phone",
        "website",
        "source",
        "do_not_contact",
        "customer",
    }
)


def derived_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes with derived values filled in (``email_domain`` from ``email``)."""
    out = dict(attributes)
    if not out.get("email_domain"):
        out["email_domain"] = email_domain(out.get("email"))
    return out
