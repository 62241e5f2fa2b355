"""HubSpot webhooks: the v3 request signature, and contact events as identify + track.

HubSpot posts a JSON list of events (``subscriptionType``, ``objectId``,
``eventId``, ``portalId``, ``occurredAt``, and for property changes
``propertyName``/``propertyValue``). A contact is known by the anonymous id
``hubspot:<portalId>:<objectId>`` until its email arrives: the identify that
carries the email then joins it to the lead with that address, as an anonymous
visitor is joined when they identify.

- ``contact.creation`` -> identify (HubSpot ids) + track ``crm_contact_created``
  (a non-scoring event, id ``hubspot:<portalId>:<eventId>``, so a retry adds nothing);
- ``contact.propertyChange`` -> identify with the property as a lead attribute
  (``jobtitle`` -> ``title``, ...; others as ``hubspot_<name>``);
- other subscriptions (deletions, companies, deals) are read and ignored.
"""

from __future__ import annotations

import base64
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
    millis_timestamp,
    normalised_email,
    text,
    track,
)

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
MAX_AGE_MS = 5 * 60 * 1000
CREATED_EVENT = "crm_contact_created"

# Characters HubSpot decodes in the request URI before signing it.
_URI_DECODES = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}

# HubSpot contact property -> lead attribute.
PROPERTY_ATTRIBUTES: Mapping[str, str] = {
    "email": "email",
    "firstname": "first_name",
    "lastname": "last_name",
    "jobtitle": "title",
    "company": "company",
    "phone": "phone",
    "mobilephone": "mobile_phone",
    "website": "website",
    "country": "country",
    "city": "city",
    "industry": "industry",
    "numemployees": "company_size",
}


def signed_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the listed percent-escapes decoded (either case)."""
    out = []
    i = 0
    while i < len(uri):
        escape = uri[i : i + 3].upper()
        if uri[i] == "%" and escape in _URI_DECODES:
            out.append(_URI_DECODES[escape])
            i += 3
        else:
            out.append(uri[i])
            i += 1
    return "".join(out)


def v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(client secret, method + uri + body + timestamp))."""
    source = method.upper().encode() + signed_uri(uri).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_v3(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now_ms: int,
) -> None:
    """Raise SignatureError unless the v3 signature matches and the request is at most
    five minutes old (or early: a clock that far ahead is refused the same way)."""
    if not signature:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    if not timestamp:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} header")
    if not timestamp.isdigit():
        raise SignatureError(f"{TIMESTAMP_HEADER}: expected epoch milliseconds, got {timestamp!r}")
    age = now_ms - int(timestamp)
    if abs(age) > MAX_AGE_MS:
        when = "older" if age > 0 else "further in the future"
        raise SignatureError(f"{TIMESTAMP_HEADER} is {when} than 5 minutes ({age // 1000} s)")
    expected = v3_signature(secret, method, uri, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the request")


def contact_id(portal: str, object_id: str) -> str:
    return f"hubspot:{portal}:{object_id}"


def property_traits(name: str, value: object) -> dict[str, Any]:
    """A changed HubSpot property as lead attributes (numeric sizes as numbers)."""
    attribute = PROPERTY_ATTRIBUTES.get(name, f"hubspot_{name}")
    if attribute == "company_size" and isinstance(value, str) and value.isdigit():
        return {attribute: int(value)}
    return {attribute: value}


def webhook_event(item: object) -> list[dict[str, Any]] | str:
    """One HubSpot event as messages, or the reason it is ignored. Raises
    InvalidPayload naming the field when the event cannot be read."""
    if not isinstance(item, dict):
        raise InvalidPayload(f"expected an event object, got {type(item).__name__}")
    kind = text(item.get("subscriptionType"), "subscriptionType")
    if kind is None:
        raise InvalidPayload("subscriptionType: missing (e.g. contact.creation)")
    if kind not in ("contact.creation", "contact.propertyChange"):
        return f"{kind}: not taken in (only contact.creation and contact.propertyChange are)"
    problems = []
    fields = {}
    for name in ("objectId", "portalId", "eventId"):
        try:
            fields[name] = text(item.get(name), name)
        except InvalidPayload as exc:
            problems.append(exc.reason)
            continue
        if fields[name] is None:
            problems.append(f"{name}: missing")
    when = None
    try:
        when = millis_timestamp(item.get("occurredAt"), "occurredAt")
    except InvalidPayload as exc:
        problems.append(exc.reason)
    if problems:
        raise InvalidPayload("; ".join(problems))
    hubspot_id = contact_id(str(fields["portalId"]), str(fields["objectId"]))
    if kind == "contact.creation":
        return _created(hubspot_id, fields, item, when)
    return _changed(hubspot_id, item, when)


def _created(
    hubspot_id: str, fields: Mapping[str, str | None], item: Mapping[str, Any], when: str | None
) -> list[dict[str, Any]]:
    who = Who(anonymous_id=hubspot_id)
    traits = {"hubspot_contact_id": fields["objectId"], "hubspot_portal_id": fields["portalId"]}
    introduction = identify(who, traits, when)
    assert introduction is not None
    properties = {
        "source": "hubspot",
        "object_id": fields["objectId"],
        "change_source": item.get("changeSource"),
    }
    event_id = f"hubspot:{fields['portalId']}:{fields['eventId']}"
    return [introduction, track(who, event_id, CREATED_EVENT, properties, when)]


def _changed(hubspot_id: str, item: Mapping[str, Any], when: str | None) -> list[dict[str, Any]]:
    name = text(item.get("propertyName"), "propertyName")
    if name is None:
        raise InvalidPayload("propertyName: missing in a contact.propertyChange")
    value = item.get("propertyValue")
    if name == "email":
        who = Who(anonymous_id=hubspot_id, email=normalised_email(value, "propertyValue"))
        introduction = identify(who, {}, when)
    else:
        introduction = identify(Who(anonymous_id=hubspot_id), property_traits(name, value), when)
    return [] if introduction is None else [introduction]


def webhook_events(doc: object) -> Conversion:
    """A HubSpot webhook body (a list of events) as messages; one event that cannot be
    read is a Problem with its index, the others still go in."""
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise InvalidPayload(f"body: expected a list of HubSpot events, got {type(doc).__name__}")
    out = Conversion(items=len(doc))
    for index, item in enumerate(doc):
        try:
            converted = webhook_event(item)
        except InvalidPayload as exc:
            out.problems.append(Problem(index, exc.reason))
            continue
        if isinstance(converted, str):
            out.ignored.append(Problem(index, converted))
        else:
            out.add(index, *converted)
    return out
