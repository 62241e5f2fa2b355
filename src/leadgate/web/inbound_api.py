"""Inbound webhooks and native events: ``/api/events``, ``/api/forms/{form_id}``,
``/api/webhooks/hubspot`` and ``/api/webhooks/calendly``.

Each endpoint checks who is calling (a write key, or the sender's signature),
has the domain convert the body into Segment-shaped messages and hands them to
``Service.take_in``: the same ingest path as ``/v1/*``, in one transaction.

Answers: 200 with ``accepted``/``stored``/``duplicates`` and per-item ``errors``
(and ``ignored``: items read but not recorded); 400 when the body cannot be
decoded, 422 when the one item sent is invalid (the reason names the field), 401
for a missing or wrong key or signature, 413 over the size limits, 503 when a
webhook's secret is not configured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from leadgate.domain import calendly, hubspot
from leadgate.domain.forms import form_messages
from leadgate.domain.inbound import (
    Conversion,
    InvalidPayload,
    SignatureError,
    native_events,
    native_items,
)
from leadgate.services.ingest import IngestResult
from leadgate.web.http import (
    ApiError,
    basic_user,
    bearer_token,
    kb,
    parse_json,
    read_body,
    too_large,
)
from leadgate.web.service import Service

FORM_TYPES = ("application/json", "application/x-www-form-urlencoded")


def answer(conversion: Conversion, result: IngestResult) -> dict[str, Any]:
    """The response body: counts, and problems reported against the items sent."""
    failed = {p.index: p.reason for p in conversion.problems}
    for error in result.errors:
        failed.setdefault(conversion.origins[error.index], error.reason)
    ignored = [p for p in conversion.ignored if p.index not in failed]
    return {
        "success": True,
        "accepted": conversion.items - len(failed) - len(ignored),
        "stored": result.stored,
        "duplicates": result.duplicates,
        "conflicts": [
            {"id": i, "reason": "message id already stored with other content; kept the first"}
            for i in result.conflicts
        ],
        "errors": [{"index": i, "reason": r} for i, r in sorted(failed.items())],
        "ignored": [{"index": p.index, "reason": p.reason} for p in ignored],
    }


def read_payload(convert: Callable[[], Conversion]) -> Conversion:
    """Run a domain conversion; a payload it cannot read is a 422 naming the field."""
    try:
        return convert()
    except InvalidPayload as exc:
        raise ApiError(422, f"invalid payload: {exc.reason}") from None


def form_fields(body: bytes, content_type: str) -> Mapping[str, Any]:
    """A form body as a dict: JSON, or urlencoded (a repeated field becomes a list)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise ApiError(400, "form body is not UTF-8 text") from None
        fields: dict[str, list[str]] = {}
        for name, value in pairs:
            fields.setdefault(name, []).append(value)
        return {name: values[0] if len(values) == 1 else values for name, values in fields.items()}
    if kind not in ("application/json", ""):
        raise ApiError(415, f"Content-Type {kind!r} is not read; send {' or '.join(FORM_TYPES)}")
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise ApiError(400, "body must be a JSON object of form fields")
    return doc


def public_uri(request: Request, public_url: str | None) -> str:
    """The URL the sender called: ``public_url`` (behind a proxy) with this path and query."""
    if not public_url:
        return str(request.url)
    query = request.url.query
    return public_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")


def router(service: Service) -> APIRouter:
    api = APIRouter(tags=["inbound"])
    settings = service.settings

    async def take_in(conversion: Conversion, single: bool = False) -> JSONResponse:
        result = (
            await service.take_in(conversion.messages) if conversion.messages else IngestResult()
        )
        body = answer(conversion, result)
        if single and body["errors"]:
            raise ApiError(
                422, f"invalid payload: {body['errors'][0]['reason']}", **{**body, "success": False}
            )
        return JSONResponse(body)

    @api.post("/api/events")
    async def events(request: Request) -> JSONResponse:
        """Native events: one object, a list, or ``{"events": [...]}``; each needs an ``id``."""
        await service.writer(request)
        doc = parse_json(await read_body(request, settings.batch_limit_bytes, "one request"))
        try:
            items, single = native_items(doc)
        except InvalidPayload as exc:
            raise ApiError(400, exc.reason) from None
        limit = settings.message_limit_bytes
        reason = f"event is larger than the {kb(limit)} limit for one event"
        oversized = {i: reason for i, item in enumerate(items) if len(orjson.dumps(item)) > limit}
        if single and oversized:
            raise too_large(limit, "one event")
        conversion = native_events(items, refused=oversized)
        return await take_in(conversion, single)

    @api.post("/api/forms/{form_id}")
    async def form(form_id: str, request: Request) -> JSONResponse:
        """A form submission (JSON or urlencoded, or Unbounce's post). The write key may
        also be ``?key=`` so a plain HTML form can post here."""
        header = request.headers.get("authorization")
        key = basic_user(header) or bearer_token(header) or request.query_params.get("key")
        await service.authorise(key, "write")
        body = await read_body(request, settings.batch_limit_bytes, "one form submission")
        fields = form_fields(body, request.headers.get("content-type", ""))
        messages = read_payload(lambda: _one(form_messages(form_id, fields)))
        if any(len(orjson.dumps(m)) > settings.message_limit_bytes for m in messages.messages):
            raise too_large(settings.message_limit_bytes, "one form submission")
        return await take_in(messages, single=True)

    @api.post("/api/webhooks/hubspot")
    async def hubspot_webhook(request: Request) -> JSONResponse:
        """HubSpot contact webhooks, verified with the v3 signature (client secret)."""
        secret = settings.hubspot_client_secret
        if not secret:
            raise ApiError(503, "HubSpot webhooks are off: set LEADGATE_HUBSPOT_CLIENT_SECRET")
        body = await read_body(request, settings.batch_limit_bytes, "one webhook")
        try:
            hubspot.verify_v3(
                secret,
                request.method,
                public_uri(request, settings.public_url),
                body,
                request.headers.get(hubspot.SIGNATURE_HEADER),
                request.headers.get(hubspot.TIMESTAMP_HEADER),
                time.time_ns() // 1_000_000,
            )
        except SignatureError as exc:
            raise ApiError(401, f"HubSpot signature refused: {exc.reason}") from None
        doc = parse_json(body)
        return await take_in(read_payload(lambda: hubspot.webhook_events(doc)))

    @api.post("/api/webhooks/calendly")
    async def calendly_webhook(request: Request) -> JSONResponse:
        """Calendly invitee webhooks, verified with the subscription's signing key."""
        key = settings.calendly_signing_key
        if not key:
            raise ApiError(503, "Calendly webhooks are off: set LEADGATE_CALENDLY_SIGNING_KEY")
        body = await read_body(request, settings.batch_limit_bytes, "one webhook")
        header = request.headers.get(calendly.SIGNATURE_HEADER)
        try:
            calendly.verify(key, header, body, int(time.time()))
        except SignatureError as exc:
            raise ApiError(401, f"Calendly signature refused: {exc.reason}") from None
        doc = parse_json(body)
        return await take_in(read_payload(lambda: calendly.webhook_messages(doc)), single=True)

    return api


def _one(messages: list[dict[str, Any]]) -> Conversion:
    conversion = Conversion(items=1)
    conversion.add(0, *messages)
    return conversion
