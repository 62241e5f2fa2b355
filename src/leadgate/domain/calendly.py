"""Calendly webhooks: the signature, and bookings as identify + track.

- ``invitee.created`` -> identify (email, name) + ``meeting_booked`` (start and end
  time, the event type as ``meeting_type``), id ``calendly:<invitee uri>:created``;
  the invitee's answers to the booking questions are text they wrote to us, so they
  are also a ``message_received`` (channel ``calendly``) that the model's spam and
  job-seeker rules read;
- ``invitee.canceled`` -> ``meeting_canceled``: there is no canonical type for it, so
  it is recorded as a custom event that scores nothing unless a model names it;
- other events (routing forms carry no email) are read and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from leadgate.domain.inbound import (
    Conversion,
    InvalidPayload,
    Problem,
    SignatureError,
    Who,
    identify,
    mapping,
    normalised_email,
    text,
    timestamp_text,
    track,
)
from leadgate.domain.rows import stable_id

SIGNATURE_HEADER = "Calendly-Webhook-Signature"
TOLERANCE_SECONDS = 180  # Calendly's own examples refuse signatures older than 3 minutes
BOOKED_EVENT = "meeting_booked"
CANCELED_EVENT = "meeting_canceled"
ANSWERS_EVENT = "message_received"
_UTM = ("utm_campaign", "utm_source", "utm_medium", "utm_content", "utm_term")


def signature(key: str, timestamp: str, body: bytes) -> str:
    """hex(HMAC-SHA256(signing key, t + "." + body))."""
    return hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def parse_signature_header(header: str) -> tuple[str, list[str]]:
    """(t, [v1, ...]) from ``t=1492774577,v1=5257a8...``; SignatureError when malformed."""
    timestamp = None
    signatures = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            timestamp = value.strip()
        elif name == "v1":
            signatures.append(value.strip())
    if not timestamp or not timestamp.isdigit():
        raise SignatureError(f"{SIGNATURE_HEADER}: no t=<unix seconds> in {header!r}")
    if not signatures:
        raise SignatureError(f"{SIGNATURE_HEADER}: no v1=<signature> in {header!r}")
    return timestamp, signatures


def verify(key: str, header: str | None, body: bytes, now_s: int) -> None:
    """Raise SignatureError unless a v1 signature matches and ``t`` is within 3 minutes."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp, given = parse_signature_header(header)
    age = now_s - int(timestamp)
    if abs(age) > TOLERANCE_SECONDS:
        when = "older" if age > 0 else "further in the future"
        raise SignatureError(f"{SIGNATURE_HEADER}: t is {when} than 3 minutes ({age} s)")
    expected = signature(key, timestamp, body).encode()
    if not any(hmac.compare_digest(expected, s.encode()) for s in given):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the request")


def _answers(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = payload.get("questions_and_answers")
    if not isinstance(items, list):
        return []
    return [
        {"question": qa.get("question"), "answer": qa.get("answer")}
        for qa in items
        if isinstance(qa, dict) and isinstance(qa.get("answer"), str) and qa["answer"].strip()
    ]


def _meeting(payload: Mapping[str, Any]) -> dict[str, Any]:
    """start_time, end_time, meeting_type and event_type from ``scheduled_event``."""
    scheduled = mapping(payload.get("scheduled_event"), "payload.scheduled_event")
    out = {"source": "calendly"}
    for name in ("start_time", "end_time"):
        value = timestamp_text(scheduled.get(name), f"payload.scheduled_event.{name}")
        if value is not None:
            out[name] = value
    for source, name in (("name", "meeting_type"), ("event_type", "event_type")):
        value = scheduled.get(source)
        if isinstance(value, str) and value:
            out[name] = value
    return out


def _who(payload: Mapping[str, Any]) -> Who:
    email = normalised_email(payload.get("email"), "payload.email")
    if email is None:
        raise InvalidPayload("payload.email: missing (the invitee's email address)")
    return Who(email=email)


def _invitee_id(payload: Mapping[str, Any]) -> str:
    uri = text(payload.get("uri"), "payload.uri")
    return "calendly:" + (uri or stable_id(dict(payload))[2:])


def booked(doc: Mapping[str, Any], payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """invitee.created: who booked, the booking, and their answers as a message."""
    who = _who(payload)
    when = timestamp_text(payload.get("created_at") or doc.get("created_at"), "payload.created_at")
    traits = {
        name: payload.get(name)
        for name in ("name", "first_name", "last_name", "timezone")
        if isinstance(payload.get(name), str)
    }
    properties = _meeting(payload)
    tracking = payload.get("tracking")
    if isinstance(tracking, dict):
        properties.update({k: tracking[k] for k in _UTM if tracking.get(k)})
    answers = _answers(payload)
    if answers:
        properties["answers"] = answers
    invitee = _invitee_id(payload)
    messages = [m for m in [identify(who, traits, when)] if m is not None]
    messages.append(track(who, f"{invitee}:created", BOOKED_EVENT, properties, when))
    if answers:
        body = "\n".join(f"{a['question']}: {a['answer']}" for a in answers)
        message = {"body": body, "channel": "calendly", "subject": properties.get("meeting_type")}
        messages.append(track(who, f"{invitee}:answers", ANSWERS_EVENT, message, when))
    return messages


def canceled(doc: Mapping[str, Any], payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """invitee.canceled: a custom ``meeting_canceled`` event with the reason given."""
    who = _who(payload)
    when = timestamp_text(doc.get("created_at"), "created_at")
    properties = _meeting(payload)
    cancellation = payload.get("cancellation")
    if isinstance(cancellation, dict):
        for name in ("reason", "canceled_by", "canceler_type"):
            if cancellation.get(name) is not None:
                properties[name] = cancellation[name]
    if payload.get("rescheduled") is True:  # Calendly cancels the old invitee on a reschedule
        properties["rescheduled"] = True
    event_id = f"{_invitee_id(payload)}:canceled"
    return [track(who, event_id, CANCELED_EVENT, properties, when)]


def webhook_messages(doc: object) -> Conversion:
    """A Calendly webhook body as messages (one inbound item); InvalidPayload naming the
    field when it cannot be read."""
    if not isinstance(doc, dict):
        raise InvalidPayload(f"body: expected a JSON object, got {type(doc).__name__}")
    kind = text(doc.get("event"), "event")
    out = Conversion(items=1)
    if kind not in ("invitee.created", "invitee.canceled"):
        reason = f"event: {kind!r} is not taken in (only invitee.created and invitee.canceled)"
        out.ignored.append(Problem(0, reason))
        return out
    payload = mapping(doc.get("payload"), "payload")
    if not payload:
        raise InvalidPayload("payload: missing (the invitee)")
    convert = booked if kind == "invitee.created" else canceled
    out.add(0, *convert(doc, payload))
    return out
