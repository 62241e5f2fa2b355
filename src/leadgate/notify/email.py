"""Email through SMTP, set by ``LEADGATE_SMTP_URL`` and ``LEADGATE_MAIL_FROM``.

``LEADGATE_SMTP_URL`` is ``smtp://[user:password@]host[:port]`` (plain SMTP,
port 25 by default; add ``?starttls=true`` to upgrade the connection with
STARTTLS, port 587 usually) or ``smtps://[user:password@]host[:port]`` (TLS from
the start, port 465 by default). User and password are URL-encoded.
``LEADGATE_MAIL_FROM`` is the sender (default ``leadgate@localhost``).

Each email has a plain text and an HTML part. Its ``Message-ID`` is derived from
the notification's idempotency key, so a repeat has the same ``Message-ID`` (mail
systems and clients drop such duplicates); the key itself is in the
``Leadgate-Idempotency-Key`` header.
"""

from __future__ import annotations

import hashlib
import os
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import parse_qs, unquote, urlsplit

from leadgate.notify.webhook import DeliveryError

SMTP_URL_ENV = "LEADGATE_SMTP_URL"
MAIL_FROM_ENV = "LEADGATE_MAIL_FROM"
DEFAULT_MAIL_FROM = "leadgate@localhost"
IDEMPOTENCY_HEADER = "Leadgate-Idempotency-Key"


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how to send mail."""

    host: str
    port: int
    tls: bool = False  # smtps: TLS from the first byte
    starttls: bool = False  # smtp with STARTTLS
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpConfig:
    """An ``SmtpConfig`` from ``smtp://`` or ``smtps://`` URL; ``ValueError`` says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"{SMTP_URL_ENV} must start with smtp:// or smtps://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"{SMTP_URL_ENV} has no host: {url!r}")
    tls = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if tls else 25)
    except ValueError:
        raise ValueError(f"{SMTP_URL_ENV} has a bad port: {url!r}") from None
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["false"])[-1].lower() in ("1", "true", "yes")
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        tls=tls,
        starttls=starttls and not tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def smtp_from_env() -> SmtpConfig | None:
    """The SMTP server of ``LEADGATE_SMTP_URL``; None when it is not set."""
    url = os.environ.get(SMTP_URL_ENV)
    return parse_smtp_url(url) if url else None


def mail_from_env() -> str:
    return os.environ.get(MAIL_FROM_ENV) or DEFAULT_MAIL_FROM


def message_id(idempotency_key: str) -> str:
    """A ``Message-ID`` that is the same for every repeat of one notification."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]
    return f"<{digest}@leadgate>"


def build_email(
    sender: str, to: str, subject: str, text: str, html: str | None, idempotency_key: str
) -> EmailMessage:
    """A multipart/alternative email (plain text, then HTML when given)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id(idempotency_key)
    message[IDEMPOTENCY_HEADER] = idempotency_key
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def send_email(config: SmtpConfig, message: EmailMessage, timeout: float = 10.0) -> None:
    """Send one message on a connection of its own; ``DeliveryError`` on any failure
    (refused connection, timeout, a 4xx/5xx reply, a refused recipient)."""
    try:
        client: smtplib.SMTP
        if config.tls:
            client = smtplib.SMTP_SSL(
                config.host, config.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=timeout)
        with client:
            if config.starttls:
                client.starttls(context=ssl.create_default_context())
            if config.username is not None:
                client.login(config.username, config.password or "")
            refused = client.send_message(message)
        if refused:
            raise DeliveryError(f"recipients refused: {refused}")
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(
            f"SMTP {config.host}:{config.port}: {type(exc).__name__}: {exc}"
        ) from exc
