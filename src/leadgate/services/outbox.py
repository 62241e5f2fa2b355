"""Notifications as use cases: write them to the outbox inside the caller's transaction.

Whoever changes state (a stage change, a handover, a disposition) calls
``publish``, ``notify_email`` or ``notify_chat`` on the same connection, before
the commit: the notification exists exactly when the change does, and a worker
(notify/worker.py) delivers it afterwards with retries.

``key`` is the caller's stable name for what happened (for example
``handover:42:assigned``); each message's idempotency key is derived from it and
the recipient, so running the same transaction twice writes nothing new, and a
receiver can de-duplicate repeats.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection

from leadgate.domain.events import to_utc
from leadgate.notify.chat import chat_payload
from leadgate.store.outbox_store import NewMessage, OutboxStore, Subscription

# Lifecycle events that leave the system: stable names, past tense in meaning.
EVENTS: tuple[str, ...] = (
    "lead.mql",
    "lead.sql",
    "handover.assigned",
    "handover.overdue",
    "lead.disposition",
)
CHAT_URL_ENV = "LEADGATE_CHAT_WEBHOOK_URL"
KEY_LIMIT = 200  # the idempotency_key column's length
SECRET_LIMIT = 200
URL_LIMIT = 2048


class InvalidSubscription(ValueError):
    """A subscription's URL, secret or events are not acceptable; the message says which."""


def idempotency_key(key: str, recipient: str) -> str:
    """``"<key>:<recipient>"``, or a SHA-256 of it when that would not fit the column."""
    if not key:
        raise ValueError("an idempotency key is required")
    derived = f"{key}:{recipient}"
    if len(derived) <= KEY_LIMIT:
        return derived
    return "sha256:" + hashlib.sha256(derived.encode("utf-8")).hexdigest()


def check_url(url: str, what: str = "url") -> str:
    """An absolute http(s) URL with a host, or ``InvalidSubscription``."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        _ = parts.port  # a port that is not a number is refused here
    except ValueError:
        raise InvalidSubscription(f"{what}: not a valid URL: {url!r}") from None
    if len(url) > URL_LIMIT:
        raise InvalidSubscription(f"{what}: at most {URL_LIMIT} characters")
    if any(ord(ch) < 32 or ch.isspace() for ch in url.strip()):
        raise InvalidSubscription(f"{what}: control characters or spaces in {url!r}")
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidSubscription(
            f"{what}: must be an absolute http:// or https:// URL, not {url!r}"
        )
    return url.strip()


def check_events(events: Iterable[str]) -> tuple[str, ...]:
    """Known event names, each once, in the order given; at least one."""
    chosen: list[str] = []
    for event in events:
        name = event.strip()
        if name not in EVENTS:
            raise InvalidSubscription(
                f"events: unknown event {name!r} (known: {', '.join(EVENTS)})"
            )
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise InvalidSubscription(f"events: give at least one of {', '.join(EVENTS)}")
    return tuple(chosen)


def add_subscription(
    conn: Connection, url: str, secret: str, events: Sequence[str], at: datetime
) -> Subscription:
    """Subscribe ``url`` to ``events``; deliveries are signed with ``secret``."""
    checked_url = check_url(url)
    if not secret or not secret.strip():
        raise InvalidSubscription("secret: required (it signs every delivery)")
    if any(ord(ch) < 32 for ch in secret):
        raise InvalidSubscription("secret: control characters are not allowed")
    if len(secret) > SECRET_LIMIT:
        raise InvalidSubscription(f"secret: at most {SECRET_LIMIT} characters")
    wanted = check_events(events)
    store = OutboxStore(conn)
    for sub in store.subscriptions():
        if sub.active and (sub.url, sub.secret, set(sub.events)) == (
            checked_url,
            secret,
            set(wanted),
        ):
            return sub  # the same subscription again: one delivery per event, not two
    return store.add_subscription(checked_url, secret, wanted, at)


def list_subscriptions(conn: Connection) -> list[Subscription]:
    """Active subscriptions, by id."""
    return OutboxStore(conn).subscriptions()


def remove_subscription(conn: Connection, subscription_id: int) -> bool:
    """Stop deliveries to a subscription; False if there is no active one with that id."""
    return OutboxStore(conn).remove_subscription(subscription_id)


def _jsonable(data: dict[str, Any], what: str) -> dict[str, Any]:
    """Refuse data that cannot be stored as JSON now, not when the worker reads it."""
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON (str, numbers, lists, dicts): {exc}") from None
    return data


def publish(
    conn: Connection,
    event: str,
    data: dict[str, Any],
    key: str,
    at: datetime,
    lead_id: str | None = None,
) -> int:
    """Write one webhook message per active subscription that wants ``event``;
    returns how many were written (0 when nobody subscribed, or when this ``key``
    was published before). ``lead_id``: whom it is about (erased with the lead).

    The body each subscriber receives is ``{"id": <idempotency key>, "type": event,
    "created_at": <ISO 8601 UTC>, "data": data}``."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r} (known: {', '.join(EVENTS)})")
    _jsonable(data, "data")
    store = OutboxStore(conn)
    created = to_utc(at).isoformat().replace("+00:00", "Z")
    messages = []
    for sub in store.subscriptions_for(event):
        message_key = idempotency_key(key, f"webhook:{sub.id}")
        body = {"id": message_key, "type": event, "created_at": created, "data": data}
        messages.append(NewMessage("webhook", sub.url, event, body, message_key, sub.id, lead_id))
    return store.enqueue(messages, at) if messages else 0


def notify_email(
    conn: Connection,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    key: str,
    at: datetime,
    event: str = "email",
    lead_id: str | None = None,
) -> bool:
    """Write one email to ``to`` (plain text, and HTML when given); False when this
    ``key`` was already written for that address."""
    if "@" not in to or any(ch in to for ch in "\r\n"):
        raise ValueError(f"not an email address: {to!r}")
    if any(ch in subject for ch in "\r\n"):
        raise ValueError("an email subject is one line")
    payload = {"subject": subject, "text": text, "html": html}
    message = NewMessage(
        "email", to, event, payload, idempotency_key(key, f"email:{to}"), lead_id=lead_id
    )
    return OutboxStore(conn).enqueue([message], at) == 1


def chat_url() -> str | None:
    """The team's chat incoming-webhook URL (``LEADGATE_CHAT_WEBHOOK_URL``; a Slack
    incoming webhook or anything that takes its format), or None for no chat."""
    return os.environ.get(CHAT_URL_ENV) or None


def notify_chat(
    conn: Connection,
    url: str,
    text: str,
    blocks: list[dict[str, Any]] | None,
    key: str,
    at: datetime,
    event: str = "chat",
    lead_id: str | None = None,
) -> bool:
    """Write one chat message (Slack incoming-webhook format) to ``url``; False when
    this ``key`` was already written for that URL."""
    check_url(url, "chat url")
    payload = _jsonable(chat_payload(text, blocks), "blocks")
    # A chat webhook's URL is its secret: the key names it by a hash, not in clear.
    url_hash = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    chat_key = idempotency_key(key, f"chat:{url_hash}")
    message = NewMessage("chat", url, event, payload, chat_key, lead_id=lead_id)
    return OutboxStore(conn).enqueue([message], at) == 1
