"""Signed outbound webhooks: how leadgate signs a delivery, and how a receiver checks it.

Each delivery is a JSON POST with three headers:

- ``Leadgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` where the HMAC is
  of ``"<t>.<body>"`` keyed with the subscription's secret. The timestamp is
  inside the signed text, so a captured request cannot be replayed later than
  the receiver's tolerance; several ``v1`` values may appear (secret rotation).
- ``Idempotency-Key``: the same on every repeat of one notification; receivers
  de-duplicate by it (delivery is at least once).
- ``Leadgate-Event``: the event name (``lead.sql``, ``handover.assigned``, ...).
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx

SIGNATURE_HEADER = "Leadgate-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "Leadgate-Event"
DEFAULT_TOLERANCE_SECONDS = 300.0


class SignatureError(ValueError):
    """A webhook's signature header is missing, malformed, stale or does not match."""


class DeliveryError(Exception):
    """A delivery did not succeed; the message says why (kept as the row's last error)."""


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with ``secret``."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={signature(secret, body, timestamp)}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a ``Leadgate-Signature`` header against the raw request body, as a
    receiver should before trusting it; returns the signed timestamp.

    Raises ``SignatureError`` when the header is missing or malformed, when no
    ``v1`` signature matches (compared in constant time), or when the timestamp
    is more than ``tolerance`` seconds away from ``now`` (a replay)."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {SIGNATURE_HEADER} part {part.strip()!r}")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError(f"timestamp is not an integer: {value!r}") from None
        elif name == "v1":
            candidates.append(value)
    if timestamp is None:
        raise SignatureError(f"{SIGNATURE_HEADER} has no t=<timestamp>")
    if not candidates:
        raise SignatureError(f"{SIGNATURE_HEADER} has no v1=<signature>")
    expected = signature(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("signature does not match the body and secret")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(
            f"timestamp {timestamp} is {abs(current - timestamp):.0f} s from now "
            f"(tolerance {tolerance:.0f} s)"
        )
    return timestamp


def post_webhook(
    client: httpx.Client,
    url: str,
    secret: str,
    event: str,
    idempotency_key: str,
    body: bytes,
    now: float | None = None,
) -> None:
    """POST one signed delivery; returns on a 2xx answer, raises ``DeliveryError``
    otherwise (any other status, a timeout, a refused connection)."""
    timestamp = int(time.time() if now is None else now)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature_header(secret, body, timestamp),
        IDEMPOTENCY_HEADER: idempotency_key,
        EVENT_HEADER: event,
        "User-Agent": "leadgate-webhooks/0.1",
    }
    post_json(client, url, body, headers)


def post_json(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> None:
    """POST ``body``; 2xx is delivered, anything else raises ``DeliveryError``.
    Redirects are not followed: a receiver that moved must be re-subscribed."""
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc or 'no detail'}") from exc
    if not 200 <= response.status_code < 300:
        snippet = response.text[:200].strip()
        raise DeliveryError(f"HTTP {response.status_code}" + (f": {snippet}" if snippet else ""))
