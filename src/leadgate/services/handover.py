"""Use cases: hand a sales-ready lead to a rep, record what sales says, chase the late.

``hand_over`` runs inside the transaction that recorded the model's stage change
(``ingest.redecide_many``), under the lead's lock, so a handover is created
exactly once per qualification cycle (and a unique key on lead and cycle makes
sure of it), assigned by the team's routing, given a first-contact deadline in
the rep's working time, and its notifications (lifecycle webhooks, an email to
the rep, a chat message) are written to the outbox in the same transaction; the
worker delivers them.

``record_outcome`` keeps each disposition with the score breakdown and model
version of the handover, for learning. A rejection sends the lead back to
nurturing with the reason kept; it may qualify again (a new cycle).

``follow_up`` (run by the worker) finds open handovers past their deadline:
first a reminder to the rep, then, after the configured grace, an escalation
(reassign to the next rep, or tell the manager).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from leadgate.domain.events import Event, Lead
from leadgate.domain.lifecycle import HANDED_OVER, STAGE_AFTER, check_outcome, starts_handover
from leadgate.domain.model import ScoringModel
from leadgate.domain.scoring import Breakdown, evaluate
from leadgate.domain.stages import Decision, breakdown_document, decide, explain, shown
from leadgate.domain.team import (
    Assignment,
    Rep,
    RoutingState,
    TeamConfig,
    company_domain,
    route,
)
from leadgate.services import outbox
from leadgate.services.team import active_team
from leadgate.store import transact
from leadgate.store.handover_store import Handover, HandoverStore
from leadgate.store.records import StageChange
from leadgate.store.repository import Repository

HANDOVER_ACTOR = "handover"
# Who a stage change hands over: everyone (live traffic), or, when a newly published
# model moves leads (services/models.py), only those with an intent action within the
# model's intent window, or no one.
HANDOVER_POLICIES = ("all", "recent-intent", "none")
RECENT = 10
FAIR_SHARE_WINDOW = timedelta(days=30)  # recent assignments weigh in round robin


class HandoverError(Exception):
    """A request about a handover that cannot be done; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Scored:
    """What ``redecide_many`` knows of a lead when its stage changes."""

    breakdown: Breakdown
    decision: Decision
    events: Sequence[Event]
    attributes: Mapping[str, Any]


@dataclass
class Links:
    """Where people follow a link to a lead (the service's public address)."""

    base_url: str = "http://127.0.0.1:8000"

    def lead(self, lead_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/api/leads/{lead_id}"


LINKS = Links()


def hand_over(
    conn: Connection,
    model: ScoringModel,
    moves: Sequence[StageChange],
    scored: Mapping[str, Scored],
    at: datetime,
    policy: str = "all",
) -> list[str]:
    """Open a handover for each move that reaches the model's handover stage (and that
    ``policy`` lets through, see ``HANDOVER_POLICIES``), and publish the lifecycle
    events of every move; the ids of the leads handed over."""
    store = HandoverStore(conn)
    opened: list[str] = []
    for move in moves:
        info = scored.get(move.lead_id)
        if info is None:
            continue
        if move.to_stage in ("mql", "sql"):
            outbox.publish(
                conn,
                f"lead.{move.to_stage}",
                _lead_event(move, info),
                key=f"lead.{move.to_stage}:{move.lead_id}:{move.at.isoformat()}",
                at=at,
                lead_id=move.lead_id,
            )
        if not starts_handover(move.from_stage, move.to_stage, model.handover):
            continue
        if store.current(move.lead_id) is not None:
            continue  # already with sales in this cycle
        if not policy_allows(policy, info):
            continue
        _open(conn, store, model, move, info, at)
        opened.append(move.lead_id)
    return opened


def hand_over_held(
    conn: Connection, model: ScoringModel, held: Mapping[str, Scored], at: datetime
) -> list[str]:
    """Hand over the leads already at the handover stage without a handover (a publish
    held them back, see ``HANDOVER_POLICIES``) whose intent action came after they
    reached that stage: a new hand-raise is news for sales. The ids handed over."""
    store = HandoverStore(conn)
    since = Repository(conn).last_stage_change_at(list(held))
    opened: list[str] = []
    for lead_id, info in sorted(held.items()):
        intent, reached = info.breakdown.intent, since.get(lead_id)
        if intent is None or reached is None or intent.at <= reached:
            continue
        if store.current(lead_id) is not None:
            continue
        stage = info.decision.stage
        cause = f"{intent.event_type} at {intent.at.isoformat()}, after a held-back handover"
        move = StageChange(
            lead_id, stage, stage, cause, info.decision.rule_ids, model.version, "model", at
        )
        _open(conn, store, model, move, info, at)
        opened.append(lead_id)
    return opened


def policy_allows(policy: str, info: Scored) -> bool:
    """Whether ``policy`` hands over a lead whose stage change ``info`` describes."""
    if policy not in HANDOVER_POLICIES:
        raise ValueError(f"handover policy {policy!r}: not one of {', '.join(HANDOVER_POLICIES)}")
    if policy == "recent-intent":  # the evaluator keeps only intent within the window
        return info.breakdown.intent is not None
    return policy == "all"


def _open(
    conn: Connection,
    store: HandoverStore,
    model: ScoringModel,
    move: StageChange,
    info: Scored,
    at: datetime,
) -> int:
    team = active_team(conn)
    domain = company_domain(info.attributes)
    assignment, rep = _assign(store, team, info, domain, at)
    due = team.first_contact_due(at, rep) if rep is not None and team is not None else None
    remind = team.reminder_due(at, rep) if rep is not None and team is not None else None
    handover_id = store.insert(
        lead_id=move.lead_id,
        cycle=store.cycles(move.lead_id) + 1,
        stage=move.to_stage,
        status="open",
        rep_id=assignment.rep_id,
        team=assignment.team,
        queue=assignment.queue,
        reason=assignment.reason,
        company_domain=domain,
        breakdown=breakdown_document(info.breakdown, info.decision, info.events),
        model_version=model.version,
        created_at=at,
        assigned_at=at if assignment.rep_id is not None else None,
        remind_at=remind,
        due_at=due,
    )
    Repository(conn).record_stage_change(
        StageChange(
            move.lead_id,
            move.to_stage,
            HANDED_OVER,
            assignment.reason,
            (),
            None,
            HANDOVER_ACTOR,
            at,
        )
    )
    handover = store.get(handover_id)
    assert handover is not None
    _announce(conn, handover, rep, info, at, "handover.assigned")
    return handover_id


def _assign(
    store: HandoverStore,
    team: TeamConfig | None,
    info: Scored,
    domain: str | None,
    at: datetime,
    exclude: frozenset[str] = frozenset(),
) -> tuple[Assignment, Rep | None]:
    if team is None:
        reason = "no sales team is configured (leadgate team load FILE): waiting in the queue"
        return Assignment(None, None, "unassigned", reason), None
    state = _routing_state(store, at, store.account_owner(domain) if domain else None)
    assignment = route(team, info.attributes, info.breakdown.groups, state, exclude)
    rep = team.rep(assignment.rep_id) if assignment.rep_id is not None else None
    return assignment, rep


def _routing_state(store: HandoverStore, at: datetime, owner: str | None) -> RoutingState:
    return RoutingState(
        open_handovers=store.loads(),
        last_assigned=store.last_assigned(),
        account_owner=owner,
        assigned=store.assigned_since(at - FAIR_SHARE_WINDOW),
    )


def _lead_event(move: StageChange, info: Scored) -> dict[str, Any]:
    return {
        "lead": _lead_summary(move.lead_id, info),
        "stage": {"from": move.from_stage, "to": move.to_stage, "cause": move.cause},
        "model_version": move.model_version,
        "at": move.at.isoformat(),
    }


def _lead_summary(lead_id: str, info: Scored) -> dict[str, Any]:
    a = info.attributes
    return {
        "id": lead_id,
        "email": a.get("email"),
        "name": _name(a),
        "company": a.get("company"),
        "title": a.get("title"),
        "score": info.breakdown.total,
        "url": LINKS.lead(lead_id),
    }


def _name(attributes: Mapping[str, Any]) -> str | None:
    if attributes.get("name"):
        return str(attributes["name"])
    parts = [str(attributes[k]) for k in ("first_name", "last_name") if attributes.get(k)]
    return " ".join(parts) or None


def _announce(
    conn: Connection,
    handover: Handover,
    rep: Rep | None,
    info: Scored,
    at: datetime,
    event: str,
) -> None:
    """The lifecycle webhook, the rep's email and the team's chat message of a handover."""
    lead = _lead_summary(handover.lead_id, info)
    data = {
        "handover": _handover_doc(handover),
        "rep": None if rep is None else {"id": rep.id, "name": rep.name, "email": rep.email},
        "lead": lead,
        "why": {
            "cause": info.decision.cause,
            "intent": handover.breakdown.get("intent"),
            "rules": handover.breakdown.get("rules", []),
        },
    }
    key = f"{event}:{_ref(handover)}:{handover.rep_id or handover.queue}"
    outbox.publish(conn, event, data, key=key, at=at, lead_id=handover.lead_id)
    if rep is None:
        return
    who = lead["name"] or lead["email"] or handover.lead_id
    at_company = f" ({lead['company']})" if lead.get("company") else ""
    subject = f"Sales-ready lead for you: {who}{at_company}, score {shown(info.breakdown.total)}"
    due = handover.due_at.strftime("%a %d %b %H:%M UTC") if handover.due_at else "no deadline"
    recent = "\n".join(
        f"  {e.timestamp:%Y-%m-%d %H:%M} {e.type} {_short(e)}"
        for e in list(info.events)[-RECENT:][::-1]
    )
    text = (
        f"Hello {rep.name},\n\n{who}{at_company} is ready for sales and is yours.\n"
        f"Email: {lead['email'] or '-'}   Title: {lead['title'] or '-'}\n"
        f"First contact due: {due}\nWhy you: {handover.reason}\n\n"
        f"Why now:\n{explain(info.breakdown, info.decision, info.events, per_rule=2)}\n\n"
        f"Recent activity:\n{recent or '  (none)'}\n\n"
        f"The lead: {lead['url']}\n"
        f"Record what happens: leadgate handovers outcome {handover.id} --outcome accepted\n"
    )
    outbox.notify_email(
        conn, rep.email, subject, text, None, key=f"email:{key}", at=at, lead_id=handover.lead_id
    )
    chat_url = outbox.chat_url()
    if chat_url:
        outbox.notify_chat(
            conn,
            chat_url,
            f"{subject}. Assigned to {rep.name}, first contact due {due}. {lead['url']}",
            None,
            key=f"chat:{key}",
            at=at,
            lead_id=handover.lead_id,
        )


def _ref(handover: Handover) -> str:
    """A handover's name in idempotency keys: its number and when it was opened (a
    number can come again on SQLite after the newest lead was erased)."""
    return f"{handover.id}.{handover.created_at.timestamp():.6f}"


def _short(event: Event) -> str:
    p = event.properties
    for name in ("path", "asset", "form", "campaign_id", "event_type"):
        if p.get(name):
            return str(p[name])
    return ""


def _handover_doc(h: Handover) -> dict[str, Any]:
    def time(v: datetime | None) -> str | None:
        return None if v is None else v.isoformat()

    return {
        "id": h.id,
        "lead_id": h.lead_id,
        "cycle": h.cycle,
        "status": h.status,
        "rep_id": h.rep_id,
        "team": h.team,
        "queue": h.queue,
        "reason": h.reason,
        "created_at": time(h.created_at),
        "due_at": time(h.due_at),
        "contacted_at": time(h.contacted_at),
        "reminded_at": time(h.reminded_at),
        "escalated_at": time(h.escalated_at),
        "closed_at": time(h.closed_at),
        "model_version": h.model_version,
    }


handover_document = _handover_doc


def record_outcome(
    conn: Connection,
    handover_id: int,
    outcome: str,
    reason: str | None,
    note: str | None,
    actor: str,
    at: datetime,
) -> Handover:
    """Record what sales says about a handover; the handover after it."""
    store = HandoverStore(conn)
    current = store.get(handover_id)
    if current is None:
        raise HandoverError(404, f"no handover {handover_id}")
    Repository(conn).lock_leads([current.lead_id])
    handover = store.lock(handover_id)
    assert handover is not None
    problem = check_outcome(handover.status, outcome, reason)
    if problem is not None:
        raise HandoverError(409 if "handover" in problem else 422, problem)
    store.add_disposition(
        lead_id=handover.lead_id,
        handover_id=handover.id,
        outcome=outcome,
        reason=reason,
        note=note,
        actor=actor,
        at=at,
        breakdown=dict(handover.breakdown),
        model_version=handover.model_version,
    )
    status = outcome
    changes: dict[str, Any] = {"status": status}
    if outcome in ("contacted", "accepted") and handover.contacted_at is None:
        changes["contacted_at"] = at
    if outcome in ("rejected", "won", "lost"):
        changes["closed_at"] = at
    store.update(handover.id, **changes)
    repo = Repository(conn)
    stage_after = STAGE_AFTER[outcome]
    state = repo.lead_state(handover.lead_id)
    if stage_after is not None and state is not None and state[0] != stage_after:
        cause = f"{outcome} by {actor}" + (f": {reason}" if reason else "")
        if note:
            cause += f" ({note})"
        repo.record_stage_change(
            StageChange(handover.lead_id, state[0], stage_after, cause, (), None, actor, at)
        )
    updated = store.get(handover.id)
    assert updated is not None
    outbox.publish(
        conn,
        "lead.disposition",
        {
            "handover": _handover_doc(updated),
            "outcome": outcome,
            "reason": reason,
            "note": note,
            "actor": actor,
            "at": at.isoformat(),
        },
        key=f"lead.disposition:{_ref(handover)}:{len(store.dispositions(handover.id))}",
        at=at,
        lead_id=handover.lead_id,
    )
    return updated


@dataclass
class FollowUpReport:
    reminded: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)


def follow_up(conn: Connection, model: ScoringModel, now: datetime) -> FollowUpReport:
    """Remind reps whose first contact is coming due (the team's ``remind_after`` of
    the SLA); escalate handovers whose deadline passed: reassign to the next rep
    once, or tell the manager (``escalate: manager``, or a second miss)."""
    store = HandoverStore(conn)
    team = active_team(conn)
    report = FollowUpReport()
    for handover in store.follow_up_due(now):
        Repository(conn).lock_leads([handover.lead_id])
        current = store.lock(handover.id)
        if current is None or current.status != "open":
            continue  # contacted meanwhile
        rep = team.rep(current.rep_id) if team is not None and current.rep_id else None
        if current.due_at is not None and current.due_at < now:
            _escalate(conn, store, model, team, current, rep, now)
            report.escalated.append(current.id)
        else:
            store.update(current.id, reminded_at=now)
            _reminder(conn, current, rep, now)
            report.reminded.append(current.id)
    return report


def _reminder(conn: Connection, handover: Handover, rep: Rep | None, now: datetime) -> None:
    if rep is None:
        return
    due = _when(handover.due_at)
    outbox.notify_email(
        conn,
        rep.email,
        f"Reminder: first contact with lead {handover.lead_id} is due {due}",
        f"Hello {rep.name},\n\nthe lead {handover.lead_id} is waiting for a first contact, "
        f"due {due}.\n{LINKS.lead(handover.lead_id)}\n"
        f"Record it: leadgate handovers outcome {handover.id} --outcome contacted\n",
        None,
        key=f"email:handover.reminder:{_ref(handover)}:{handover.rep_id}",
        at=now,
        lead_id=handover.lead_id,
    )


def _when(value: datetime | None) -> str:
    return value.strftime("%a %d %b %H:%M UTC") if value is not None else "-"


def _escalate(
    conn: Connection,
    store: HandoverStore,
    model: ScoringModel,
    team: TeamConfig | None,
    handover: Handover,
    rep: Rep | None,
    now: datetime,
) -> None:
    """The first-contact deadline passed: tell the world (``handover.overdue``), then
    reassign to the next rep (once), or tell the manager."""
    step = "manager"
    new_rep: Rep | None = None
    assignment: Assignment | None = None
    if team is not None and team.escalate == "reassign" and handover.escalated_at is None:
        lead = Repository(conn).get_lead(handover.lead_id)
        attributes = dict(lead.attributes) if lead is not None else {}
        groups = handover.breakdown.get("groups", {})
        exclude = frozenset(x for x in (handover.rep_id,) if x)
        assignment = route(team, attributes, groups, _routing_state(store, now, None), exclude)
        new_rep = team.rep(assignment.rep_id) if assignment.rep_id else None
        if new_rep is not None:
            step = "reassigned"
    outbox.publish(
        conn,
        "handover.overdue",
        {"handover": _handover_doc(handover), "escalation": step},
        key=f"handover.overdue:{_ref(handover)}:{handover.rep_id}:{_when(handover.due_at)}",
        at=now,
        lead_id=handover.lead_id,
    )
    if new_rep is not None and assignment is not None and team is not None:
        store.update(
            handover.id,
            rep_id=new_rep.id,
            team=assignment.team,
            queue=None,
            reason=f"reassigned: {handover.rep_id} missed the first contact; {assignment.reason}",
            assigned_at=now,
            remind_at=team.reminder_due(now, new_rep),
            due_at=team.first_contact_due(now, new_rep),
            reminded_at=None,
            escalated_at=now,
        )
        updated = store.get(handover.id)
        assert updated is not None
        scored = _scored_now(conn, model, updated, attributes)
        _announce(conn, updated, new_rep, scored, now, "handover.assigned")
        return
    store.update(handover.id, escalated_at=now)
    manager = team.manager_of(handover.rep_id) if team is not None else None
    if manager:
        outbox.notify_email(
            conn,
            manager,
            f"Escalation: lead {handover.lead_id} has had no first contact",
            f"The lead {handover.lead_id}, assigned to {handover.rep_id or 'nobody'}, missed "
            f"its first contact (due {_when(handover.due_at)}).\n{LINKS.lead(handover.lead_id)}\n",
            None,
            key=f"email:handover.escalated:{_ref(handover)}:{_when(handover.due_at)}",
            at=now,
            lead_id=handover.lead_id,
        )


def _scored_now(
    conn: Connection, model: ScoringModel, handover: Handover, attributes: Mapping[str, Any]
) -> Scored:
    """The lead as scored now, for a reassignment's notice."""
    events = Repository(conn).load_events(handover.lead_id)
    breakdown = evaluate(model, Lead(handover.lead_id, attributes), events, handover.created_at)
    return Scored(breakdown, decide(breakdown, model), events, attributes)


def follow_up_pass(
    engine: Engine, model: ScoringModel, now: datetime | None = None
) -> FollowUpReport:
    """``follow_up`` in its own transaction (what the worker runs every minute)."""
    moment = now or datetime.now(UTC)
    return transact(engine, lambda conn: follow_up(conn, model, moment))
