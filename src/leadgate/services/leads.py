"""Use cases for the people who act on leads: list them, override a stage, export
everything held about one, and erase one.

Each runs over a Repository inside the caller's transaction, so the web API and a
command line give the same answers. Bad input raises ``InvalidParameter`` naming
the parameter; an unknown lead raises ``LeadNotFound`` (or returns None where
"nothing" is a fine answer).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from leadgate.domain.events import to_utc
from leadgate.domain.lifecycle import STAGES
from leadgate.domain.model import ScoringModel
from leadgate.domain.scoring import evaluate
from leadgate.domain.stages import decide
from leadgate.services.handover import Scored, hand_over
from leadgate.services.ingest import ledger_changes, normalise_email
from leadgate.store.records import StageChange
from leadgate.store.repository import Repository

# The stages a person may filter on or move a lead to: the model's and sales'.
KNOWN_STAGES: tuple[str, ...] = STAGES
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_TEXT = 200  # a search text longer than any id or email is a mistake
MAX_REASON = 2000
MAX_ACTOR = 200  # the width of stage_history.actor


class InvalidParameter(ValueError):
    """A parameter a person gave is not usable; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


class LeadNotFound(LookupError):
    def __init__(self, lead_id: str) -> None:
        super().__init__(f"no lead {lead_id!r}")
        self.lead_id = lead_id


class StageUnchanged(Exception):
    """An override to the stage the lead is already in: nothing is recorded."""

    def __init__(self, lead_id: str, stage: str) -> None:
        super().__init__(f"lead {lead_id!r} is already in stage {stage!r}; nothing recorded")
        self.lead_id = lead_id
        self.stage = stage


# Listing ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadFilter:
    """Which leads to list; build it with ``lead_filter`` so every field is checked."""

    stages: frozenset[str] = frozenset()  # empty: every stage
    min_score: float | None = None
    email: str | None = None  # normalised: trimmed, lower case; matched exactly
    text: str | None = None  # contained in the lead id or an email, any case


@dataclass(frozen=True, slots=True)
class LeadSummary:
    """One lead in a list. ``score`` is as of the lead's last evaluation, at
    ``score_as_of``; the lead's own view decays it to now."""

    id: str
    email: str | None
    name: str | None
    company: str | None
    stage: str
    score: float
    score_as_of: datetime
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class LeadPage:
    items: list[LeadSummary]
    next: str | None  # the cursor of the next page; None on the last page


def parse_stages(values: Iterable[str]) -> frozenset[str]:
    """Stages from repeated and comma-separated values (``mql,sql``), each known."""
    stages = {s.strip().lower() for value in values for s in value.split(",")} - {""}
    unknown = sorted(stages - set(KNOWN_STAGES))
    if unknown:
        raise InvalidParameter(
            "stage", f"unknown stage {', '.join(unknown)} (known: {', '.join(KNOWN_STAGES)})"
        )
    return frozenset(stages)


def lead_filter(
    stages: Iterable[str] = (),
    min_score: float | str | None = None,
    email: str | None = None,
    text: str | None = None,
) -> LeadFilter:
    """A checked filter: stages known, ``min_score`` a finite number, ``email`` an
    address (normalised as ingest does, so it matches what was stored)."""
    score: float | None = None
    if min_score is not None:
        try:
            score = float(min_score)
        except ValueError:
            raise InvalidParameter("min_score", f"not a number: {min_score!r}") from None
        if not math.isfinite(score):
            raise InvalidParameter("min_score", "must be a finite number")
    address: str | None = None
    if email is not None:
        address = normalise_email(email)
        if address is None:
            raise InvalidParameter("email", f"not an email address: {email!r}")
    if text is not None:
        text = text.strip()
        if not text or len(text) > MAX_TEXT:
            raise InvalidParameter("q", f"give 1 to {MAX_TEXT} characters")
    return LeadFilter(parse_stages(stages), score, address, text)


def encode_cursor(score: float, lead_id: str) -> str:
    """An opaque cursor: the (score, id) of the last lead on a page."""
    return base64.urlsafe_b64encode(orjson.dumps([score, lead_id])).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        score, lead_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidParameter("cursor", "not a cursor this API gave out") from None
    if (
        not isinstance(score, int | float)
        or isinstance(score, bool)
        or not isinstance(lead_id, str)
    ):
        raise InvalidParameter("cursor", "not a cursor this API gave out")
    return float(score), lead_id


def check_limit(limit: int | str) -> int:
    try:
        value = int(limit)
    except ValueError:
        raise InvalidParameter("limit", f"not a whole number: {limit!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidParameter("limit", f"must be between 1 and {MAX_LIMIT}, not {value}")
    return value


def list_leads(
    repo: Repository,
    where: LeadFilter | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> LeadPage:
    """One page of leads, highest stored score first (ties by id), after ``cursor``.

    Paging follows (score, id), so a lead whose score changes between two pages may
    be seen twice or not at all; with scores holding still every lead is seen once.
    """
    limit = check_limit(limit)
    after = None if cursor is None else decode_cursor(cursor)
    where = where or LeadFilter()
    rows = repo.list_leads(
        stages=where.stages,
        min_score=where.min_score,
        email=where.email,
        text=where.text,
        after=after,
        limit=limit + 1,  # one more tells whether there is a next page
    )
    items = [_summary(row) for row in rows[:limit]]
    more = len(rows) > limit
    return LeadPage(items, encode_cursor(items[-1].score, items[-1].id) if more else None)


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _name(attributes: Mapping[str, Any]) -> str | None:
    parts = [_text(attributes.get("first_name")), _text(attributes.get("last_name"))]
    joined = " ".join(p for p in parts if p)
    return _text(attributes.get("name")) or joined or None


def _summary(row: Mapping[str, Any]) -> LeadSummary:
    attributes: Mapping[str, Any] = row["attributes"] or {}
    company = attributes.get("company")
    return LeadSummary(
        id=row["id"],
        email=_text(attributes.get("email")),
        name=_name(attributes),
        company=_text(company) if not isinstance(company, Mapping) else _text(company.get("name")),
        stage=row["stage"],
        score=row["score"],
        # Every write that sets the score sets updated_at to the evaluation time, and
        # an override re-evaluates too (see override_stage), so updated_at is when the
        # stored score was computed.
        score_as_of=row["updated_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


# Overrides --------------------------------------------------------------------


def override_stage(
    repo: Repository,
    model: ScoringModel,
    lead_id: str,
    stage: str,
    reason: str,
    actor: str,
    at: datetime,
) -> StageChange:
    """A person moves a lead to ``stage``, with a reason: the only way a lead goes back.

    Any move between known stages is allowed. It is recorded in the stage history
    with the actor, no model version, and the reason as its cause. The score is
    re-evaluated as of ``at`` too (without any stage decision), so the stored score
    stays "as of updated_at". The model later moves the lead forward from here only
    when its decision is further along than ``stage``.

    Raises InvalidParameter, LeadNotFound, or StageUnchanged when the lead is already
    in ``stage`` (nothing is recorded then).
    """
    stage = stage.strip().lower() if isinstance(stage, str) else stage
    if stage not in KNOWN_STAGES:
        raise InvalidParameter(
            "stage", f"unknown stage {stage!r} (known: {', '.join(KNOWN_STAGES)})"
        )
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise InvalidParameter("reason", "say why the lead is moved (a non-empty text)")
    if len(reason) > MAX_REASON:
        raise InvalidParameter("reason", f"at most {MAX_REASON} characters")
    actor = actor.strip() if isinstance(actor, str) else ""
    if not actor or len(actor) > MAX_ACTOR:
        raise InvalidParameter("actor", f"give 1 to {MAX_ACTOR} characters")
    lead = repo.get_lead(lead_id)
    state = repo.lead_state(lead_id)
    if lead is None or state is None:
        raise LeadNotFound(lead_id)
    current = state[0]
    if current == stage:
        raise StageUnchanged(lead_id, stage)
    at = to_utc(at)
    events = repo.load_events(lead_id)
    breakdown = evaluate(model, lead, events, at)
    repo.set_score(lead_id, breakdown.total, at)
    repo.record_ledger(ledger_changes(repo.ledger(lead_id), breakdown, at))
    change = StageChange(lead_id, current, stage, reason, (), None, actor, at)
    repo.lock_leads([lead_id])
    repo.record_stage_change(change)
    if stage in ("mql", "sql"):  # a person says it is sales ready: hand it over as the model would
        scored = Scored(breakdown, decide(breakdown, model), events, lead.attributes)
        hand_over(repo.conn, model, [change], {lead_id: scored}, at)
    return change


# Privacy ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Erasure:
    """What is kept after a lead is erased: nothing that identifies the person."""

    id: str
    at: datetime
    counts: dict[str, int] = field(default_factory=dict)  # rows deleted per table


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_utc(value).isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def export_lead(repo: Repository, lead_id: str, at: datetime) -> dict[str, Any] | None:
    """Everything held about the lead, as a JSON-ready document (a subject access
    request): the lead's row (attributes, stage, score, times) and every row of
    every table about it (identities, events, score ledger, stage history, and any
    table added later), each as stored. None for an unknown lead."""
    records = repo.lead_records(lead_id)
    if records is None:
        return None
    lead = records.pop("leads")[0]
    return {
        "lead_id": lead_id,
        "exported_at": to_utc(at).isoformat(),
        "lead": _json_ready(lead),
        "records": {name: _json_ready(rows) for name, rows in sorted(records.items())},
    }


def erase_lead(repo: Repository, lead_id: str, at: datetime) -> Erasure | None:
    """Delete the lead and everything about it (a right-to-erasure request). Only an
    erasure record without personal data is kept: its random id, time, rows deleted
    per table, and hashes of the erased message ids so a client's retry of one is not
    stored again. None for an unknown lead (already erased, or never known).

    On SQLite, call ``Repository.truncate_wal`` after the commit so the write-ahead
    log keeps no copy of the deleted rows.
    """
    erased = repo.erase_lead(lead_id, to_utc(at))
    if erased is None:
        return None
    erasure_id, counts = erased
    return Erasure(erasure_id, to_utc(at), counts)
