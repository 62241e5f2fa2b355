"""The web service's settings: one typed, validated record, built by the caller."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MESSAGE_LIMIT_BYTES = 32 * 1024  # Segment's limit for one message
BATCH_LIMIT_BYTES = 500 * 1024  # Segment's limit for one batch request


def from_env(name: str) -> Callable[[], str | None]:
    """A default read from the environment when the settings are built (empty is unset)."""
    return lambda: os.environ.get(name) or None


@dataclass(frozen=True, slots=True)
class Settings:
    """``database_url``: None means ``LEADGATE_DATABASE_URL`` or ``./leadgate.db``.
    ``model_path``: None means the packaged default model. ``migrate``: bring the
    database schema up to date when the app is created (creates a new SQLite file).
    ``hubspot_client_secret``: the HubSpot app's client secret, which signs its
    webhooks (``LEADGATE_HUBSPOT_CLIENT_SECRET``); None turns ``/api/webhooks/hubspot``
    off. ``calendly_signing_key``: the webhook signing key of the Calendly
    subscription (``LEADGATE_CALENDLY_SIGNING_KEY``); None turns
    ``/api/webhooks/calendly`` off. ``public_url``: the URL the service is reached
    at from outside (``LEADGATE_PUBLIC_URL``, e.g. ``https://leads.example.com``),
    when a proxy in front changes scheme or host: HubSpot signs the URL it called."""

    database_url: str | None = None
    model_path: Path | None = None
    migrate: bool = True
    message_limit_bytes: int = MESSAGE_LIMIT_BYTES
    batch_limit_bytes: int = BATCH_LIMIT_BYTES
    hubspot_client_secret: str | None = field(
        default_factory=from_env("LEADGATE_HUBSPOT_CLIENT_SECRET"), repr=False
    )
    calendly_signing_key: str | None = field(
        default_factory=from_env("LEADGATE_CALENDLY_SIGNING_KEY"), repr=False
    )
    public_url: str | None = field(default_factory=from_env("LEADGATE_PUBLIC_URL"))
    # Every so often all leads are decided again as of now, so stored scores show
    # their decay (services/rescore.py); 0 turns it off.
    rescore_every_seconds: float = 3600.0
    # Deliver the outbox (webhooks, email, chat) from a thread of this process;
    # off when separate `leadgate worker` processes do it.
    run_worker: bool = True

    def __post_init__(self) -> None:
        if self.message_limit_bytes <= 0 or self.batch_limit_bytes <= 0:
            raise ValueError("size limits must be positive")
        if self.rescore_every_seconds < 0:
            raise ValueError("rescore_every_seconds must be 0 (off) or positive")
