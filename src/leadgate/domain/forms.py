"""Form submissions (any website form, or Unbounce's form post) as identify + track.

A submission becomes an identify (email, name, company, title, ... read from the
usual field names) and a ``form_submitted`` event whose ``fields`` hold every
field the visitor sent, so the model sees the honeypot (``fields.website_url``)
and the text they wrote (``message`` and every text field). Fields that describe
the submission rather than the visitor (page url, anonymous id, ...) are kept
out of ``fields``.

Forms carry no message id, so the event id is derived from the form, the ids
and the fields: a resubmission of the same content (a double click, a webhook
retry) is a duplicate. A caller that has its own id sends ``submission_id``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from leadgate.domain.inbound import (
    InvalidPayload,
    Who,
    identify,
    normalised_email,
    text,
    timestamp_text,
    track,
)
from leadgate.domain.rows import stable_id

FORM_EVENT = "form_submitted"
MAX_FORM_ID = 100
_KEY_SEP = re.compile(r"[\s\-.]+")

# Field names (lower-cased, spaces, dashes and dots as underscores) -> lead attribute.
ATTRIBUTE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "email": ("email", "email_address", "e_mail", "your_email", "work_email", "business_email"),
    "first_name": ("first_name", "firstname", "fname", "given_name"),
    "last_name": ("last_name", "lastname", "lname", "surname", "family_name"),
    "name": ("name", "full_name", "fullname", "your_name"),
    "company": ("company", "company_name", "organization", "organisation"),
    "title": ("title", "job_title", "jobtitle", "role", "position"),
    "phone": ("phone", "phone_number", "telephone", "tel", "mobile"),
    "website": ("website", "company_website"),
    "country": ("country",),
    "city": ("city",),
    "company_size": ("company_size", "employees", "team_size", "number_of_employees"),
}
MESSAGE_FIELDS = (
    "message",
    "your_message",
    "comments",
    "comment",
    "question",
    "enquiry",
    "inquiry",
    "details",
    "body",
)
# Fields about the submission, not the visitor: never part of ``fields``.
META_FIELDS: Mapping[str, tuple[str, ...]] = {
    "anonymous_id": ("anonymous_id", "anonymousid", "ajs_anonymous_id"),
    "user_id": ("user_id", "userid", "ajs_user_id"),
    "page_url": ("page_url", "pageurl"),
    "referrer": ("referrer", "page_referrer"),
    "submission_id": ("submission_id", "submissionid"),
    "timestamp": ("timestamp", "submitted_at"),
}
_UNBOUNCE_PAGE = ("page_id", "pageid", "page_name", "pagename", "variant", "page_url", "pageurl")
_UNBOUNCE_DROP = frozenset(
    {"page_uuid", "ip_address", "time_submitted", "date_submitted", "page_url", "variant",
     "page_name", "page_id"}
)  # fmt: skip


def field_key(name: str) -> str:
    return _KEY_SEP.sub("_", name.strip().lower())


def flatten(value: Any) -> Any:
    """A one-item list (Unbounce, repeated urlencoded keys) as its item."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def form_identifier(form_id: str) -> str:
    """The form's id from the URL: the ``form`` property rules match (``contact-sales``)."""
    form = form_id.strip()
    if not form or len(form) > MAX_FORM_ID:
        raise InvalidPayload(f"form id: expected 1 to {MAX_FORM_ID} characters, got {form_id!r}")
    return form


def is_unbounce(doc: Mapping[str, Any]) -> bool:
    """Whether a decoded body is Unbounce's form post (its fields are under ``data.json``)."""
    return "data.json" in doc


def unbounce_fields(doc: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Unbounce's post as (form fields, page facts). ``data.json`` is JSON text in the
    real post and an object in the Iglu schema; both are read."""
    data = doc.get("data.json")
    if isinstance(data, str | bytes):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidPayload(f"data.json: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidPayload(f"data.json: expected an object, got {type(data).__name__}")
    page = {field_key(k): flatten(v) for k, v in doc.items() if field_key(k) in _UNBOUNCE_PAGE}
    submitted = _unbounce_time(data)
    fields = {k: flatten(v) for k, v in data.items() if field_key(k) not in _UNBOUNCE_DROP}
    meta = {
        "page_url": page.get("page_url") or page.get("pageurl") or flatten(data.get("page_url")),
        "unbounce": {
            "page_id": page.get("page_id") or page.get("pageid"),
            "page_name": page.get("page_name") or page.get("pagename"),
            "variant": page.get("variant"),
        },
        "timestamp": submitted,
    }
    return fields, meta


def _unbounce_time(data: Mapping[str, Any]) -> str | None:
    """``date_submitted`` + ``time_submitted`` ("2014-07-24", "04:43 PM UTC") as ISO 8601."""
    day, time = flatten(data.get("date_submitted")), flatten(data.get("time_submitted"))
    if not isinstance(day, str) or not isinstance(time, str):
        return None
    try:
        when = datetime.strptime(f"{day} {time.replace('UTC', '').strip()}", "%Y-%m-%d %I:%M %p")
    except ValueError:
        return None
    return when.replace(tzinfo=UTC).isoformat()


def split_fields(doc: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A generic form body as (form fields, submission facts). A JSON body may hold the
    fields flat or under ``fields``; facts (page_url, anonymous_id, ...) are taken out."""
    nested = doc.get("fields")
    source = nested if isinstance(nested, dict) else doc
    top = doc if isinstance(nested, dict) else {}
    meta: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    names = {alias: name for name, aliases in META_FIELDS.items() for alias in aliases}
    for origin in (top, source):
        for key, value in origin.items():
            name = names.get(field_key(key))
            if name is not None:
                meta.setdefault(name, flatten(value))
            elif origin is source:
                fields[key] = flatten(value)
    return fields, meta


def lead_traits(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Lead attributes read from the usual field names; the first name found wins."""
    by_key = {field_key(k): v for k, v in fields.items()}
    out: dict[str, Any] = {}
    for attribute, aliases in ATTRIBUTE_FIELDS.items():
        for alias in aliases:
            value = by_key.get(alias)
            if isinstance(value, str | int | float) and not isinstance(value, bool) and value != "":
                out[attribute] = value.strip() if isinstance(value, str) else value
                break
    size = out.get("company_size")
    if isinstance(size, str) and size.isdigit():
        out["company_size"] = int(size)
    return out


def message_text(fields: Mapping[str, Any]) -> str | None:
    by_key = {field_key(k): v for k, v in fields.items()}
    for name in MESSAGE_FIELDS:
        value = by_key.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def form_messages(form_id: str, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A form submission (generic or Unbounce) as an identify and a ``form_submitted`` track.
    Raises InvalidPayload naming the field when it cannot be taken in."""
    form = form_identifier(form_id)
    if is_unbounce(doc):
        fields, meta = unbounce_fields(doc)
        source = "unbounce"
    else:
        fields, meta = split_fields(doc)
        source = "form"
    traits = lead_traits(fields)
    email_field = next((k for k in fields if field_key(k) in ATTRIBUTE_FIELDS["email"]), "email")
    who = Who(
        text(meta.get("user_id"), "user_id"),
        text(meta.get("anonymous_id"), "anonymous_id"),
        normalised_email(traits.pop("email", None), email_field),
    )
    if not who.known():
        raise InvalidPayload(
            "email: missing (a form submission needs an email field, or an anonymous_id)"
        )
    when = timestamp_text(meta.get("timestamp"), "timestamp")
    properties = _properties(form, source, fields, meta)
    submission = text(meta.get("submission_id"), "submission_id")
    event_id = f"form:{form}:" + (
        submission or stable_id([form, who.ids(), fields, properties.get("url")])[2:]
    )
    messages = []
    introduction = identify(who, traits, when)
    if introduction is not None:
        messages.append(introduction)
    messages.append(track(who, event_id, FORM_EVENT, properties, when))
    return messages


def _properties(
    form: str, source: str, fields: Mapping[str, Any], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """The event's properties: form, fields, message, and the page it was sent from."""
    properties: dict[str, Any] = {"form": form, "fields": dict(fields), "source": source}
    message = message_text(fields)
    if message is not None:
        properties["message"] = message
    url = text(meta.get("page_url"), "page_url")
    if url is not None:
        properties["url"] = url
        path = urlsplit(url).path
        if path:
            properties["path"] = path
    referrer = text(meta.get("referrer"), "referrer")
    if referrer is not None:
        properties["referrer"] = referrer
    unbounce = meta.get("unbounce")
    if isinstance(unbounce, dict):
        properties["unbounce"] = {k: v for k, v in unbounce.items() if v is not None}
    return properties
