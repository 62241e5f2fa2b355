"""Use case: take in Segment messages, resolve who they are about, and decide again.

``ingest(repo, model, messages)`` runs inside the caller's transaction (one per
request or import chunk) with a fixed number of queries per call, not per message:

1. each message is read with the domain's Segment code; one that cannot be read
   is reported with its index and reason, and the others still go in;
2. identities are resolved in memory over one read of the identities the request
   names: ``userId`` (the lead's id), ``anonymousId``, an alias's ``previousId``
   and a normalised email in identify traits. An anonymous visitor's lead is
   folded into the known lead when it identifies (the known lead keeps its id).
   Two known leads are one person when an identify brings an email the other
   holds, or an alias names the other's user id: the younger folds into the
   older, with its events, ledger and history;
3. identify and group traits are applied by time (the newest value of each
   attribute wins, whatever order messages arrive in); events are appended once
   per message id (a retry adds nothing);
4. every touched lead is locked, in id order, and re-evaluated by the reference
   evaluator over all its stored events, so late events give the same result as
   in order. Its score and the ledger changes (raw points per rule and event;
   decay is applied when read) are recorded, and a stage change only when the
   decided stage is further along: the model never moves a lead backward.

Concurrent writers: a transaction that loses a race on an identity raises
IdentityConflict; run ingest through ``leadgate.store.transact``, which retries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from leadgate.domain.events import Event, to_utc
from leadgate.domain.lifecycle import HANDED_OVER, after_recycle, past
from leadgate.domain.mapping import InvalidRow
from leadgate.domain.model import ScoringModel
from leadgate.domain.rows import stable_id
from leadgate.domain.scoring import Breakdown, evaluate
from leadgate.domain.segment import ANONYMOUS_PREFIX, Identity, convert_message, message_time
from leadgate.domain.stages import Decision, decide
from leadgate.domain.traits import apply_traits
from leadgate.services.handover import Scored, hand_over, hand_over_held
from leadgate.store.records import LedgerEntry, StageChange
from leadgate.store.repository import LeadFacts, Repository

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

Claim = tuple[str, str]  # (identity kind, value)
# Times a message may carry: a clock a little ahead is fine, a date in 2099 is a bug.
FUTURE_SLACK = timedelta(days=1)
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)


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
    merged: list[tuple[str, str]] = field(default_factory=list)  # (folded lead, into lead)
    notes: list[str] = field(default_factory=list)  # identity conflicts left unresolved
    # message ids sent again with other content: the first stays, as Segment does
    conflicts: list[str] = field(default_factory=list)


def normalise_email(value: object) -> str | None:
    """A trimmed, lower-cased email address, or None when ``value`` is not one."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@") or " " in email:
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


@dataclass(slots=True)
class _Message:
    """One readable message: what it says and the ids it names."""

    converted: Event | Identity | None
    at: datetime
    user: str | None
    anons: list[str]
    email: str | None
    alias_of: str | None  # an alias call's previousId, which may be another user id
    lead_id: str = ""

    def claims(self) -> list[Claim]:
        out: list[Claim] = [(USER_ID, self.user)] if self.user is not None else []
        out += [(ANONYMOUS_ID, a) for a in self.anons]
        if self.email is not None:
            out.append((EMAIL, self.email))
        return out


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
    read: list[_Message] = []
    for index, msg in enumerate(messages):
        try:
            read.append(_read(msg, at))
        except InvalidRow as exc:
            result.errors.append(MessageError(index, exc.reason))
    result.accepted = len(read)
    read = _without_erased(repo, read, result)
    if not read:
        return result

    resolver = _Resolver(repo, read, at, result)
    for message in read:
        message.lead_id = resolver.resolve(message)
    touched = resolver.apply()
    for message in read:
        message.lead_id = resolver.find(message.lead_id)

    repo.lock_leads(touched)
    _apply_traits(repo, read, at)
    events = [
        replace(m.converted, lead_id=m.lead_id) for m in read if isinstance(m.converted, Event)
    ]
    stored = repo.append_events(events, at)
    result.stored = len(stored)
    result.duplicates += len(events) - len(stored)
    if result.duplicates:
        result.conflicts = _conflicting(repo, events, stored)
    outcomes = redecide_many(repo, model, touched, at, result.stage_changes)
    result.leads.update(outcomes)
    return result


def _conflicting(repo: Repository, events: list[Event], stored: set[str]) -> list[str]:
    """Ids of the events not stored because their message id was, with other content
    (type, time or properties): a sender reusing ids, which loses the later event."""
    seen = Counter(e.id for e in events)
    repeated = [e for e in events if e.id not in stored or seen[e.id] > 1]
    held = repo.event_contents(e.id for e in repeated)
    out: list[str] = []
    for e in repeated:
        kept = held.get(e.id)
        if kept is not None and kept != (e.type, e.timestamp, dict(e.properties)):
            out.append(e.id)
    return sorted(set(out))


def _without_erased(repo: Repository, read: list[_Message], result: IngestResult) -> list[_Message]:
    """Messages whose events were erased with their lead (a privacy request) are
    accepted and dropped, so a client's retry does not bring the data back."""
    ids = [m.converted.id for m in read if isinstance(m.converted, Event)]
    erased = repo.erased_message_ids(ids) if ids else set()
    if not erased:
        return read
    result.duplicates += sum(
        1 for m in read if isinstance(m.converted, Event) and m.converted.id in erased
    )
    return [m for m in read if not (isinstance(m.converted, Event) and m.converted.id in erased)]


def _read(msg: object, at: datetime) -> _Message:
    """A message as ``_Message``; raises InvalidRow naming what is wrong."""
    if not isinstance(msg, dict):
        raise InvalidRow("expected a JSON object")
    if not any(msg.get(k) for k in TIME_FIELDS):
        msg = {**msg, "receivedAt": at.isoformat()}  # as Segment does: the time received
    if not (msg.get("messageId") or msg.get("message_id")):
        # As Segment does, a message without an id gets one; from its content and time,
        # so the same message sent again later is a new event (a page seen twice).
        msg = {**msg, "messageId": stable_id(msg)}
    converted = convert_message(msg)
    when = message_time(msg) or at
    if when > at + FUTURE_SLACK:
        raise InvalidRow(
            f"timestamp: {when.isoformat()} is more than a day after it was received "
            f"({at.isoformat()}); check the sender's clock"
        )
    if when < EARLIEST:
        raise InvalidRow(f"timestamp: {when.isoformat()} is before {EARLIEST.year}")
    user = _text_id(msg, "userId", "user_id")
    anon = _text_id(msg, "anonymousId", "anonymous_id")
    previous = _text_id(msg, "previousId", "previous_id") if msg.get("type") == "alias" else None
    anons = [a for a in (anon, previous) if a is not None and a != user]
    email = None
    if isinstance(converted, Identity) and converted.kind == "identify":
        email = normalise_email(converted.attributes.get(EMAIL))
    return _Message(converted, when, user, anons, email, previous if user else None)


def _text_id(msg: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = msg.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            return str(value)
    return None


class _Resolver:
    """Identity resolution for one call, in memory over one read of the store;
    ``apply`` then writes the new leads, merges and identities."""

    def __init__(
        self, repo: Repository, messages: list[_Message], at: datetime, result: IngestResult
    ) -> None:
        self.repo, self.at, self.result = repo, at, result
        claims = {c for m in messages for c in m.claims()}
        claims |= {(USER_ID, m.alias_of) for m in messages if m.alias_of is not None}
        self.owner: dict[Claim, str] = repo.owners(claims)
        ids = set(self.owner.values()) | {m.user for m in messages if m.user is not None}
        self.facts: dict[str, LeadFacts] = repo.lead_facts(ids)
        self.created: list[str] = []  # leads this call creates, in order
        self.folded: dict[str, str] = {}  # lead -> the lead it was folded into
        self.merges: list[tuple[str, str]] = []
        self.new_claims: dict[Claim, str] = {}

    def find(self, lead_id: str) -> str:
        while lead_id in self.folded:
            lead_id = self.folded[lead_id]
        return lead_id

    def known(self, lead_id: str) -> bool:
        """Whether the lead has a user id (it is not an anonymous visitor)."""
        facts = self.facts.get(lead_id)
        if facts is not None and facts.known:
            return True
        return any(
            k == USER_ID and self.find(o) == lead_id for (k, _), o in self.new_claims.items()
        )

    def _owner(self, claim: Claim) -> str | None:
        owner = self.new_claims.get(claim) or self.owner.get(claim)
        return None if owner is None else self.find(owner)

    def _ensure(self, lead_id: str) -> None:
        if lead_id not in self.facts and lead_id not in self.created:
            self.created.append(lead_id)

    def _age(self, lead_id: str) -> tuple[int, datetime, str]:
        facts = self.facts.get(lead_id)
        return (0, facts.created_at, lead_id) if facts else (1, self.at, lead_id)

    def _fold(self, a: str, b: str) -> str:
        """Fold the younger of two leads into the older; the survivor."""
        keep, gone = sorted((a, b), key=self._age)
        self.folded[gone] = keep
        self.merges.append((gone, keep))
        self.result.merged.append((gone, keep))
        return keep

    def resolve(self, message: _Message) -> str:
        """The lead the message is about; the ids it brings are claimed for it."""
        claims = message.claims()
        if message.user is not None:
            lead_id = self._owner((USER_ID, message.user)) or message.user
        else:
            owners = [o for o in map(self._owner, claims) if o is not None]
            known = [o for o in owners if self.known(o)]
            lead_id = (known or owners or [ANONYMOUS_PREFIX + message.anons[0]])[0]
        self._ensure(lead_id)
        if message.alias_of is not None:
            other = self._owner((USER_ID, message.alias_of))
            if other is not None and other != lead_id:
                lead_id = self._fold(other, lead_id)  # an alias says: one person
        for claim in claims:
            owner = self._owner(claim)
            if owner is not None and owner != lead_id:
                if not self.known(owner):
                    self.folded[owner] = lead_id
                    self.merges.append((owner, lead_id))
                    self.result.merged.append((owner, lead_id))
                elif claim[0] == EMAIL:
                    lead_id = self._fold(owner, lead_id)  # one email: one person
                else:
                    self.result.notes.append(
                        f"{claim[0]} {claim[1]!r} belongs to lead {owner!r}; "
                        f"not moved to {lead_id!r} (a shared device is not one person)"
                    )
                    continue
            if owner is None or self.owner.get(claim) is None:
                self.new_claims[claim] = lead_id
        return lead_id

    def apply(self) -> set[str]:
        """Write what resolution decided; the ids of the leads that remain."""
        self.repo.create_leads([x for x in self.created if x not in self.folded], self.at)
        for gone, keep in self.merges:
            if gone in self.facts:  # leads created by this call only exist in memory
                self._merge(gone, self.find(keep))
        self.repo.add_identities(
            [(self.find(lead), kind, value) for (kind, value), lead in self.new_claims.items()],
            self.at,
        )
        touched = {self.find(x) for x in (*self.facts, *self.created)}
        return touched

    def _merge(self, gone: str, keep: str) -> None:
        """Fold a stored lead into another; the survivor takes the further stage of the
        two (the model then decides again over the combined history)."""
        self.repo.merge_lead(gone, keep, self.at)
        state = self.repo.lead_state(keep)
        theirs = self.facts[gone].stage
        if state is not None and theirs in STAGE_RANK and advances(state[0], theirs):
            self.repo.record_stage_change(
                StageChange(
                    keep,
                    state[0],
                    theirs,
                    f"merged with lead {gone!r}",
                    (),
                    None,
                    "identity",
                    self.at,
                )
            )


def _apply_traits(repo: Repository, messages: list[_Message], at: datetime) -> None:
    """Identify and group traits onto their leads, newest value per attribute winning."""
    said = [m for m in messages if isinstance(m.converted, Identity)]
    if not said:
        return
    facts = repo.lead_facts({m.lead_id for m in said})
    changed: set[str] = set()
    for m in said:
        assert isinstance(m.converted, Identity)
        incoming = dict(m.converted.attributes)
        if m.email is not None:
            incoming[EMAIL] = m.email
        lead = facts[m.lead_id]
        lead.attributes, lead.attribute_times = apply_traits(
            lead.attributes, lead.attribute_times, incoming, m.at
        )
        changed.add(m.lead_id)
    repo.set_attributes_many(
        {i: (facts[i].attributes, facts[i].attribute_times) for i in sorted(changed)}, at
    )


def redecide_many(
    repo: Repository,
    model: ScoringModel,
    lead_ids: Iterable[str],
    at: datetime,
    changes: list[StageChange] | None = None,
    handover_policy: str = "all",
) -> dict[str, LeadOutcome]:
    """Evaluate stored leads over all their events as of ``at``; record their scores,
    the ledger changes and, when the model moves a lead forward, its stage change
    (handed over as ``handover_policy`` says, see ``handover.HANDOVER_POLICIES``).
    Unknown ids are skipped. The caller holds the leads' locks (or takes them here)."""
    ids = sorted(set(lead_ids))
    repo.lock_leads(ids)
    states = repo.load_lead_states(ids)
    events = repo.load_events_of(states)
    held = repo.ledger_sums(states)
    sent_back = repo.recycled_at(states)
    outcomes: dict[str, LeadOutcome] = {}
    ledger: list[LedgerEntry] = []
    scores: dict[str, float] = {}
    moves: list[StageChange] = []
    scored: dict[str, Scored] = {}
    waiting: dict[str, Scored] = {}
    for lead_id in ids:
        if lead_id not in states:
            continue
        lead, stage, _ = states[lead_id]
        breakdown = evaluate(model, lead, events.get(lead_id, []), at)
        decision = after_recycle(
            decide(breakdown, model), breakdown, model.thresholds.mql, sent_back.get(lead_id)
        )
        scores[lead_id] = breakdown.total
        ledger += ledger_changes(held.get(lead_id, {}), breakdown, at)
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
            moves.append(change)
            scored[lead_id] = Scored(breakdown, decision, events.get(lead_id, []), lead.attributes)
            stage = decision.stage
        elif handover_policy == "all" and breakdown.intent and past(stage, model.handover):
            # at the handover stage without having moved: was its handover held back?
            waiting[lead_id] = Scored(breakdown, decision, events.get(lead_id, []), lead.attributes)
        outcomes[lead_id] = LeadOutcome(lead_id, stage, breakdown.total, decision)
    repo.set_scores(scores, at)
    repo.record_ledger(ledger)
    repo.record_stage_changes(moves)
    # Same transaction: a handover and its notifications are never lost, never made twice.
    opened = hand_over(repo.conn, model, moves, scored, at, handover_policy)
    opened += hand_over_held(repo.conn, model, waiting, at) if waiting else []
    for lead_id in opened:
        outcome = outcomes[lead_id]
        outcomes[lead_id] = replace(outcome, stage=HANDED_OVER)
    if changes is not None:
        changes.extend(moves)
    return outcomes


def redecide(
    repo: Repository,
    model: ScoringModel,
    lead_id: str,
    at: datetime,
    changes: list[StageChange] | None = None,
) -> LeadOutcome:
    """``redecide_many`` for one lead; LookupError when there is no such lead."""
    outcome = redecide_many(repo, model, [lead_id], at, changes).get(lead_id)
    if outcome is None:
        raise LookupError(f"no lead {lead_id!r}")
    return outcome


def earned_points(breakdown: Breakdown) -> dict[tuple[str, str | None], float]:
    """Raw points (after caps, before decay) per (rule id, event message id);
    fit rules have no event."""
    earned: dict[tuple[str, str | None], float] = {}
    for rule in breakdown.rules:
        if rule.kind == "fit":
            if rule.points:
                fit: tuple[str, str | None] = (rule.rule_id, None)
                earned[fit] = earned.get(fit, 0.0) + rule.points
            continue
        for award in rule.awards:
            key: tuple[str, str | None] = (rule.rule_id, award.event_id)
            earned[key] = earned.get(key, 0.0) + award.raw
    return earned


def ledger_changes(
    held: Mapping[tuple[str, str | None], float] | Iterable[LedgerEntry],
    breakdown: Breakdown,
    at: datetime,
) -> list[LedgerEntry]:
    """Entries that bring the ledger's sums per (rule, event) to what ``breakdown``
    earned. ``held`` is the sums, or the ledger's entries."""
    if not isinstance(held, Mapping):
        sums: dict[tuple[str, str | None], float] = {}
        for entry in held:
            key = (entry.rule_id, entry.event_id)
            sums[key] = sums.get(key, 0.0) + entry.points
        held = sums
    earned = earned_points(breakdown)
    out: list[LedgerEntry] = []
    for key in sorted(set(held) | set(earned), key=lambda k: (k[0], k[1] or "")):
        delta = earned.get(key, 0.0) - held.get(key, 0.0)
        if abs(delta) > 1e-9:
            out.append(
                LedgerEntry(breakdown.lead_id, key[0], key[1], delta, breakdown.model_version, at)
            )
    return out
