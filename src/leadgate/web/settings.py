"""The web service's settings: one typed, validated record, built by the caller."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MESSAGE_LIMIT_BYTES = 32 * 1024  # Segment's limit for one message
BATCH_LIMIT_BYTES = 500 * 1024  # Segment's limit for one batch request


@dataclass(frozen=True, slots=True)
class Settings:
    """``database_url``: None means ``LEADGATE_DATABASE_URL`` or ``./leadgate.db``.
    ``model_path``: None means the packaged default model. ``migrate``: bring the
    database schema up to date when the app is created (creates a new SQLite file)."""

    database_url: str | None = None
    model_path: Path | None = None
    migrate: bool = True
    message_limit_bytes: int = MESSAGE_LIMIT_BYTES
    batch_limit_bytes: int = BATCH_LIMIT_BYTES

    def __post_init__(self) -> None:
        if self.message_limit_bytes <= 0 or self.batch_limit_bytes <= 0:
            raise ValueError("size limits must be positive")
