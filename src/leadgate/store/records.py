"""What the store reads and writes besides events and leads: plain frozen records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

ApiKeyKind = Literal["write", "admin"]
ModelStatus = Literal["draft", "published"]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One change of a lead's points: which rule, for which event, under which model."""

    lead_id: str
    rule_id: str
    event_id: str | None  # the event's message id; None for fit rules
    points: float
    model_version: str
    at: datetime


@dataclass(frozen=True, slots=True)
class StageChange:
    """A lead moved from one stage to another, why, and on whose authority."""

    lead_id: str
    from_stage: str | None
    to_stage: str
    cause: str
    rule_ids: tuple[str, ...]
    model_version: str | None  # None when a person moved the lead
    actor: str  # "model", or the person who overrode
    at: datetime


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """A scoring model file as saved: a draft, or published by someone with a reason."""

    name: str
    version: str
    text: str
    status: ModelStatus
    created_at: datetime
    published_by: str | None = None
    why: str | None = None
    published_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (never the key itself: only its hash is kept)."""

    id: int
    kind: ApiKeyKind
    created_at: datetime
    revoked: bool


class IdentityConflict(Exception):
    """An identity already belongs to another lead (merging leads is a separate use case)."""

    def __init__(self, kind: str, value: str, owner: str, claimant: str) -> None:
        super().__init__(f"{kind} {value!r} belongs to lead {owner!r}, not {claimant!r}")
        self.kind = kind
        self.value = value
        self.owner = owner
        self.claimant = claimant
