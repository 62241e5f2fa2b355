"""Use case: take in Segment messages, resolve who they are about, and decide again.

``ingest(repo, model, messages)`` runs inside the caller's transaction (one per
request). For each message, in the order given:

- it is read with the domain's Segment code; a message that cannot be read is
  reported with its index and reason, and the others still go in;
- the lead is resolved from its ids: ``userId`` (the lead's id), ``anonymousId``
  and a normalised email in identify traits. An anonymous visitor's lead is
  folded into the known lead when it identifies (the known lead keeps its id);
- a track, page or screen call is appended once per message id (a retry adds
  nothing); identify and group calls merge their traits into the lead.

Then every touched lead is re-evaluated by the reference evaluator over all its
stored events, so late events give the same result as in order. The score and
the ledger changes (raw points per rule and event; decay is applied when read)
are recorded, and a stage change only when the decided stage is further along
than the current one: the model never moves a lead backward or re-enters a stage.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from leadgate.domain.events import Event, Lead, to_utc
from leadgate.domain.mapping import InvalidRow
from leadgate.domain.model import ScoringModel
from leadgate.domain.scoring import Breakdown, evaluate
from leadgate.domain.segment import ANONYMOUS_PREFIX, Identity, convert_message, identity_links
from leadgate.domain.stages import Decision, decide
from leadgate.store.records import LedgerEntry, StageChange
from leadgate.store.repository import Repository

# How far along a stage is; the model only moves a lead to a higher rank.
# Stages after sql belong to the handover and are never changed by the model,
# except to disqualify.
STAGE_RANK: Mapping[str, int] = {"new": 0, "nurturing": 1, "mql": 2, "sql": 3}
DISQUALIFIED = "disqualified"
MODEL_ACTOR = "model"

USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"
EMAIL = "email"
TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")


@dataclass(frozen=True, slots=True)
class MessageError:
    """A message that was not taken in: its position in the request, and why."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class LeadOutcome:
    """A touched lead after its re-evaluation."""

    lead_id: str
    stage: str
    score: float
    decision: Decision


@dataclass
class IngestResult:
    accepted: int = 0  # messages read and applied (events new or already stored)
    stored: int = 0  # events appended by this call
    duplicates: int = 0  # events whose message id was already stored
    errors: list[MessageError] = field(default_factory=list)
    leads: dict[str, LeadOutcome] = field(default_factory=dict)
    stage_changes: list[StageChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # identity conflicts left unresolved


def normalise_email(value: object) -> str | None:
    """A trimmed, lower-cased email address, or None when ``value`` is not one."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        return None
    return email


def advances(current: str, decided: str) -> bool:
    """Whether the model may move a lead from ``current`` to ``decided``."""
    if decided == current:
        return False
    if decided == DISQUALIFIED:
        return True
    if current not in STAGE_RANK or decided not in STAGE_RANK:
        return False
    return STAGE_RANK[decided] > STAGE_RANK[current]


def ingest(
    repo: Repository,
    model: ScoringModel,
    messages: Iterable[object],
    now: datetime | None = None,
) -> IngestResult:
    """Take in ``messages`` (decoded Segment messages) and re-decide every touched lead
    as of ``now`` (default: the current time). The caller commits."""
    at = to_utc(now) if now is not None else datetime.now(UTC)
    result = IngestResult()
    touched: set[str] = set()
    for index, msg in enumerate(messages):
        if not isinstance(msg, dict):
            result.errors.append(MessageError(index, "expected a JSON object"))
            continue
        if not any(msg.get(k) for k in TIME_FIELDS):
            msg = {**msg, "receivedAt": at.isoformat()}  # as Segment does: the time received
        try:
            converted = convert_message(msg)
        except InvalidRow as exc:
            result.errors.append(MessageError(index, exc.reason))
            continue
        email = _identify_email(msg, converted)
        lead_id = _resolve(repo, msg, email, at, result)
        touched.add(lead_id)
        result.accepted += 1
        if isinstance(converted, Event):
            if repo.append_event(replace(converted, lead_id=lead_id), at):
                result.stored += 1
            else:
                result.duplicates += 1
        elif isinstance(converted, Identity):
            attributes = dict(converted.attributes)
            if email is not None:
                attributes[EMAIL] = email
            attributes = {k: v for k, v in attributes.items() if v is not None}
            repo.upsert_lead(Lead(lead_id, attributes), at)
    for lead_id in sorted(touched):
        if repo.get_lead(lead_id) is not None:  # not folded into another lead since
            result.leads[lead_id] = redecide(repo, model, lead_id, at, result.stage_changes)
    return result


def _identify_email(msg: Mapping[str, Any], converted: object) -> str | None:
    if not isinstance(converted, Identity) or converted.kind != "identify":
        return None
    traits = msg.get("traits")
    return normalise_email(traits.get(EMAIL)) if isinstance(traits, dict) else None


def _text_id(msg: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = msg.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            return str(value)
    return None


def _resolve(
    repo: Repository, msg: Mapping[str, Any], email: str | None, at: datetime, result: IngestResult
) -> str:
    """The lead the message is about, created if new; ids it brings are attached and
    anonymous leads they belong to are folded into it."""
    user = _text_id(msg, "userId", "user_id")
    anons = [a for a, _ in identity_links(msg)]
    if user is None:
        anon = _text_id(msg, "anonymousId", "anonymous_id")
        anons = [anon] if anon is not None else []
    claims = [(ANONYMOUS_ID, a) for a in anons]
    if email is not None:
        claims.append((EMAIL, email))
    owners = {claim: repo.lead_for_identity(*claim) for claim in claims}

    if user is not None:
        lead_id = repo.lead_for_identity(USER_ID, user) or user
        claims.insert(0, (USER_ID, user))
        owners[(USER_ID, user)] = lead_id if repo.get_lead(lead_id) is not None else None
    else:
        known = [o for o in owners.values() if o is not None and not _anonymous(repo, o)]
        anonymous = [o for o in owners.values() if o is not None]
        lead_id = (known or anonymous or [ANONYMOUS_PREFIX + anons[0]])[0]
    repo.upsert_lead(Lead(lead_id), at)

    for claim in claims:
        owner = owners[claim]
        if owner is not None and owner != lead_id:
            if not _anonymous(repo, owner):
                result.notes.append(
                    f"{claim[0]} {claim[1]!r} belongs to lead {owner!r}; "
                    f"not moved to {lead_id!r} (merging known leads is not automatic)"
                )
                continue
            if repo.get_lead(owner) is not None:
                repo.merge_lead(owner, lead_id, at)
        repo.add_identity(lead_id, claim[0], claim[1], at)
    return lead_id


def _anonymous(repo: Repository, lead_id: str) -> bool:
    """A lead with no user id: a visitor who has not identified."""
    return all(kind != USER_ID for kind, _ in repo.identities_of(lead_id))


def redecide(
    repo: Repository,
    model: ScoringModel,
    lead_id: str,
    at: datetime,
    changes: list[StageChange] | None = None,
) -> LeadOutcome:
    """Evaluate a stored lead over all its events as of ``at``; record its score, the
    ledger changes and, when the model moves it forward, the stage change."""
    lead = repo.get_lead(lead_id)
    state = repo.lead_state(lead_id)
    if lead is None or state is None:
        raise LookupError(f"no lead {lead_id!r}")
    breakdown = evaluate(model, lead, repo.load_events(lead_id), at)
    decision = decide(breakdown, model)
    repo.set_score(lead_id, breakdown.total, at)
    repo.record_ledger(ledger_changes(repo.ledger(lead_id), breakdown, at))
    stage = state[0]
    if advances(stage, decision.stage):
        change = StageChange(
            lead_id,
            stage,
            decision.stage,
            decision.cause,
            decision.rule_ids,
            model.version,
            MODEL_ACTOR,
            at,
        )
        repo.record_stage_change(change)
        if changes is not None:
            changes.append(change)
        stage = decision.stage
    return LeadOutcome(lead_id, stage, breakdown.total, decision)


def earned_points(breakdown: Breakdown) -> dict[tuple[str, str | None], float]:
    """Raw points (after caps, before decay) per (rule id, event message id);
    fit rules have no event."""
    earned: dict[tuple[str, str | None], float] = defaultdict(float)
    for rule in breakdown.rules:
        if rule.kind == "fit":
            if rule.points:
                earned[(rule.rule_id, None)] += rule.points
            continue
        for award in rule.awards:
            earned[(rule.rule_id, award.event_id)] += award.raw
    return dict(earned)


def ledger_changes(
    ledger: Iterable[LedgerEntry], breakdown: Breakdown, at: datetime
) -> list[LedgerEntry]:
    """Entries that bring the ledger's sums per (rule, event) to what ``breakdown`` earned."""
    held: dict[tuple[str, str | None], float] = defaultdict(float)
    for entry in ledger:
        held[(entry.rule_id, entry.event_id)] += entry.points
    earned = earned_points(breakdown)
    out: list[LedgerEntry] = []
    for key in sorted(set(held) | set(earned), key=lambda k: (k[0], k[1] or "")):
        delta = earned.get(key, 0.0) - held.get(key, 0.0)
        if abs(delta) > 1e-9:
            out.append(
                LedgerEntry(breakdown.lead_id, key[0], key[1], delta, breakdown.model_version, at)
            )
    return out
