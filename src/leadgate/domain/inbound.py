"""Inbound payloads (native events, forms, HubSpot, Calendly) as Segment-shaped messages.

Every source is converted here, without I/O, into the identify and track
messages the Segment ingest path already understands, so there is one way in:
identity resolution, idempotency by message id and re-scoring are never
duplicated per source.

A ``Conversion`` keeps, for every message, the index of the inbound item it came
from, so the ingest use case's errors are reported against what the caller sent.

Who a lead is: a source's own user id becomes the Segment ``userId``; a known
anonymous id stays the ``anonymousId``; when only an email is known the
anonymous id is ``email:<address>``, so the identify's email finds the lead that
already has that address (or starts one) and the track lands on the same lead.

Native events (``POST /api/events``) need an ``id``: it is the idempotency key,
as Segment's ``messageId`` is, and a retry with the same id adds nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from leadgate.domain.events import parse_timestamp

EMAIL_ID_PREFIX = "email:"


@dataclass(frozen=True, slots=True)
class Problem:
    """An inbound item that was not taken in: its position and why (naming the field)."""

    index: int
    reason: str


@dataclass
class Conversion:
    """Messages for the ingest use case, with the inbound item each came from.

    ``problems`` are items that cannot be read; ``ignored`` are items that were
    read but carry nothing leadgate records (a deal change, an unknown webhook).
    """

    messages: list[dict[str, Any]] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored: list[Problem] = field(default_factory=list)
    items: int = 0

    def add(self, index: int, *messages: dict[str, Any]) -> None:
        for message in messages:
            self.messages.append(message)
            self.origins.append(index)

    def extend(self, other: Conversion) -> None:
        """Append another conversion's messages and problems, indexes shifted past ours."""
        shift = self.items
        self.messages += other.messages
        self.origins += [i + shift for i in other.origins]
        self.problems += [Problem(p.index + shift, p.reason) for p in other.problems]
        self.ignored += [Problem(p.index + shift, p.reason) for p in other.ignored]
        self.items += other.items


class InvalidPayload(ValueError):
    """A payload field that cannot be read; ``reason`` names the field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignatureError(ValueError):
    """A webhook whose signature does not prove it came from its sender; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalised_email(value: object, name: str = "email") -> str | None:
    """A trimmed, lower-cased address; None when absent; InvalidPayload when not an email."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidPayload(f"{name}: expected text, got {type(value).__name__}")
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or " " in email:
        raise InvalidPayload(f"{name}: not an email address: {value!r}")
    return email


def email_anonymous_id(email: str) -> str:
    """The anonymous id a message gets when only its email is known."""
    return EMAIL_ID_PREFIX + email


def text(value: object, name: str) -> str | None:
    """A non-empty text (numbers are written as text); None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidPayload(f"{name}: expected text, got {type(value).__name__}")
    out = str(value).strip()
    return out or None


def timestamp_text(value: object, name: str) -> str | None:
    """An ISO 8601 timestamp, checked here so a bad one is reported before anything is stored."""
    raw = text(value, name)
    if raw is None:
        return None
    try:
        return parse_timestamp(raw).isoformat()
    except ValueError as exc:
        raise InvalidPayload(f"{name}: {exc}") from None


def millis_timestamp(value: object, name: str) -> str | None:
    """Epoch milliseconds (HubSpot's ``occurredAt``) or ISO 8601 text, as ISO 8601."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            raise InvalidPayload(f"{name}: not a time in epoch milliseconds: {value}") from None
    return timestamp_text(value, name)


def mapping(value: object, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidPayload(f"{name}: expected an object, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Who:
    """The ids a message carries: Segment's userId and anonymousId, and an email for traits."""

    user_id: str | None = None
    anonymous_id: str | None = None
    email: str | None = None

    def ids(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.user_id is not None:
            out["userId"] = self.user_id
        anonymous = self.anonymous_id
        if anonymous is None and self.user_id is None and self.email is not None:
            anonymous = email_anonymous_id(self.email)
        if anonymous is not None:
            out["anonymousId"] = anonymous
        return out

    def known(self) -> bool:
        return any(v is not None for v in (self.user_id, self.anonymous_id, self.email))


def identify(who: Who, traits: Mapping[str, Any], when: str | None) -> dict[str, Any] | None:
    """An identify message with the email among the traits; None when there is nothing to say."""
    all_traits = {k: v for k, v in traits.items() if v is not None and v != ""}
    if who.email is not None:
        all_traits["email"] = who.email
    if not all_traits:
        return None
    message: dict[str, Any] = {"type": "identify", **who.ids(), "traits": all_traits}
    if when is not None:
        message["timestamp"] = when
    return message


def track(
    who: Who, message_id: str, event: str, properties: Mapping[str, Any], when: str | None
) -> dict[str, Any]:
    """A track message; without ``when`` the ingest use case dates it when received."""
    message: dict[str, Any] = {
        "type": "track",
        "messageId": message_id,
        **who.ids(),
        "event": event,
        "properties": dict(properties),
    }
    if when is not None:
        message["timestamp"] = when
    return message


def native_items(doc: object) -> tuple[list[object], bool]:
    """The events of a native body: one object, a list, or ``{"events": [...]}``; and
    whether the body was a single event (answered 422 rather than 200 when invalid)."""
    if isinstance(doc, list):
        return doc, False
    if isinstance(doc, dict) and "events" in doc:
        events = doc["events"]
        if not isinstance(events, list):
            raise InvalidPayload("events: expected a list of event objects")
        return events, False
    if isinstance(doc, dict):
        return [doc], True
    raise InvalidPayload('body: expected an event object, a list of them or {"events": [...]}')


# The fields of a native event; anything else is refused rather than silently dropped.
NATIVE_FIELDS = (
    "id", "type", "timestamp", "lead_id", "anonymous_id", "email", "properties", "attributes"
)  # fmt: skip


def native_event(item: object) -> list[dict[str, Any]]:
    """One native event as messages: an identify when it brings an email or attributes,
    then the track. Raises InvalidPayload naming every field that is wrong."""
    if not isinstance(item, dict):
        raise InvalidPayload(f"expected an event object, got {type(item).__name__}")
    problems: dict[str, str] = {}

    def read(reader: Any, name: str) -> Any:
        try:
            return reader(item.get(name), name)
        except InvalidPayload as exc:
            problems[name] = exc.reason
            return None

    for name in item:
        if name not in NATIVE_FIELDS:
            close = difflib.get_close_matches(str(name), NATIVE_FIELDS, n=1, cutoff=0.7)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems[str(name)] = (
                f"{name}: unknown field{hint} (known: {', '.join(NATIVE_FIELDS)}; "
                "put anything else in properties or attributes)"
            )
    event_id = read(text, "id")
    lead_id = read(text, "lead_id")
    anonymous_id = read(text, "anonymous_id")
    email = read(normalised_email, "email")
    event_type = read(text, "type")
    when = read(timestamp_text, "timestamp")
    properties = read(mapping, "properties")
    attributes = read(mapping, "attributes")
    who = Who(lead_id, anonymous_id, email)
    if event_id is None:
        problems.setdefault("id", "id: missing (a unique id per event; a retry adds nothing)")
    if event_type is None:
        problems.setdefault("type", "type: missing (the event type, e.g. form_submitted)")
    if not who.known() and problems.keys().isdisjoint({"lead_id", "email", "anonymous_id"}):
        problems["lead_id"] = "lead_id: missing (give lead_id, email or anonymous_id)"
    if problems:
        raise InvalidPayload("; ".join(problems.values()))
    messages = []
    introduction = identify(who, attributes or {}, when)
    if introduction is not None:
        messages.append(introduction)
    messages.append(track(who, event_id, event_type, properties or {}, when))
    return messages


def native_events(items: list[object], refused: Mapping[int, str] | None = None) -> Conversion:
    """Native events as messages; each unreadable one is a Problem with its index, as is
    each the caller ``refused`` (index -> reason, e.g. over the size limit)."""
    out = Conversion(items=len(items))
    for index, item in enumerate(items):
        if refused and index in refused:
            out.problems.append(Problem(index, refused[index]))
            continue
        try:
            out.add(index, *native_event(item))
        except InvalidPayload as exc:
            out.problems.append(Problem(index, exc.reason))
    return out
